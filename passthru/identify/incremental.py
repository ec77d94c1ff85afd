"""Resumable parsing for identifiers that read text lines as they trickle in.

The engine shows an identifier the whole prefix every time bytes arrive. A line-based parser that
starts over on each call and asks for one more byte (the next byte may end the line) re-reads
everything before it: n bytes sent one at a time cost O(n^2), about 44 s of CPU for a 16 KiB HTTP
header block of short lines. The helpers here keep their place instead, the way h11's
``ReceiveBuffer`` remembers how far it searched for the end of the headers:

* ``LineScanner`` finds line ends in a growing buffer and never looks at a byte twice;
* ``HeaderLines`` reads ``name: value`` lines up to the empty line that ends them, parsing each
  complete line once, and can stop after a number of lines (HAProxy's 101-header cap);
* ``Resumable`` turns a parser that keeps its progress on ``self`` into a per-connection session
  with the three verdicts (``Identifier.session``), and into a plain one-shot ``identify``.

Every scanner counts the bytes it looked at (``examined``): the tests assert on that count, not
on time, to prove the cost is linear.
"""

from __future__ import annotations

from passthru.identify.base import Fields
from passthru.identify.parsing import VISIBLE_ASCII, Headers, Malformed, Truncated

#: A header line starting with one of these (space, tab) continues the previous field's value.
FOLD_STARTS = b" \t"


class LineScanner:
    """The lines of a growing buffer from ``start`` on, as ``read_line`` returns them (CRLF or bare
    LF removed), with the search for a line end resumed where the previous call stopped."""

    __slots__ = ("examined", "scanned", "start")

    def __init__(self, start: int = 0) -> None:
        self.start = start  # where the next line begins
        self.scanned = start  # bytes before this hold no line end of the next line
        self.examined = 0

    def next(self, data: bytes, max_length: int) -> bytes:
        """The next complete line. Truncated while it has not ended and could still fit;
        Malformed when it is longer than ``max_length``."""
        start = self.start
        newline = data.find(b"\n", self.scanned, start + max_length + 1)  # empty range: -1
        if newline < 0:
            limit = min(len(data), start + max_length + 1)
            self.examined += max(0, limit - self.scanned)
            self.scanned = max(self.scanned, limit)
            if len(data) - start > max_length:
                raise Malformed("line too long")
            raise Truncated(len(data) + 1)
        self.examined += newline + 1 - self.scanned
        self.start = self.scanned = newline + 1
        if newline > start and data[newline - 1] == 0x0D:  # CRLF
            return data[start : newline - 1]
        return data[start:newline]


