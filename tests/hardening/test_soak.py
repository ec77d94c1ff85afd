"""Soak: thousands of connections of mixed protocols through two workers, nothing lost.

Each connection picks a protocol (TLS by SNI, two names on two backends; HTTP by Host; SSH; a
user identifier written for the test), sends its protocol start then random bytes of a random
size (mostly small, some up to 4 MiB) and half-closes. Its backend hashes everything it got and
answers ``tag + sha256(received) + length + random reply + sha256(reply)``: the client checks the
tag (the right backend), the backend's hash of what it sent (nothing lost or changed upstream)
and the reply against its trailer (nothing lost or changed downstream).

The run is two equal rounds. Round one lets the processes reach their high-water marks (the
allocator's arenas, the pipe pool, greenlet stacks); round two must not add to them. Checked:

* sockets: exactly as many as before (the listeners) — one leaked socket shows;
* all fds: at most ``FD_SLACK`` more than before. The splice pipe pool keeps the pipes that were
  in flight at the same time (a handful per worker here; bounded by ``pools.KEEP``); a leak of
  one fd per connection would be a round's connection count;
* RSS after round two within ``rss_tolerance_mib()`` of after round one: 2 MiB of allocator
  noise plus 0.25 KiB per connection of the round. What one relayed connection holds (two gevent
  sockets, a relay with two directions, its record: about 3 KiB, README "Running it") leaked for
  every connection would be ten times that.

``PASSTHRU_SOAK_SCALE=10`` (``make soak``) runs 10x the connections, at 1500 concurrent.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from passthru.server.pools import KEEP as PIPE_POOL_KEEP
from tests.hardening.figures import figure
from tests.hardening.helpers import connection_lines, process_tree, usage, wait_lines, wait_serving
from tests.support.hello import client_hello
from tests.support.net import free_port
from tests.support.passthru_process import PassthruProcess, tracebacks

SCALE = float(os.environ.get("PASSTHRU_SOAK_SCALE", "1"))
TOTAL = int(2000 * SCALE)
CONCURRENCY = 500 if SCALE <= 1 else 1500
ROUND_SECONDS = 120 * max(1.0, SCALE)  # the bound on one round; CI rounds take a few seconds
SOURCES = [f"127.0.0.{i}" for i in range(2, 42)]  # spread client ports over 40 addresses
WORKERS = 2
FD_SLACK = 64


def rss_tolerance_mib(connections: int) -> float:
    return 2.0 + connections * 0.25 / 1024


IDENTIFIER = """
NAME = "soakproto"


def identify(data):
    if len(data) < 6:
        return 6 if b"SOAK1 ".startswith(data) else None
    return {} if data.startswith(b"SOAK1 ") else None


