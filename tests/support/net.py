"""Small real-socket helpers for tests: free ports, waiting for listeners, reading until EOF."""

from __future__ import annotations

import socket
import time

BACKLOG = 1024
"""The listen backlog of every test server: a short accept queue drops SYNs under a burst of
connects, and the client's retry (1 s later, then 3 s) outlasts the timeouts tests use."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice for an ephemeral bind)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


class Reset(ConnectionResetError):
    """The peer reset the connection; the message says how many bytes came before, and which."""

    def __init__(self, received: bytes) -> None:
        super().__init__(f"connection reset after {describe(received)}")
        self.received = received


class Stalled(TimeoutError):
    """Nothing more came within the socket's timeout; the message says what came before."""

    def __init__(self, received: bytes) -> None:
        super().__init__(f"timed out waiting for more after {describe(received)}")
        self.received = received


def describe(received: bytes, expected: bytes | None = None) -> str:
    """What a test received, for its failure message: ``nothing``, ``N bytes <head>``, or
    against ``expected``: ``N of M bytes``, and where they first differ."""
    if not received:
        return "nothing (no head)" if expected else "nothing"
    text = f"{len(received)} bytes {received[:40]!r}{'...' if len(received) > 40 else ''}"
    if expected is None:
        return text
    at = next((i for i, (a, b) in enumerate(zip(received, expected, strict=False)) if a != b), None)
    where = f", first difference at byte {at}" if at is not None else ""
    return f"{len(received)} of {len(expected)} expected bytes, head {received[:40]!r}{where}"


def recv_all(sock: socket.socket, limit: int | None = None) -> bytes:
    """Everything the peer sends until it closes (or exactly ``limit`` bytes, fewer only if it
    closes first). A reset or a timeout raises ``Reset`` or ``Stalled``, which say what had
    arrived."""
    chunks = []
    total = 0
    while limit is None or total < limit:
        try:
            chunk = sock.recv(65536 if limit is None else min(65536, limit - total))
        except ConnectionResetError:
            raise Reset(b"".join(chunks)) from None
        except TimeoutError:
            raise Stalled(b"".join(chunks)) from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def expect(sock: socket.socket, expected: bytes) -> None:
    """Read ``len(expected)`` bytes and fail, saying what came instead, unless they are ``expected``."""
    got = recv_all(sock, len(expected))
    assert got == expected, f"expected {expected[:40]!r}, received {describe(got, expected)}"


def exchange(
    port: int, payload: bytes, *, host: str = "127.0.0.1", half_close: bool = True, timeout: float = 10.0
) -> bytes:
    """Connect, send ``payload``, optionally half-close, and return all bytes until EOF."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)