class HeaderLines:
    """The header lines from ``start`` to the empty line that ends them (HTTP, RTSP, STOMP),
        read a complete line at a time across calls.

        ``max_block`` bounds the block in bytes and ``max_line`` (default: the block's) each line;
        ``max_lines``, when set, stops reading after that many header lines even though the block has
        not ended (``capped``): the caller then decides on the headers read so far.

        Strict (STOMP): every line must be ``name:value`` and the block must end within ``max_block``
        (else Malformed). ``lenient`` (HTTP, RTSP) reads the block as an origin server does, which
        accepts these or answers 400 itself: a line starting with a space or tab continues the
        previous field's value (obsolete line folding, RFC 9112 5.2; dropped when no field precedes
        it), a line that is no ``name: value`` (no colon, odd bytes in the name) is skipped, and a
        block over ``max_block`` or a line over ``max_line`` stops the reading as the line cap does
    (``capped``).
        Every line, skipped or folded, counts towards ``max_lines``.
    """

    __slots__ = (
        "capped",
        "count",
        "ended",
        "folds",
        "headers",
        "lenient",
        "lines",
        "max_block",
        "max_line",
        "max_lines",
        "separator",
        "start",
    )

    def __init__(
        self,
        start: int,
        max_block: int,
        max_lines: int | None = None,
        separator: bytes = b":",
        lenient: bool = False,
        max_line: int | None = None,
    ) -> None:
        self.lines = LineScanner(start)
        self.start = start
        self.max_block = max_block
        self.max_line = max_block if max_line is None else max_line
        self.max_lines = max_lines
        self.separator = separator
        self.lenient = lenient
        self.headers: Headers = []
        self.count = 0  # header lines read
        self.folds = False  # the last line was a field, which a folded line may continue
        self.ended = False
        self.capped = False

    def read(self, data: bytes) -> Headers:
        """The headers, once the block ended or was capped; Truncated until then."""
        if not (self.ended or self.capped):
            self._read_arrived(data)
        while not (self.ended or self.capped):
            try:
                if self.lines.start - self.start > self.max_block:
                    raise Malformed("header block too long")
                line = self.lines.next(data, self.max_line)
            except Malformed:
                if not self.lenient:
                    raise
                self.capped = True
                break
            if not line:
                self.ended = True
                break
            self.count += 1
            self._take(line)
            if self.max_lines is not None and self.count >= self.max_lines:
                self.capped = True
        return self.headers

    def _read_arrived(self, data: bytes) -> None:
        """Read every line that has fully arrived with one split (the usual case: the whole block
        came in one read), stopping before a line the loop in ``read`` must judge (one over
        ``max_line``, or past ``max_block``). Each byte is looked at twice at most: once by the
        search for the last line end (only bytes not searched before), once by the split."""
        lines = self.lines
        last = data.rfind(b"\n", lines.scanned)
        lines.examined += len(data) - lines.scanned
        if last < 0:
            lines.scanned = len(data)  # no line end in what arrived since the last search
            return
        pos = lines.start
        lines.examined += last - pos
        for raw in data[pos:last].split(b"\n"):
            if len(raw) > self.max_line or pos - self.start > self.max_block:
                lines.start = lines.scanned = pos  # the loop in ``read`` takes it from here
                return
            pos += len(raw) + 1
            lines.start = pos
            if not raw or raw == b"\r":
                self.ended = True
                break
            self.count += 1
            self._take(raw[:-1] if raw[-1] == 13 else raw)
            if self.max_lines is not None and self.count >= self.max_lines:
                self.capped = True
                break
        lines.scanned = len(data) if pos == last + 1 else pos

    def _take(self, line: bytes) -> None:
        """One non-empty line: a field (``name: value``, the name visible ASCII and lower-cased,
        the value stripped), a folded continuation (lenient), or a line skipped (lenient) or
        refused (strict) for being neither."""
        if self.lenient and line[0] in FOLD_STARTS:
            if self.folds:
                name, value = self.headers[-1]
                self.headers[-1] = (name, b" ".join(part for part in (value, line.strip()) if part))
            return
        name, sep, value = line.partition(self.separator)
        if sep and name and not name.translate(None, VISIBLE_ASCII):
            self.headers.append((name.lower(), value.strip()))
            self.folds = True
        elif self.lenient:  # not a field: the server skips it or answers 400, the request is still HTTP
            self.folds = False
        else:
            raise Malformed("header line without a field name")


_UNDECIDED = object()


class Resumable:
    """A parser that keeps its progress on ``self`` between calls on a growing prefix.

    Subclasses implement ``parse`` (raise ``Truncated``/``Malformed`` like any parser, but resume
    from what ``self`` remembers). Calling an instance gives the three verdicts; the class itself
    is the ``Identifier.session`` factory, and ``once`` the plain pure ``identify``.
    """

    def __init__(self) -> None:
        self._seen = 0
        self._final: object = _UNDECIDED

    def parse(self, data: bytes) -> Fields:
        raise NotImplementedError

    @property
    def examined(self) -> int:
        """Bytes this parser's scanners have looked at (for tests that count work)."""
        return 0

    def __call__(self, data: bytes) -> Fields | int | None:
        if len(data) < self._seen:
            raise ValueError("a session is fed a growing prefix: this data is shorter than the last")
        self._seen = len(data)
        if self._final is not _UNDECIDED:  # a final verdict stands; parse state may be spent
            return dict(self._final) if isinstance(self._final, dict) else None
        try:
            result = self.parse(data)
        except Truncated as short:
            return max(short.needed, len(data) + 1)
        except Malformed:
            result = None
        self._final = result
        return result

    @classmethod
    def once(cls, data: bytes) -> Fields | int | None:
        """The plain ``identify(data)``: a fresh parser over the whole of ``data``."""
        return cls()(data)
