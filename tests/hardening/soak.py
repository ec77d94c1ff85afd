"""The soak's load: clients of five protocols and the backends that check them (sha256 both ways).

Each client picks a protocol (TLS by SNI, two names on two backends; HTTP by Host; SSH; a user
identifier written for the test), sends its protocol start then random bytes of a random size
(mostly small, some up to 4 MiB) and half-closes. Its backend hashes everything it got and
answers ``tag + sha256(received) + length + random reply + sha256(reply)``: the client checks the
tag (the right backend), the backend's hash of what it sent (nothing lost or changed upstream)
and the reply against its trailer (nothing lost or changed downstream). Used by
``test_soak.py`` (loopback) and ``tests/faults/soak_faults.py`` (a lossy, slow network).
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from dataclasses import dataclass, field

from tests.support.hello import client_hello

SOURCES = [f"127.0.0.{i}" for i in range(2, 42)]  # spread client ports over 40 addresses

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


async def serve_backend(kind: str, sock: socket.socket | None = None) -> asyncio.Server:
    """The backend of ``kind``, on 127.0.0.1 (or on the listening ``sock`` given)."""
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

    if sock is not None:
        return await asyncio.start_server(handle, sock=sock)
    return await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)


@dataclass
class Tally:
    ok: int = 0
    corrupted: int = 0
    lost: int = 0
    reset: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    failures: list[str] = field(default_factory=list)


async def one_client(
    port: int, index: int, seed: int, tally: Tally, host: str = "127.0.0.1", sources: list[str] = SOURCES
) -> None:
    rng = random.Random(seed * 1_000_003 + index)
    kind = KINDS[index % len(KINDS)]
    data = prefix(kind, rng) + rng.randbytes(size_for(rng.random()))
    try:
        reader, writer = await asyncio.open_connection(host, port, local_addr=(sources[index % len(sources)], 0))
        try:
            for offset in range(0, len(data), 1 << 18):
                writer.write(data[offset : offset + (1 << 18)])
                await writer.drain()
            writer.write_eof()
            reply = await reader.read()
        finally:
            writer.close()
    except OSError as exc:
        if isinstance(exc, ConnectionResetError):
            tally.reset += 1
        else:
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


def routes(ports: dict[str, int], host: str = "127.0.0.1") -> str:
    """The config's routes to the five backends (listening on ``host``)."""
    return f"""routes:
  - {{name: tls-a, match: {{protocol: tls, sni: a.soak.example}}, to: {host}:{ports["tls-a"]}}}
  - {{name: tls-b, match: {{protocol: tls, sni: "*.soak.example"}}, to: {host}:{ports["tls-b"]}}}
  - {{name: http, match: {{protocol: http, host: web.soak.example}}, to: {host}:{ports["http"]}}}
  - {{name: ssh, match: {{protocol: ssh}}, to: {host}:{ports["ssh"]}}}
  - {{name: soakproto, match: {{protocol: soakproto}}, to: {host}:{ports["soakproto"]}}}
default: reject
"""
