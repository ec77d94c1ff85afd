"""Hostile first bytes of issue 14 (a prefix that never ends, meant to be sent one byte per
packet) and the helper that feeds them like that. Shared by the identifier and engine tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from passthru.identify.base import Fields, Identifier, IdentifyFunc

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


@dataclass
class Meter:
    """Work done by the identifiers: bytes shown to plain ones, bytes examined by sessions."""

    shown: int = 0
    sessions: list = field(default_factory=list)

    @property
    def work(self) -> int:
        return self.shown + sum(session.examined for session in self.sessions)

    def plain(self, identify: IdentifyFunc) -> IdentifyFunc:
        def counted(data: bytes) -> Fields | int | None:
            self.shown += len(data)
            return identify(data)

        return counted

    def instrument(self, identifier: Identifier) -> Identifier:
        factory = identifier.session
        if factory is None:
            return replace(identifier, identify=self.plain(identifier.identify))

        def session() -> IdentifyFunc:
            made = factory()
            self.sessions.append(made)
            return made

        return replace(identifier, session=session)


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


def filled(start: bytes, filler: bytes, size: int) -> bytes:
    """``start`` then ``filler`` repeated up to ``size`` bytes."""
    return start + filler * ((size - len(start)) // len(filler))


#: For each built-in that reads text up to a terminator: openings that make it ask for one more
#: byte for as long as possible (found by feeding every corpus sample cut short and padded).
#: Every other built-in is covered by its own corpus samples, cut and padded the same way.
WORST_STARTS: dict[str, list[tuple[bytes, bytes]]] = {
    "http": [(REQUEST_LINE, b"A: b\r\n"), (REQUEST_LINE + b"X-Long: ", b"a")],
    "rtsp": [(b"OPTIONS rtsp://h/ RTSP/1.0\r\n", b"A: b\r\n"), (b"OPTIONS * RTSP/1.0\r\n", b"a")],
    "stomp": [(b"CONNECT\n", b"a:b\n"), (b"STOMP\r\nhost:", b"a")],
    "tls": [
        (tls_record_announcing(KIB16)[:9], b"\x00"),
        (b"".join(b"\x16\x03\x01\x00\x01" + bytes((b,)) for b in b"\x01\x00\xff\x00\x03"), b"\x16\x03\x01\x00\x01\x00"),
    ],
    "irc": [(b"", b"PASS a\r\n"), (b"", b"CAP REQ :a\r\n"), (b"PASS ", b"a")],
    "xmpp": [(b"<stream:stream a='", b"b"), (b"<stream:stream", b" a='b'"), (b"<?xml", b" ")],
    "redis": [(b"PING ", b"a"), (b"*1\r\n$", b"1")],
    "memcached": [(b"get ", b"a")],
    "tinc": [(b"0 ", b"a")],
    "ssh": [(b"SSH-2.0-", b"a")],
    "syslog": [(b"<13>1 ", b"a"), (b"9 ", b"<13>1 - - - - - - a\n")],
    "proxy": [(b"PROXY ", b"1")],
    "socks4": [(b"\x04\x01\x00\x50\x00\x00\x00\x01", b"a"), (b"\x04\x01\x00\x50\x00\x00\x00\x01a\x00", b"a")],
    "postgres": [(b"\x00\x00\x27\x00\x00\x03\x00\x00", b"a")],
    "git": [(b"0044git-upload-pack ", b"a")],
}
