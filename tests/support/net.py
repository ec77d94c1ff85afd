"""Small real-socket helpers for tests: free ports, waiting for listeners, reading until EOF."""

from __future__ import annotations

import socket
import time


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


def recv_all(sock: socket.socket, limit: int | None = None) -> bytes:
    """Everything the peer sends until it closes (or ``limit`` bytes)."""
    chunks = []
    total = 0
    while limit is None or total < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def exchange(
    port: int, payload: bytes, *, host: str = "127.0.0.1", half_close: bool = True, timeout: float = 10.0
) -> bytes:
    """Connect, send ``payload``, optionally half-close, and return all bytes until EOF."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)
