"""Shared parsing helpers for identifiers: one bounds-checked reader for binary framings,
and small helpers for text lines. Every built-in uses these instead of slicing by hand, so
"truncated" (ask for more bytes) and "malformed" (not this protocol) mean the same everywhere.
"""

from __future__ import annotations

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

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = end  # declared end of the structure, may lie beyond len(data)

    @property
    def remaining(self) -> int:
        """Bytes left in the declared structure (or in the data when none was declared)."""
        end = self.end if self.end is not None else len(self.data)
        return end - self.pos

    def _take(self, n: int) -> int:
        start = self.pos
        stop = start + n
        if self.end is not None and stop > self.end:
            raise Malformed(f"field of {n} bytes overruns its enclosing length")
        if stop > len(self.data):
            raise Truncated(stop)
        self.pos = stop
        return start

    def u8(self) -> int:
        return self.data[self._take(1)]

    def u16(self) -> int:
        start = self._take(2)
        return int.from_bytes(self.data[start : start + 2], "big")

    def u24(self) -> int:
        start = self._take(3)
        return int.from_bytes(self.data[start : start + 3], "big")

    def u32(self) -> int:
        start = self._take(4)
        return int.from_bytes(self.data[start : start + 4], "big")

    def u32le(self) -> int:
        start = self._take(4)
        return int.from_bytes(self.data[start : start + 4], "little")

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


def verdict_of(parse: Callable[[bytes], Fields]) -> Callable[[bytes], Fields | int | None]:
    """Turn a parser that raises Truncated/Malformed into an identifier with the 3 verdicts.

    The parser returns the fields when the bytes are the protocol; this wrapper maps
    ``Truncated`` to "need more" and ``Malformed`` to "no match" in one place.
    """

    @wraps(parse)
    def identify(data: bytes) -> Fields | int | None:
        try:
            return parse(data)
        except Truncated as short:
            return max(short.needed, len(data) + 1)
        except Malformed:
            return None

    return identify


def expect_prefix(data: bytes, prefix: bytes) -> None:
    """Require ``data`` to start with ``prefix``: Truncated while it is still a prefix of it."""
    if len(data) < len(prefix):
        if prefix.startswith(data):
            raise Truncated(len(prefix))
        raise Malformed("prefix differs")
    if not data.startswith(prefix):
        raise Malformed("prefix differs")


def expect_one_of(data: bytes, prefixes: tuple[bytes, ...]) -> bytes:
    """Require ``data`` to start with one of ``prefixes``; return the one it starts with."""
    shortest_wanted: int | None = None
    for prefix in prefixes:
        if data.startswith(prefix):
            return prefix
        if len(data) < len(prefix) and prefix.startswith(data):
            shortest_wanted = len(prefix) if shortest_wanted is None else min(shortest_wanted, len(prefix))
    if shortest_wanted is not None:
        raise Truncated(shortest_wanted)
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


def is_printable_ascii(raw: bytes, allow: bytes = b"") -> bool:
    """True when every byte is visible ASCII (0x21..0x7e) or in ``allow``."""
    return all(0x21 <= b <= 0x7E or b in allow for b in raw)


def hostname(raw: bytes) -> str:
    """Decode a DNS host name as clients send it: ASCII, compared lower-case, no trailing dot."""
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise Malformed("host name is not ASCII") from exc
    if not name or any(c.isspace() or ord(c) < 0x21 or ord(c) > 0x7E for c in name):
        raise Malformed("host name has invalid characters")
    return name.rstrip(".").lower()