SAMPLES = {"match": [b"SOAK1 x\\r\\n"], "no_match": [b"GET / HTTP/1.1\\r\\n"]}
"""

HELLOS = {
    "tls-a": [client_hello("a.soak.example", ["h2", "http/1.1"]) for _ in range(4)],
    "tls-b": [client_hello("b.soak.example") for _ in range(4)],
}


def prefix(kind: str, rng: random.Random) -> bytes:
    if kind in HELLOS:
        return rng.choice(HELLOS[kind])
    if kind == "http":
        return f"POST /up/{rng.randrange(10**6)} HTTP/1.1\r\nHost: web.soak.example\r\n\r\n".encode()
    if kind == "ssh":
        return b"SSH-2.0-OpenSSH_9.6 soak\r\n"
    return f"SOAK1 client-{rng.randrange(10**6)}\r\n".encode()


KINDS = ["tls-a", "tls-b", "http", "ssh", "soakproto"]
TAGS = {kind: kind.encode().ljust(16, b".") for kind in KINDS}


def size_for(u: float) -> int:
    """Mostly small: 70% under 4 KiB, 25% 4-128 KiB, 5% 128 KiB-4 MiB (log-uniform bands)."""
    if u < 0.70:
        return int(u / 0.70 * 4096)
    if u < 0.95:
        return int(4096 * 32 ** ((u - 0.70) / 0.25))
    return int(128 * 1024 * 32 ** ((u - 0.95) / 0.05))


def reply_for(digest: bytes) -> bytes:
    size = size_for(int.from_bytes(digest[:8], "big") / 2**64)
    return random.Random(digest).randbytes(size)


async def serve_backend(kind: str) -> asyncio.Server:
    tag = TAGS[kind]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            received = hashlib.sha256()
            while chunk := await reader.read(1 << 18):
                received.update(chunk)
            digest = received.digest()
            reply = reply_for(digest)
            writer.write(tag + digest + len(reply).to_bytes(8, "big"))
            writer.write(reply)
            writer.write(hashlib.sha256(reply).digest())
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)


@dataclass
class Tally:
    ok: int = 0
    corrupted: int = 0
    lost: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    failures: list[str] = field(default_factory=list)


async def one_client(port: int, index: int, seed: int, tally: Tally) -> None:
    rng = random.Random(seed * 1_000_003 + index)
    kind = KINDS[index % len(KINDS)]
    data = prefix(kind, rng) + rng.randbytes(size_for(rng.random()))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(SOURCES[index % len(SOURCES)], 0))
        try:
            for offset in range(0, len(data), 1 << 18):
                writer.write(data[offset : offset + (1 << 18)])
                await writer.drain()
            writer.write_eof()
            reply = await reader.read()
        finally:
            writer.close()
    except OSError as exc:
        tally.lost += 1
        tally.failures.append(f"{kind} #{index}: {type(exc).__name__}: {exc}")
        return
    tally.bytes_up += len(data)
    tally.bytes_down += len(reply)
    digest = hashlib.sha256(data).digest()
    head, body = reply[:56], reply[56:]
    expected_size = len(reply_for(digest)) if head[16:48] == digest else None
    if len(head) < 56 or head[16:48] != digest or int.from_bytes(head[48:56], "big") != expected_size:
        bad = "lost" if len(reply) < 56 + (expected_size or 0) + 32 else "corrupted"
        setattr(tally, bad, getattr(tally, bad) + 1)
        tally.failures.append(f"{kind} #{index}: upstream hash/length mismatch ({len(reply)} bytes back)")
        return
    if head[:16] != TAGS[kind]:
        tally.corrupted += 1
        tally.failures.append(f"{kind} #{index}: reached {head[:16]!r}")
        return
    payload, trailer = body[:expected_size], body[expected_size:]
    if len(payload) != expected_size or len(trailer) != 32:
        tally.lost += 1
        tally.failures.append(f"{kind} #{index}: reply truncated ({len(reply)} bytes)")
    elif hashlib.sha256(payload).digest() != trailer:
        tally.corrupted += 1
        tally.failures.append(f"{kind} #{index}: reply hash mismatch")
    else:
        tally.ok += 1


async def run_round(port: int, count: int, seed: int, pids: list[int], peak: list) -> Tally:
    tally = Tally()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def gated(index: int) -> None:
        async with gate:
            await one_client(port, index, seed, tally)

    async def sample() -> None:
        while True:
            now = usage(pids)
            peak[0] = max(peak[0], now.fds)
            peak[1] = max(peak[1], now.rss_kib)
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.wait_for(asyncio.gather(*(gated(i) for i in range(count))), ROUND_SECONDS)
    finally:
        sampler.cancel()
    return tally


async def soak(port: int, pids: list[int], proc: PassthruProcess) -> dict:
    backends = {kind: await serve_backend(kind) for kind in KINDS}
    try:
        ports = {kind: server.sockets[0].getsockname()[1] for kind, server in backends.items()}
        routes = f"""routes:
  - {{name: tls-a, match: {{protocol: tls, sni: a.soak.example}}, to: 127.0.0.1:{ports["tls-a"]}}}
  - {{name: tls-b, match: {{protocol: tls, sni: "*.soak.example"}}, to: 127.0.0.1:{ports["tls-b"]}}}
  - {{name: http, match: {{protocol: http, host: web.soak.example}}, to: 127.0.0.1:{ports["http"]}}}
  - {{name: ssh, match: {{protocol: ssh}}, to: 127.0.0.1:{ports["ssh"]}}}
  - {{name: soakproto, match: {{protocol: soakproto}}, to: 127.0.0.1:{ports["soakproto"]}}}
