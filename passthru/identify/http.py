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
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, SPECIFIC_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    Reader,
    decimal,
    expect_one_of,
    expect_prefix,
    first_header,
    header_block,
    hostname,
    is_printable_ascii,
    read_line,
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
VERSIONS = {b"HTTP/1.0": "1.0", b"HTTP/1.1": "1.1"}
MAX_REQUEST_LINE = 8192
MAX_HEADER_BLOCK = 16384


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


def request_line(data: bytes, prefixes: tuple[bytes, ...], versions: dict[bytes, str]) -> tuple[str, str, str, int]:
    """``METHOD SP target SP version`` with a known method and version: (method, target,
    version, offset of the header block)."""
    prefix = expect_one_of(data, prefixes)
    line, offset = read_line(data, 0, MAX_REQUEST_LINE)
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[1] or not is_printable_ascii(parts[1]):
        raise Malformed("request line is not METHOD SP target SP version")
    version = versions.get(parts[2])
    if version is None:
        raise Malformed("unknown protocol version")
    return prefix[:-1].decode(), parts[1].decode("ascii"), version, offset


def parse_request(data: bytes) -> Fields:
    method, target, version, offset = request_line(data, METHOD_PREFIXES, VERSIONS)
    fields: Fields = {"method": method, "path": target, "version": version}
    headers = header_block(data, offset, MAX_HEADER_BLOCK)
    raw_host = first_header(headers, b"host")
    host = split_host_port(raw_host.decode("latin-1")) if raw_host else target_host(method, target)
    if host:
        fields["host"] = hostname(host.encode())
    upgrade = first_header(headers, b"upgrade")
    if upgrade:
        fields["upgrade"] = upgrade.decode("latin-1").lower()
    return fields


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
    identify=verdict_of(parse_request),
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


def parse_rtsp(data: bytes) -> Fields:
    method, url, version, offset = request_line(data, RTSP_PREFIXES, RTSP_VERSIONS)
    fields: Fields = {"method": method, "url": url, "version": version}
    if url != "*":
        parts = split_url(url)
        if parts.scheme not in RTSP_SCHEMES or not parts.netloc:
            raise Malformed("RTSP request URL is not rtsp://host/...")
        fields["host"] = split_host_port(parts.netloc.rpartition("@")[2])
    headers = header_block(data, offset, MAX_HEADER_BLOCK)
    cseq = first_header(headers, b"cseq")
    if cseq is None:
        raise Malformed("RTSP request without CSeq")
    decimal(cseq, 2**32 - 1)
    return fields


RTSP = Identifier(
    trusted=True,
    name="rtsp",
    identify=verdict_of(parse_rtsp),
    precedence=DEFAULT_PRECEDENCE,
    fields={"method": TEXT, "url": TEXT, "host": HOST, "version": TEXT},
    description="RTSP request: RTSP method, rtsp:// URL or *, RTSP/1.0 or 2.0, and a numeric CSeq header",
)
