#!/usr/bin/env python3
"""Hostile clients that trickle bytes, one byte per TCP packet, to tie up a proxy that identifies.

Issue 14's attackers, as a plain module (standard library only, no project imports) that the
benchmark and end-to-end tests both use:

- ``trickle_http_headers``: an HTTP request line, then short header lines ``A: b\\r\\n`` forever;
- ``trickle_endless_header``: an HTTP request line, then one header line that never ends;
- ``trickle_tls_record``: a TLS record header announcing a 16 KiB ClientHello, then its body.

Each sends one byte per packet (``TCP_NODELAY``, one ``send`` per byte) about ``interval``
seconds apart, on ``connections`` connections at once (one thread, non-blocking sockets), until
``duration`` seconds pass or the other side closes. Bytes the other side sends are read and
counted, never answered. Each returns one ``Trickled`` per connection.

From a shell (what bench/figures.py runs, so that the trickle does not share a GIL with the
clients it measures): ``python hostile.py http-headers 127.0.0.1 8443 --connections 20
--duration 4``; it prints ``ready`` once every connection is open, then one JSON line.
"""

from __future__ import annotations

import argparse
import errno
import json
import select
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

Address = tuple[str, int]

REQUEST_LINE = b"GET / HTTP/1.1\r\n"
SHORT_HEADER = b"A: b\r\n"
TLS_RECORD_LENGTH = 16384

#: How a trickle ended: the other side closed (FIN), reset, or we stopped at ``duration``.
CLOSED, RESET, DURATION = "closed", "reset", "duration"


@dataclass
class Trickled:
    """What one hostile connection did."""

    sent: int = 0  # bytes sent (one packet each after the first ``head``)
    received: int = 0  # bytes the other side sent back
    seconds: float = 0.0  # from connected to ended
    ended: str = DURATION  # CLOSED, RESET or DURATION


def one_by_one(data: bytes) -> Iterator[bytes]:
    """``data`` one byte at a time."""
    for i in range(len(data)):
        yield data[i : i + 1]


def http_headers_payload(header: bytes = SHORT_HEADER) -> Iterator[bytes]:
    """The request line in one piece, then ``header`` repeated forever, one byte at a time."""
    yield REQUEST_LINE
    while True:
        yield from one_by_one(header)


def endless_header_payload() -> Iterator[bytes]:
    """The request line, then ``X-Long: aaaa…`` with no end of line, one byte at a time."""
    yield REQUEST_LINE
    yield from one_by_one(b"X-Long: ")
    while True:
        yield b"a"


def tls_client_hello_record(length: int = TLS_RECORD_LENGTH) -> bytes:
    """A TLS handshake record announcing ``length`` bytes (the header's 5 not counted), holding
    one well-formed ClientHello without SNI: a proxy that routes by SNI must wait for all of it.
    ``length`` is even and at least 48."""
    fixed = 4 + 2 + 32 + 1 + 2 + 3 + 2  # handshake header, version, random, session id, suites, compression, extensions
    suites_length = length - fixed
    if suites_length < 2 or suites_length % 2:
        raise ValueError(f"TLS record length {length}: must be even and at least {fixed + 2}")
    hello = (
        b"\x03\x03"
        + bytes(range(32))  # random
        + b"\x00"  # no session id
        + suites_length.to_bytes(2, "big")
        + b"\x00\x2f" * (suites_length // 2)  # TLS_RSA_WITH_AES_128_CBC_SHA, over and over
        + b"\x02\x01\x00"  # compression methods: deflate, null
        + b"\x00\x00"  # no extensions
    )
    handshake = b"\x01" + len(hello).to_bytes(3, "big") + hello
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def tls_record_payload(length: int = TLS_RECORD_LENGTH) -> Iterator[bytes]:
    """The record above, one byte at a time (the header's 5 bytes too); then nothing more."""
    yield from one_by_one(tls_client_hello_record(length))


@dataclass
class _Conn:
    sock: socket.socket
    payload: Iterator[bytes]
    started: float
    result: Trickled = field(default_factory=Trickled)
    pending: bytes = b""
    done: bool = False

    def end(self, how: str, now: float) -> None:
        self.done = True
        self.result.ended = how
        self.result.seconds = now - self.started
        self.sock.close()


def _connect(address: Address, timeout: float) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    return sock


def _drain(conn: _Conn, now: float) -> None:
    """Read what the other side sent; end the connection on its FIN or reset."""
    try:
        while True:
            data = conn.sock.recv(65536)
            if not data:
                conn.end(CLOSED, now)
                return
            conn.result.received += len(data)
    except BlockingIOError:
        return
    except ConnectionResetError:
        conn.end(RESET, now)


def _send_one(conn: _Conn, now: float) -> None:
    """Send the next piece of the payload (a byte), unless the socket buffer is full."""
    if not conn.pending:
        conn.pending = next(conn.payload, b"")
        if not conn.pending:
            return  # payload exhausted: wait for the other side or the duration
    try:
        sent = conn.sock.send(conn.pending)
    except BlockingIOError:
        return
    except (BrokenPipeError, ConnectionResetError) as exc:
        conn.end(RESET if isinstance(exc, ConnectionResetError) else CLOSED, now)
        return
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN):
            conn.end(RESET, now)
            return
        raise
    conn.pending = conn.pending[sent:]
    conn.result.sent += sent


