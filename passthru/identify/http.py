"""HTTP/1.x: a request line with a known method and ``HTTP/1.0|1.1``, then the header block.

Reports ``method``, ``path`` (the request target), ``version`` and ``host`` (lower case, port
removed: from the Host header, else from an absolute-form or CONNECT target). The identifier
waits for the end of the header block so that ``host`` is known before routing, as HAProxy's
``req.hdr(host)`` with an inspect delay does.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from passthru.identify.base import DEFAULT_PRECEDENCE, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    expect_one_of,
    hostname,
    is_printable_ascii,
    read_line,
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
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise Malformed("unterminated IPv6 literal")
        return authority[1:close].lower()
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def parse_request(data: bytes) -> Fields:
    prefix = expect_one_of(data, METHOD_PREFIXES)
    line, offset = read_line(data, 0, MAX_REQUEST_LINE)
    parts = line.split(b" ")
    if len(parts) != 3 or not parts[1] or not is_printable_ascii(parts[1]):
        raise Malformed("request line is not METHOD SP target SP version")
    version = VERSIONS.get(parts[2])
    if version is None:
        raise Malformed("not HTTP/1.0 or HTTP/1.1")
    method = prefix[:-1].decode()
    target = parts[1].decode("ascii")
    fields: Fields = {"method": method, "path": target, "version": version}
    host = header_host(data, offset)
    if host is None:
        host = target_host(method, target)
    if host:
        fields["host"] = hostname(host.encode())
    return fields


def header_host(data: bytes, offset: int) -> str | None:
    """The Host header's host, after waiting for the whole header block."""
    host: str | None = None
    while True:
        if offset > MAX_HEADER_BLOCK:
            raise Malformed("header block too long")
        line, offset = read_line(data, offset, MAX_HEADER_BLOCK)
        if not line:
            return host
        name, colon, value = line.partition(b":")
        if not colon or not name or not is_printable_ascii(name):
            raise Malformed("header line without a field name")
        if name.lower() == b"host" and host is None:
            host = split_host_port(value.strip().decode("latin-1"))


def target_host(method: str, target: str) -> str | None:
    """The host named by the target itself: CONNECT's authority, or an absolute URI's."""
    if method == "CONNECT":
        return split_host_port(target)
    if "://" in target:
        return urlsplit(target).hostname
    return None


HTTP = Identifier(
    name="http",
    identify=verdict_of(parse_request),
    precedence=DEFAULT_PRECEDENCE,
    fields=("host", "method", "path", "version"),
    description="HTTP/1.0 and 1.1 requests, CONNECT and absolute-form included",
)
