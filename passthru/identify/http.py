"""The HTTP family: HTTP/1.x requests, the HTTP/2 cleartext preface (``h2c``) and RTSP.

All three share the request-line and header-block readers. They never claim the same bytes:
``http`` needs ``HTTP/1.0|1.1`` as the version, ``rtsp`` needs ``RTSP/1.0|2.0`` and an RTSP
method, and ``h2c`` needs the fixed 24-byte preface (``PRI`` is no HTTP/1 method).

* ``http`` reports ``method``, ``path`` (the request target), ``version``, ``host`` (lower case,
  port removed: from the Host header, else from an absolute-form or CONNECT target) and
  ``upgrade`` (lower case, when the client asks for one, e.g. ``websocket`` or ``h2c``). It waits
  for the end of the header block so that ``host`` is known before routing, as HAProxy's
  ``req.hdr(host)`` with an inspect delay does.
* ``h2c`` checks the preface and that the first frame is a SETTINGS frame on stream 0.
* ``rtsp`` reports ``method``, ``url``, ``host`` and ``version`` and requires a ``CSeq`` header.

The request line decides the protocol; the header block only supplies fields, and is read as
origin servers read it (they accept these or answer 400 themselves, so the bytes are HTTP either
way): obsolete line folding, bare-LF line ends, lines that are no ``name: value`` (skipped), odd
bytes in values, runs of spaces or tabs between the request line's parts. A field that does not
parse is left out (a Host of odd bytes gives no ``host``), never the protocol. The block is read
up to its empty line, or at most ``MAX_HEADERS`` (101, HAProxy's ``tune.http.maxhdr``) lines,
a line of ``MAX_HEADER_LINE`` or a block of ``MAX_HEADER_BLOCK`` bytes: the request is then
decided on the fields of the lines read so far. Parsing is resumable (``incremental.py``): a
header block trickled a byte at a time is read once.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, SPECIFIC_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.incremental import HeaderLines, LineScanner, Resumable
from passthru.identify.parsing import (
    Headers,
    Malformed,
    Reader,
    decimal,
    expect_one_of,
    expect_prefix,
    first_header,
    hostname,
    is_printable_ascii,
    split_authority,
    verdict_of,
)

METHODS = (
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    # WebDAV (RFC 4918, 3253, 5323) and CalDAV, which real clients send on shared ports
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
    "SEARCH",
    "REPORT",
    "MKCALENDAR",
    "ACL",
)
METHOD_PREFIXES = tuple(f"{m} ".encode() for m in METHODS)
HTTP_VERSIONS = {b"HTTP/1.0": "1.0", b"HTTP/1.1": "1.1"}
MAX_REQUEST_LINE = 8192
MAX_HEADER_BLOCK = 16384
#: nginx and Apache answer 400 to a header line longer than about 8 KiB: one that long is decided
#: (as ``http``, on the fields before it) rather than waited for.
MAX_HEADER_LINE = 8192
#: HAProxy's default ``tune.http.maxhdr``: a request with more header lines than this is decided
#: on the first ones instead of being read to its end.
MAX_HEADERS = 101
#: Between the parts of a request line: one space by the RFC, but servers split on runs of
#: spaces and tabs (RFC 9112 3: "parse on whitespace-delimited word boundaries").
REQUEST_LINE_GAPS = re.compile(rb"[ \t]+")


def split_host_port(authority: str) -> str:
    """The host of ``host[:port]`` or ``[v6]:port``, lower case."""
    return split_authority(authority)[0]


def split_url(url: str) -> SplitResult:
    """``urlsplit``, with its ``ValueError`` (an unbalanced ``[`` in the host: "Invalid IPv6 URL")
    as "no match" rather than an exception escaping the identifier (found by tests/fuzz/)."""
    try:
        return urlsplit(url)
    except ValueError as exc:
        raise Malformed(f"malformed URL: {exc}") from None


class Request(Resumable):
    """A request line with a known method and version, then its header block, read resumably
    (see ``incremental``): each call reads only the lines completed since the last one.

    Subclasses name their methods and versions, check the request line once it is complete
    (``start``) and turn the headers into fields once the block has ended, or been capped at
    ``MAX_HEADERS`` lines (``finish``).
    """

    PREFIXES: tuple[bytes, ...] = ()
    VERSIONS: dict[bytes, str] = {}
    METHODS_BY_PREFIX: dict[bytes, str] = {}  # b"GET " -> "GET", from PREFIXES
    METHOD_WIDTH = 0  # the longest prefix's length

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.METHODS_BY_PREFIX = {prefix: prefix[:-1].decode() for prefix in cls.PREFIXES}
        cls.METHOD_WIDTH = max((len(prefix) for prefix in cls.PREFIXES), default=0)

    def __init__(self) -> None:
        super().__init__()
        self.line = LineScanner()
        self.method: str | None = None
        self.fields: Fields = {}
        self.block: HeaderLines | None = None

    @property
    def examined(self) -> int:
        return self.line.examined + (self.block.lines.examined if self.block is not None else 0)

    def parse(self, data: bytes) -> Fields:
        if self.block is None:
            self.fields = self.request_line(data)
            self.block = HeaderLines(
                self.line.start, MAX_HEADER_BLOCK, MAX_HEADERS, lenient=True, max_line=MAX_HEADER_LINE
            )
        headers = self.block.read(data)
        return self.finish(dict(self.fields), headers, self.block.capped)

    def request_line(self, data: bytes) -> Fields:
        """``METHOD SP target SP version`` with a known method and version."""
        if self.method is None:
            self.method = self.known_method(data)
        line = self.line.next(data, MAX_REQUEST_LINE)
        parts = line.split(b" ")
        if len(parts) != 3 or b"\t" in line or not all(parts):  # not one space apart: split as servers do
            parts = REQUEST_LINE_GAPS.split(line)
            if len(parts) != 3 or not parts[1]:
                raise Malformed("request line is not METHOD SP target SP version")
        target = parts[1]
        if not is_printable_ascii(target):
            raise Malformed("request target is not visible ASCII")
        version = self.VERSIONS.get(parts[2])
        if version is None:
            raise Malformed("unknown protocol version")
        return self.start(self.method, target.decode("ascii"), version)

    @classmethod
    def known_method(cls, data: bytes) -> str:
        """The method ``data`` starts with (``expect_one_of`` over ``PREFIXES``, looked up by the
        first word first: the method names all end at their space, so none is another's prefix)."""
        space = data.find(b" ", 0, cls.METHOD_WIDTH)
        method = cls.METHODS_BY_PREFIX.get(data[: space + 1]) if space > 0 else None
        return method if method is not None else expect_one_of(data, cls.PREFIXES)[:-1].decode()

    def start(self, method: str, target: str, version: str) -> Fields:
        raise NotImplementedError

    def finish(self, fields: Fields, headers: Headers, capped: bool) -> Fields:
        raise NotImplementedError


class HttpRequest(Request):
    """``http``: waits for the end of the header block (or the header cap) so ``host`` is known."""

    PREFIXES = METHOD_PREFIXES
    VERSIONS = HTTP_VERSIONS

    def start(self, method: str, target: str, version: str) -> Fields:
        return {"method": method, "path": target, "version": version}

    def finish(self, fields: Fields, headers: Headers, capped: bool) -> Fields:
        host = request_host(first_header(headers, b"host"), fields["method"], fields["path"])
        if host:
            fields["host"] = host
        upgrade = first_header(headers, b"upgrade")
        if upgrade:
            fields["upgrade"] = upgrade.decode("latin-1").lower()
        return fields


def request_host(raw_host: bytes | None, method: str, target: str) -> str | None:
    """The host the request names: its Host header, else its target's authority; None when
    neither parses (the request is still HTTP, it just has no ``host`` to route on)."""
    try:
        if raw_host:
            return split_host_port(raw_host.decode("latin-1")) or None  # already a ``hostname``
        host = target_host(method, target)
        return hostname(host.encode()) if host else None
    except Malformed:
        return None


def target_host(method: str, target: str) -> str | None:
    """The host named by the target itself: CONNECT's authority, or an absolute URI's."""
    if method == "CONNECT":
        return split_host_port(target)
    if "://" in target:
        return split_url(target).hostname
    return None


HTTP = Identifier(
    trusted=True,
    name="http",
    identify=HttpRequest.once,
    session=HttpRequest,
    precedence=DEFAULT_PRECEDENCE,
    fields={"host": HOST, "method": TEXT, "path": TEXT, "version": TEXT, "upgrade": TEXT},
    description="HTTP/1.0 and 1.1 request line with a known method, then a well-formed header block",
)

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = 0x04
H2_MAX_SETTINGS = 16384  # the initial SETTINGS_MAX_FRAME_SIZE bounds the first frame


def parse_h2c(data: bytes) -> Fields:
    expect_prefix(data, H2_PREFACE)
    frame = Reader(data, len(H2_PREFACE))
    length = frame.u24()
    if length % 6 or length > H2_MAX_SETTINGS:
        raise Malformed("SETTINGS payload is not a list of 6-byte settings")
    if frame.u8() != H2_SETTINGS:
        raise Malformed("first frame is not SETTINGS")
    if frame.u8() != 0:
        raise Malformed("the client's first SETTINGS cannot be an ACK")
    if frame.u32() != 0:
        raise Malformed("SETTINGS on a stream other than 0")
    return {}


H2C = Identifier(
    trusted=True,
    name="h2c",
    identify=verdict_of(parse_h2c),
    precedence=SPECIFIC_PRECEDENCE,
    fields={},
    description="HTTP/2 prior-knowledge cleartext: the client preface followed by a SETTINGS frame",
)

RTSP_METHODS = (
    "OPTIONS",
    "DESCRIBE",
    "ANNOUNCE",
    "SETUP",
    "PLAY",
    "PAUSE",
    "TEARDOWN",
    "GET_PARAMETER",
    "SET_PARAMETER",
    "REDIRECT",
    "RECORD",
)
RTSP_PREFIXES = tuple(f"{m} ".encode() for m in RTSP_METHODS)
RTSP_VERSIONS = {b"RTSP/1.0": "1.0", b"RTSP/2.0": "2.0"}
RTSP_SCHEMES = ("rtsp", "rtsps", "rtspu")


class RtspRequest(Request):
    """``rtsp``: the URL is checked as soon as the request line is complete; a CSeq is required."""

    PREFIXES = RTSP_PREFIXES
    VERSIONS = RTSP_VERSIONS

    def start(self, method: str, target: str, version: str) -> Fields:
        fields: Fields = {"method": method, "url": target, "version": version}
        if target != "*":
            parts = split_url(target)
            if parts.scheme not in RTSP_SCHEMES or not parts.netloc:
                raise Malformed("RTSP request URL is not rtsp://host/...")
            fields["host"] = split_host_port(parts.netloc.rpartition("@")[2])
        return fields

    def finish(self, fields: Fields, headers: Headers, capped: bool) -> Fields:
        cseq = first_header(headers, b"cseq")
        if cseq is None:
            raise Malformed("RTSP request without CSeq")
        decimal(cseq, 2**32 - 1)
        return fields


RTSP = Identifier(
    trusted=True,
    name="rtsp",
    identify=RtspRequest.once,
    session=RtspRequest,
    precedence=DEFAULT_PRECEDENCE,
    fields={"method": TEXT, "url": TEXT, "host": HOST, "version": TEXT},
    description="RTSP request: RTSP method, rtsp:// URL or *, RTSP/1.0 or 2.0, and a numeric CSeq header",
)