default: reject
"""
        proc.config_path.write_text(proc.config_path.read_text() + routes)
        await asyncio.to_thread(proc.start)
        await asyncio.to_thread(wait_serving, proc, WORKERS)
        pids[:] = process_tree(proc.process.pid)
        assert len(pids) == 1 + WORKERS
        await asyncio.sleep(0.5)
        result = {"before": usage(pids), "peak": [0, 0], "tallies": [], "seconds": []}
        for seed in (1, 2):
            started = time.monotonic()
            result["tallies"].append(await run_round(port, TOTAL // 2, seed, pids, result["peak"]))
            result["seconds"].append(time.monotonic() - started)
            done = 1 + seed * (TOTAL // 2)  # the start-up probe, then every client so far
            await asyncio.to_thread(wait_lines, proc, done, 30)
            await asyncio.sleep(0.3)  # the last relays' sockets close before their log lines
            result[f"after{seed}"] = usage(pids)
        return result
    finally:
        for server in backends.values():
            server.close()


def test_soak_mixed_protocols_two_workers(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "identifiers").mkdir()
    (tmp_path / "identifiers" / "soakproto.py").write_text(IDENTIFIER)
    # identify 30s: the load generator is one asyncio thread; on a busy machine it may take seconds
    # to write a connected client's first bytes, and that lag is not what this test measures
    config = f"listen: [127.0.0.1:{port}]\nworkers: {WORKERS}\ntimeouts: {{identify: 30s, connect: 10s, idle: 60s}}\n"
    proc = PassthruProcess(tmp_path, config, [("127.0.0.1", port)])
    pids: list[int] = []
    try:
        result = asyncio.run(soak(port, pids, proc))
        log = proc.logs()
    finally:
        if proc.process is not None:
            proc.stop()

    tallies = result["tallies"]
    ok = sum(t.ok for t in tallies)
    corrupted = sum(t.corrupted for t in tallies)
    lost = sum(t.lost for t in tallies)
    up, down = sum(t.bytes_up for t in tallies), sum(t.bytes_down for t in tallies)
    before, after1, after2 = result["before"], result["after1"], result["after2"]
    lines = [line for line in connection_lines(log) if line["route"] != "-"]
    ends = Counter(line["end"] for line in lines)
    per_worker = [sum(1 for line in lines if line["conn"].startswith(f"{w}-")) for w in range(WORKERS)]
    growth_mib = (after2.rss_kib - after1.rss_kib) / 1024
    figure(
        "soak",
        f"{ok + corrupted + lost} connections ({CONCURRENCY} concurrent, 5 protocols, {WORKERS} workers "
        f"{'/'.join(map(str, per_worker))}) in {sum(result['seconds']):.1f}s: up {up / 2**20:.1f} MiB, "
        f"down {down / 2**20:.1f} MiB, corrupted {corrupted}, lost {lost}; log ends {dict(ends)}",
    )
    figure(
        "soak",
        f"supervisor+workers before: {before}; peak fds={result['peak'][0]} rss={result['peak'][1] / 1024:.1f}MiB; "
        f"after round 1: {after1}; after round 2: {after2} (rss round 2 {growth_mib:+.1f}MiB, "
        f"tolerance {rss_tolerance_mib(TOTAL // 2):.1f}MiB)",
    )
    assert corrupted == 0 and lost == 0, "\n".join(f for t in tallies for f in t.failures[:20])
    assert ok == 2 * (TOTAL // 2)
    assert len(lines) == ok, "one log line per relayed connection"
    assert set(ends) == {"closed"}, ends
    assert sum(int(line["up"]) for line in lines) == up, "the log counts every byte sent"
    assert sum(int(line["down"]) for line in lines) == down
    assert all(per_worker), "both workers served"
    assert tracebacks(log) == 0
    # nothing leaked: every socket closed (exactly the listeners, watcher and log sockets of before)
    assert after1.sockets == before.sockets and after2.sockets == before.sockets, (before, after1, after2)
    # pipes: the splice pool keeps up to KEEP idle pipe pairs per worker, never more
    assert after2.pipes - before.pipes <= 2 * PIPE_POOL_KEEP * WORKERS
    assert after1.fds - before.fds <= FD_SLACK and after2.fds - before.fds <= FD_SLACK, (before, after1, after2)
    assert growth_mib <= rss_tolerance_mib(TOTAL // 2), f"RSS grew {growth_mib:.1f} MiB in round two"
