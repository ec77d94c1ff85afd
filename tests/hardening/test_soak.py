"""Soak: thousands of connections of mixed protocols through two workers, nothing lost (the
clients and backends, with sha256 both ways, are in ``soak.py``).

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
import os
import time
from collections import Counter
from pathlib import Path

from passthru.server.pools import KEEP as PIPE_POOL_KEEP
from tests.hardening.figures import figure
from tests.hardening.helpers import connection_lines, process_tree, usage, wait_lines, wait_serving
from tests.hardening.soak import IDENTIFIER, KINDS, Tally, one_client, routes, serve_backend
from tests.support.net import free_port
from tests.support.passthru_process import PassthruProcess, tracebacks

SCALE = float(os.environ.get("PASSTHRU_SOAK_SCALE", "1"))
TOTAL = int(2000 * SCALE)
CONCURRENCY = 500 if SCALE <= 1 else 1500
ROUND_SECONDS = 120 * max(1.0, SCALE)  # the bound on one round; CI rounds take a few seconds
WORKERS = 2
FD_SLACK = 64


def rss_tolerance_mib(connections: int) -> float:
    return 2.0 + connections * 0.25 / 1024


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
        proc.config_path.write_text(proc.config_path.read_text() + routes(ports))
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
    reset = sum(t.reset for t in tallies)
    up, down = sum(t.bytes_up for t in tallies), sum(t.bytes_down for t in tallies)
    before, after1, after2 = result["before"], result["after1"], result["after2"]
    lines = [line for line in connection_lines(log) if line["route"] != "-"]
    ends = Counter(line["end"] for line in lines)
    per_worker = [sum(1 for line in lines if line["conn"].startswith(f"{w}-")) for w in range(WORKERS)]
    growth_mib = (after2.rss_kib - after1.rss_kib) / 1024
    figure(
        "soak",
        f"{ok + corrupted + lost + reset} connections ({CONCURRENCY} concurrent, 5 protocols, {WORKERS} workers "
        f"{'/'.join(map(str, per_worker))}) in {sum(result['seconds']):.1f}s: up {up / 2**20:.1f} MiB, "
        f"down {down / 2**20:.1f} MiB, corrupted {corrupted}, lost {lost}, reset {reset}; log ends {dict(ends)}",
    )
    figure(
        "soak",
        f"supervisor+workers before: {before}; peak fds={result['peak'][0]} rss={result['peak'][1] / 1024:.1f}MiB; "
        f"after round 1: {after1}; after round 2: {after2} (rss round 2 {growth_mib:+.1f}MiB, "
        f"tolerance {rss_tolerance_mib(TOTAL // 2):.1f}MiB)",
    )
    assert corrupted == 0 and lost == 0 and reset == 0, "\n".join(f for t in tallies for f in t.failures[:20])
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
