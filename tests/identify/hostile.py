"""Hostile first bytes of issue 14 (a prefix that never ends, meant to be sent one byte per
packet) and the helper that feeds them like that. Shared by the identifier and engine tests."""

from __future__ import annotations

import struct

from passthru.identify.base import Fields, IdentifyFunc

KIB16 = 16 * 1024
REQUEST_LINE = b"GET / HTTP/1.1\r\n"


def short_headers(start: bytes, line: bytes = b"A: b\r\n", size: int = KIB16, count: int | None = None) -> bytes:
    """``start`` then short header lines: ``count`` of them, or as many as fit in ``size``."""
    return start + line * (count if count is not None else (size - len(start)) // len(line))


def endless_header(start: bytes, size: int = KIB16) -> bytes:
    """``start`` then one header line that never ends."""
    head = start + b"X-Long: "
    return head + b"a" * (size - len(head))


def tls_record_announcing(size: int) -> bytes:
    """One handshake record announcing ``size`` bytes, holding a ClientHello that announces the
    rest: whole, it is a valid hello (random, no session id, one suite, null compression, and
    one padding extension filling the rest)."""
    body_fixed = 2 + 32 + 1 + 4 + 2 + 2  # version, random, session id, suites, compression, ext len
    padding = size - 4 - body_fixed - 4
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack(">HHH", padding + 4, 21, padding) + bytes(padding)
    hello = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack(">H", len(hello)) + hello


def tls_one_byte_records(size: int) -> bytes:
    """The same kind of hello cut into one-byte handshake records, ``size`` bytes of them."""
    hello = tls_record_announcing(size)[5:]
    records = b"".join(b"\x16\x03\x01\x00\x01" + hello[i : i + 1] for i in range(len(hello)))
    return records[: size - size % 6]


def trickle(identify: IdentifyFunc, data: bytes) -> tuple[Fields | int | None, int]:
    """Show ``identify`` the prefix one byte longer at a time, asking again only once as many
    bytes as it asked for arrived (as the engine does); (last verdict, bytes shown then)."""
    verdict: Fields | int | None = 0
    shown = 0
    for end in range(1, len(data) + 1):
        if isinstance(verdict, int) and end >= verdict:
            verdict, shown = identify(data[:end]), end
            if not isinstance(verdict, int):
                break
    return verdict, shown
