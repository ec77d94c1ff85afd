"""SOCKS: version 4 (and 4a) requests and version 5 greetings (RFC 1928).

``socks4`` checks the whole request: version 4, command CONNECT or BIND, a non-zero port, a
NUL-terminated printable user id, and for SOCKS4a (address 0.0.0.x, x != 0) a NUL-terminated host
name. Reports ``command``, ``host`` (the address or 4a host name), ``port`` and ``user`` when set.

``socks5`` is a 2-byte header and up to 255 one-byte method codes, so on its own it is weak. What
makes it reliable is how clients use it: the greeting is the whole first flight, the client then
waits for the server to choose a method. So it matches the greeting alone, with distinct, assigned
method codes (no 0xFF), and with nothing after it -- except a pipelined CONNECT request when the
only method offered is "no authentication" (as optimistic clients do), which is then parsed too
and reports ``host`` and ``port``. Reports ``methods`` (names).
"""

from __future__ import annotations

from passthru.identify.base import HOST, NUMBER, SPECIFIC_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    Reader,
    ascii_text,
    hostname,
    ip_text,
    verdict_of,
)

COMMANDS = {1: "connect", 2: "bind"}
MAX_SOCKS4_STRING = 255


def parse_socks4(data: bytes) -> Fields:
    request = Reader(data)
    request.expect(b"\x04")
    command = COMMANDS.get(request.u8())
    if command is None:
        raise Malformed("SOCKS4 command is neither CONNECT nor BIND")
    port = request.u16()
    address = request.take(4)
    if port == 0 or address == bytes(4):
        raise Malformed("SOCKS4 request without a port or address")
    user = request.cstring(MAX_SOCKS4_STRING)
    fields: Fields = {"command": command, "port": port}
    if user:
        fields["user"] = ascii_text(user, allow=b" ")
    if address[:3] == bytes(3):  # SOCKS4a: 0.0.0.x, then the host name
        fields["host"] = hostname(request.cstring(MAX_SOCKS4_STRING))
        fields["version"] = "4a"
    else:
        fields["host"] = ip_text(address)
        fields["version"] = "4"
    return fields


SOCKS4 = Identifier(
    trusted=True,
    name="socks4",
    identify=verdict_of(parse_socks4),
    fields={"command": TEXT, "host": HOST, "port": NUMBER, "user": TEXT, "version": TEXT},
    description="SOCKS4/4a request: version 4, CONNECT or BIND, port, address, NUL-terminated user id (and 4a host)",
)

METHODS = {
    0x00: "none",
    0x01: "gssapi",
    0x02: "password",
    0x03: "chap",
    0x05: "challenge-response",
    0x06: "ssl",
    0x07: "nds",
    0x08: "multi-auth",
    0x09: "json",
}
ATYP_IPV4, ATYP_NAME, ATYP_IPV6 = 1, 3, 4


def method_name(code: int) -> str:
    if code in METHODS:
        return METHODS[code]
    if 0x80 <= code <= 0xFE:
        return f"private-{code:#04x}"
    raise Malformed("unassigned SOCKS5 method")


def parse_socks5(data: bytes) -> Fields:
    greeting = Reader(data)
    greeting.expect(b"\x05")
    count = greeting.u8()
    if count == 0:
        raise Malformed("SOCKS5 greeting without methods")
    codes = [greeting.u8() for _ in range(count)]
    if len(set(codes)) != count:
        raise Malformed("repeated SOCKS5 method")
    fields: Fields = {"methods": [method_name(code) for code in codes]}
    if greeting.pos == len(data):
        return fields
    if codes != [0]:
        raise Malformed("bytes after a SOCKS5 greeting that needs a method negotiation")
    fields.update(socks5_request(greeting))
    return fields


def socks5_request(request: Reader) -> Fields:
    """A CONNECT request pipelined after a no-authentication greeting."""
    request.expect(b"\x05\x01\x00")
    kind = request.u8()
    if kind == ATYP_IPV4:
        host = ip_text(request.take(4))
    elif kind == ATYP_IPV6:
        host = ip_text(request.take(16))
    elif kind == ATYP_NAME:
        host = hostname(request.vec8().rest())
    else:
        raise Malformed("unknown SOCKS5 address type")
    port = request.u16()
    if port == 0:
        raise Malformed("SOCKS5 request for port 0")
    return {"host": host, "port": port}


SOCKS5 = Identifier(
    trusted=True,
    name="socks5",
    identify=verdict_of(parse_socks5),
    precedence=SPECIFIC_PRECEDENCE,
    fields={"methods": TEXT, "host": HOST, "port": NUMBER},
    description=(
        "SOCKS5 greeting: version 5, 1-255 distinct assigned method codes, and nothing else in the first flight "
        "(or a pipelined CONNECT after a no-auth-only greeting)"
    ),
)
