"""The PROXY protocol header (HAProxy's spec, versions 1 and 2), as a client of Passthru sends it.

Version 1 is one text line ``PROXY TCP4|TCP6 src dst sport dport\\r\\n`` (or ``PROXY UNKNOWN``) of
at most 107 bytes, with addresses of the stated family and canonical decimal ports. Version 2 is
the 12-byte signature, version 2 with command LOCAL or PROXY, a known family/transport, and a
length that covers the address block of that family; TLVs after the addresses are walked and
must fill the header exactly.

Reports ``version`` ("1" or "2"), ``command`` (proxy/local), ``family`` (tcp4, tcp6, udp4, udp6,
unix, unknown), ``source``, ``destination``, ``source_port``, ``destination_port``, and from v2
TLVs ``authority`` (the SNI the proxy saw) and ``alpn``.
"""

from __future__ import annotations

from passthru.identify.base import HOST, NUMBER, SPECIFIC_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    Reader,
    decimal,
    expect_one_of,
    hostname,
    ip_text,
    parse_ip,
    read_crlf_line,
    verdict_of,
    words,
)

V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the spec's worst case, CRLF included
V1_FAMILIES = {b"TCP4": ("tcp4", 4), b"TCP6": ("tcp6", 6)}

V2_COMMANDS = {0x20: "local", 0x21: "proxy"}
# family/transport byte: (name, address block length)
V2_FAMILIES = {
    0x00: ("unknown", 0),
    0x11: ("tcp4", 12),
    0x12: ("udp4", 12),
    0x21: ("tcp6", 36),
    0x22: ("udp6", 36),
    0x31: ("unix", 216),
    0x32: ("unix", 216),
}
TLV_ALPN, TLV_AUTHORITY = 0x01, 0x02


def parse_v1(data: bytes) -> Fields:
    line, _ = read_crlf_line(data, 0, V1_MAX - 1)
    parts = words(line)
    if parts[1] == b"UNKNOWN":
        return {"version": "1", "command": "proxy", "family": "unknown"}
    family = V1_FAMILIES.get(parts[1])
    if family is None or len(parts) != 6:
        raise Malformed("PROXY v1 line is not PROXY TCP4|TCP6 src dst sport dport")
    name, ip_version = family
    return {
        "version": "1",
        "command": "proxy",
        "family": name,
        "source": parse_ip(parts[2], ip_version),
        "destination": parse_ip(parts[3], ip_version),
        "source_port": decimal(parts[4], 65535),
        "destination_port": decimal(parts[5], 65535),
    }


def parse_v2(data: bytes) -> Fields:
    header = Reader(data, len(V2_SIGNATURE))
    command = V2_COMMANDS.get(header.u8())
    if command is None:
        raise Malformed("PROXY v2 version/command byte is not 0x20 or 0x21")
    family = V2_FAMILIES.get(header.u8())
    if family is None:
        raise Malformed("unknown PROXY v2 address family")
    name, address_length = family
    body = header.vec16()
    if body.remaining < address_length:
        raise Malformed("PROXY v2 length shorter than its address block")
    fields: Fields = {"version": "2", "command": command, "family": name}
    if address_length in (12, 36):
        size = (address_length - 4) // 2
        fields["source"] = ip_text(body.take(size))
        fields["destination"] = ip_text(body.take(size))
        fields["source_port"] = body.u16()
        fields["destination_port"] = body.u16()
    else:
        body.skip(address_length)
    while body.remaining:
        kind = body.u8()
        value = body.vec16().rest()
        if kind == TLV_AUTHORITY and value:
            fields["authority"] = hostname(value)
        elif kind == TLV_ALPN and value:
            fields["alpn"] = value.decode("latin-1")
    return fields


def parse_proxy(data: bytes) -> Fields:
    prefix = expect_one_of(data, (V1_PREFIX, V2_SIGNATURE))
    return parse_v1(data) if prefix == V1_PREFIX else parse_v2(data)


PROXY = Identifier(
    trusted=True,
    name="proxy",
    identify=verdict_of(parse_proxy),
    precedence=SPECIFIC_PRECEDENCE,
    fields={
        "version": TEXT,
        "command": TEXT,
        "family": TEXT,
        "source": TEXT,
        "destination": TEXT,
        "source_port": NUMBER,
        "destination_port": NUMBER,
        "authority": HOST,
        "alpn": TEXT,
    },
    description="PROXY protocol v1 line (TCP4/TCP6/UNKNOWN, valid addresses and ports) or v2 binary header",
)
