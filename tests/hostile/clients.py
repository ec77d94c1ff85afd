"""Hostile clients for the stall tests: each sends its bytes one per packet, a few tens of
microseconds apart, for as long as Passthru keeps the connection open."""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

#: Gap between two one-byte packets (the attack in issue 14: about 50 µs).
GAP = 0.00005


def many_short_headers(count: int = 3000) -> bytes:
    return b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * count


def endless_header(length: int = 20000) -> bytes:
    return b"GET / HTTP/1.1\r\nX-Long: " + b"a" * length


def huge_tls_record() -> bytes:
    """A handshake record header announcing 16 KiB, then a ClientHello that never ends."""
    return b"\x16\x03\x01" + struct.pack(">H", 16384) + b"\x01\x00\x3f\xfc\x03\x03" + bytes(20000)


@dataclass
class Trickler:
    """One hostile connection in a thread: how far it got and how it ended."""

    address: tuple[str, int]
    payload: bytes
    sent: int = 0
    ended: str = ""
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with socket.create_connection(self.address, timeout=30) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                for i in range(len(self.payload)):
                    sock.send(self.payload[i : i + 1])
                    self.sent += 1
                    time.sleep(GAP)
                self.ended = "sent everything"
            except OSError as exc:
                self.ended = f"closed by the proxy after {self.sent} bytes ({type(exc).__name__})"


def time_to_first_byte(address: tuple[str, int], host: str) -> float:
    """One honest HTTP request; seconds until the backend's first byte arrives through Passthru."""
    started = time.perf_counter()
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        sock.shutdown(socket.SHUT_WR)
        if not sock.recv(1):
            raise AssertionError("the honest client got no byte back (closed at once)")
        elapsed = time.perf_counter() - started
        while sock.recv(65536):  # read to the end: closing with unread bytes would reset
            pass
    return elapsed
