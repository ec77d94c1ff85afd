"""Shared parsing helpers for identifiers: one bounds-checked reader for binary framings,
and small helpers for text lines. Every built-in uses these instead of slicing by hand, so
"truncated" (ask for more bytes) and "malformed" (not this protocol) mean the same everywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from functools import wraps

from passthru.identify.base import Fields


class Truncated(Exception):
    """The bytes end before a field does; ``needed`` is the total length that would help."""

    def __init__(self, needed: int) -> None:
        super().__init__(needed)
        self.needed = needed


class Malformed(Exception):
    """The bytes contradict the framing: this cannot be the protocol."""


class Reader:
    """A cursor over ``data[start:end]`` that raises ``Truncated``/``Malformed`` instead of
    returning short slices. ``end`` is where the enclosing structure says it stops; reading past
    it is ``Malformed`` when the structure is complete, ``Truncated`` when the data is short."""

    __slots__ = ("data", "end", "limit", "pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = end  # declared end of the structure, may lie beyond len(data)
        # Reads up to here need no further check (one comparison per field on the usual path).
        self.limit = len(data) if end is None or end > len(data) else end

    @property
    def remaining(self) -> int:
        """Bytes left in the declared structure (or in the data when none was declared)."""
        end = self.end if self.end is not None else len(self.data)
        return end - self.pos

    def _take(self, n: int) -> int:
        start = self.pos
        stop = start + n
        if stop > self.limit:
            if self.end is not None and stop > self.end:
                raise Malformed(f"field of {n} bytes overruns its enclosing length")
            raise Truncated(stop)
        self.pos = stop
        return start

    def u8(self) -> int:
        return self.data[self._take(1)]

    def u16(self) -> int:
        start = self._take(2)
        return self.data[start] << 8 | self.data[start + 1]

    def u24(self) -> int:
        start = self._take(3)
        return int.from_bytes(self.data[start : start + 3], "big")

    def u32(self) -> int:
        start = self._take(4)
        return int.from_bytes(self.data[start : start + 4], "big")

    def u32le(self) -> int:
        start = self._take(4)
        return int.from_bytes(self.data[start : start + 4], "little")

    def u16le(self) -> int:
        start = self._take(2)
        return int.from_bytes(self.data[start : start + 2], "little")

    def u64le(self) -> int:
        start = self._take(8)
        return int.from_bytes(self.data[start : start + 8], "little")

    def varint(self, max_bytes: int = 4) -> int:
        """A base-128 little-endian group integer with a continuation bit (MQTT's Variable Byte
        Integer): at most ``max_bytes`` bytes, and no redundant trailing zero group."""
        value = 0
        for index in range(max_bytes):
            byte = self.u8()
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                if byte == 0 and index:
                    raise Malformed("non-minimal variable-length integer")
                return value
        raise Malformed("variable-length integer too long")

    def expect(self, constant: bytes) -> None:
        """Require the next bytes to be ``constant``; a differing partial prefix is rejected
        as soon as it is seen, without waiting for the rest."""
        available = self.data[self.pos : self.pos + len(constant)]
        if not constant.startswith(available):
            raise Malformed("constant differs")
        if len(available) < len(constant) and (self.end is None or self.pos + len(constant) <= self.end):
            raise Truncated(len(self.data) + 1)  # the next byte may already differ
        self._take(len(constant))

    def expect_any(self, constants: tuple[bytes, ...]) -> bytes:
        """Require the next bytes to be one of ``constants`` (none a prefix of another); return it."""
        available = self.data[self.pos :]
        for constant in constants:
            if available.startswith(constant):
                self._take(len(constant))
                return constant
        if not any(c.startswith(available) for c in constants):
            raise Malformed("none of the expected constants")
        raise Truncated(len(self.data) + 1)  # the next byte may already rule them all out

    def expect_zero(self, n: int) -> None:
        """Require ``n`` reserved bytes to be zero (checked on the bytes already there first)."""
        self.expect(bytes(n))

    def finish(self) -> None:
        """Require the enclosing structure to be exactly consumed."""
        if self.remaining:
            raise Malformed("bytes left over in a structure")

    def take(self, n: int) -> bytes:
        start = self._take(n)
        return self.data[start : start + n]

    def skip(self, n: int) -> None:
        self._take(n)

    def sub(self, length: int) -> Reader:
        """A reader for the next ``length`` bytes as a nested structure; advances past it."""
        start = self.pos
        if self.end is not None and start + length > self.end:
            raise Malformed("nested length overruns its enclosing length")
        self.pos = start + length
        return Reader(self.data, start, start + length)

    def vec8(self) -> Reader:
        """A structure prefixed by a one-byte length (TLS ``opaque x<0..2^8-1>``)."""
        return self.sub(self.u8())

    def vec16(self) -> Reader:
        """A structure prefixed by a two-byte length (TLS ``opaque x<0..2^16-1>``)."""
        return self.sub(self.u16())

    def rest(self) -> bytes:
        """Every byte left in the structure; Truncated if the data stops short of it."""
        return self.take(self.remaining)

    def cstring(self, max_length: int = 1024) -> bytes:
        """A NUL-terminated string (PostgreSQL, MongoDB), at most ``max_length`` bytes."""
        end = self.end if self.end is not None else None
        window_end = len(self.data) if end is None else min(end, len(self.data))
        nul = self.data.find(b"\0", self.pos, min(window_end, self.pos + max_length + 1))
        if nul < 0:
            if window_end - self.pos > max_length or (end is not None and window_end == end):
                raise Malformed("string without terminator")
            raise Truncated(len(self.data) + 1)
        value = self.data[self.pos : nul]
        self.pos = nul + 1
        return value


def peek_u8(data: bytes, offset: int) -> int:
    """The byte at ``offset``; Truncated when it has not arrived yet."""
    if len(data) <= offset:
        raise Truncated(offset + 1)
    return data[offset]


def verdict_of(parse: Callable[[bytes], Fields]) -> Callable[[bytes], Fields | int | None]:
    """Turn a parser that raises Truncated/Malformed into an identifier with the 3 verdicts.

    The parser returns the fields when the bytes are the protocol; this wrapper maps
    ``Truncated`` to "need more" and ``Malformed`` to "no match" in one place.
    """

    @wraps(parse)
    def identify(data: bytes) -> Fields | int | None:
        return verdict(parse, data)

    return identify


def verdict(parse: Callable[[bytes], Fields], data: bytes) -> Fields | int | None:
    """``parse(data)`` as one of the three verdicts (``Truncated``: need more, ``Malformed``: no)."""
    try:
        return parse(data)
    except Truncated as short:
        return max(short.needed, len(data) + 1)
    except Malformed:
        return None


def expect_prefix(data: bytes, prefix: bytes) -> None:
    """Require ``data`` to start with ``prefix``: Truncated while it is still a prefix of it."""
    if len(data) < len(prefix):
        if prefix.startswith(data):
            raise Truncated(len(data) + 1)  # the very next byte may already differ
        raise Malformed("prefix differs")
    if not data.startswith(prefix):
        raise Malformed("prefix differs")


def expect_one_of(data: bytes, prefixes: tuple[bytes, ...]) -> bytes:
    """Require ``data`` to start with one of ``prefixes``; return the one it starts with."""
    for prefix in prefixes:
        if data.startswith(prefix):
            return prefix
    if any(len(data) < len(prefix) and prefix.startswith(data) for prefix in prefixes):
        raise Truncated(len(data) + 1)  # the very next byte may already rule them all out
    raise Malformed("no known prefix")


def read_line(data: bytes, start: int = 0, max_length: int = 8192) -> tuple[bytes, int]:
    """The line at ``start`` without its CRLF (or bare LF), and the offset after it.

    Truncated while no line end has arrived and the line could still fit; Malformed when the
    line is longer than ``max_length`` (a real client's first line never is).
    """
    newline = data.find(b"\n", start, start + max_length + 1)
    if newline < 0:
        if len(data) - start > max_length:
            raise Malformed("line too long")
        raise Truncated(len(data) + 1)
    line = data[start:newline]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line, newline + 1


def read_crlf_line(data: bytes, start: int = 0, max_length: int = 8192) -> tuple[bytes, int]:
    """Like ``read_line`` but the line must end with CRLF (RESP, PROXY v1): a bare LF is Malformed."""
    line, offset = read_line(data, start, max_length)
    if data[offset - 2 : offset] != b"\r\n":
        raise Malformed("line does not end with CRLF")
    return line, offset


def prefix_of_any(word: bytes, candidates: frozenset[bytes] | tuple[bytes, ...]) -> bool:
    """True when ``word`` starts (or is) one of ``candidates``: the word may still be arriving."""
    return any(candidate.startswith(word) for candidate in candidates)


#: Visible ASCII, 0x21..0x7e.
VISIBLE_ASCII = bytes(range(0x21, 0x7F))


def is_printable_ascii(raw: bytes, allow: bytes = b"") -> bool:
    """True when every byte is visible ASCII (0x21..0x7e) or in ``allow`` (checked in C: deleting
    the allowed bytes must leave nothing)."""
    return not raw.translate(None, VISIBLE_ASCII + allow)


#: Control characters, space and DEL: never part of a host name as a client sends it.
_NOT_IN_HOST_NAMES = re.compile(r"[\x00-\x20\x7f]")


def hostname(raw: bytes) -> str:
    """Decode a DNS host name as clients send it: ASCII, compared lower-case, no trailing dot."""
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise Malformed("host name is not ASCII") from exc
    if not name or _NOT_IN_HOST_NAMES.search(name):
        raise Malformed("host name has invalid characters")
    return name.rstrip(".").lower()


def decimal(raw: bytes, maximum: int, minimum: int = 0) -> int:
    """A canonical unsigned decimal: ASCII digits only, no sign, no leading zero (except "0")."""
    if not raw or not raw.isdigit() or len(raw) > len(str(maximum)) or (raw[0] == 0x30 and len(raw) > 1):
        raise Malformed("not a canonical decimal number")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise Malformed("number out of range")
    return value


def utf8_text(raw: bytes) -> str:
    """``raw`` as UTF-8 without NUL characters (MQTT, XMPP strings), else Malformed."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Malformed("not UTF-8") from exc
    if "\0" in text:
        raise Malformed("NUL in a string")
    return text


def ascii_text(raw: bytes, allow: bytes = b"") -> str:
    """``raw`` as a str when it is non-empty printable ASCII (plus ``allow``), else Malformed."""
    if not raw or not is_printable_ascii(raw, allow):
        raise Malformed("not printable ASCII")
    return raw.decode("ascii")


def words(line: bytes, count: int | None = None) -> list[bytes]:
    """Split a protocol line on single spaces; every word non-empty (no double or edge spaces)."""
    parts = line.split(b" ")
    if not all(parts) or (count is not None and len(parts) != count):
        raise Malformed("badly spaced line")
    return parts


Headers = list[tuple[bytes, bytes]]


def first_header(headers: Headers, name: bytes) -> bytes | None:
    """The value of the first header called ``name`` (lower case), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def ip_text(raw: bytes) -> str:
    """A packed IPv4 (4 bytes) or IPv6 (16 bytes) address in its usual text form."""
    return str(ipaddress.ip_address(raw))


def parse_ip(text: bytes, version: int | None = None) -> str:
    """A textual IP address in canonical form; Malformed when invalid or of another version."""
    try:
        address = ipaddress.ip_address(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed("not an IP address") from exc
    if version is not None and address.version != version:
        raise Malformed("wrong IP address family")
    return str(address)


def split_authority(authority: str) -> tuple[str, int | None]:
    """``host``, ``host:port`` or ``[v6]:port`` as (lower-case host, port or None)."""
    port: int | None = None
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise Malformed("unterminated IPv6 literal")
        host, rest = authority[1:close], authority[close + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise Malformed("junk after IPv6 literal")
            port = decimal(rest[1:].encode(), 65535)
    elif authority.count(":") == 1:
        host, _, port_text = authority.partition(":")
        port = decimal(port_text.encode(), 65535) if port_text else None
    else:
        host = authority
    return hostname(host.encode()), port