def trickle(
    address: Address,
    payload: Callable[[], Iterator[bytes]],
    *,
    connections: int = 1,
    duration: float = 5.0,
    interval: float = 50e-6,
    connect_timeout: float = 10.0,
    on_ready: Callable[[], None] | None = None,
) -> list[Trickled]:
    """Open ``connections`` connections to ``address`` and feed each ``payload()`` one piece per
    ``interval`` seconds, until ``duration`` passes or each is closed; return what each did.

    ``on_ready`` is called once all connections are open (the duration starts then)."""
    conns: list[_Conn] = []
    try:
        for _ in range(connections):
            conns.append(_Conn(_connect(address, connect_timeout), payload(), 0.0))
    except BaseException:
        for c in conns:
            c.sock.close()
        raise
    if on_ready is not None:
        on_ready()
    start = time.monotonic()
    for c in conns:
        c.started = start
    poller = select.poll()
    by_fd = {c.sock.fileno(): c for c in conns}
    for fd in by_fd:
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    deadline = start + duration
    tick = start
    while True:
        now = time.monotonic()
        live = [c for c in conns if not c.done]
        if not live or now >= deadline:
            break
        for fd, _ in poller.poll(0):
            conn = by_fd[fd]
            if not conn.done:
                _drain(conn, now)
                if conn.done:
                    poller.unregister(fd)
        for conn in live:
            if not conn.done:
                _send_one(conn, now)
        tick += interval
        pause = tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            tick = time.monotonic()  # behind: do not burst to catch up
    end = time.monotonic()
    for c in conns:
        if not c.done:
            c.end(DURATION, end)
    return [c.result for c in conns]


def trickle_http_headers(address: Address, **kwargs: Any) -> list[Trickled]:
    """Many short header lines after a request line, one byte per packet (see ``trickle``)."""
    return trickle(address, http_headers_payload, **kwargs)


def trickle_endless_header(address: Address, **kwargs: Any) -> list[Trickled]:
    """One header line that never ends, one byte per packet (see ``trickle``)."""
    return trickle(address, endless_header_payload, **kwargs)


def trickle_tls_record(address: Address, **kwargs: Any) -> list[Trickled]:
    """A 16 KiB TLS record (a ClientHello), one byte per packet (see ``trickle``)."""
    return trickle(address, tls_record_payload, **kwargs)


#: The attacks by name (the CLI's first argument, the bench's row labels).
ATTACKS: dict[str, Callable[..., list[Trickled]]] = {
    "http-headers": trickle_http_headers,
    "endless-header": trickle_endless_header,
    "tls-record": trickle_tls_record,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("attack", choices=sorted(ATTACKS))
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--duration", type=float, default=5.0, help="seconds (default %(default)s)")
    p.add_argument("--interval", type=float, default=50e-6, help="seconds between bytes (default %(default)s)")
    args = p.parse_args(argv)

    def ready() -> None:
        print("ready", flush=True)

    results = ATTACKS[args.attack](
        (args.host, args.port),
        connections=args.connections,
        duration=args.duration,
        interval=args.interval,
        on_ready=ready,
    )
    print(json.dumps([asdict(r) for r in results]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
