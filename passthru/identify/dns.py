"""DNS over TCP (RFC 7766): a 2-byte length, then one query message.

The header must be a standard query: QR=0, opcode QUERY, AA/TC/RA/Z clear, RCODE 0 (RD, AD and
CD may be set), exactly one question, no answers, at most one authority record (IXFR carries
the client's SOA there) and at most two additional records (EDNS OPT, TSIG). The question name is
1-63 byte labels of visible ASCII, at most 255 bytes, no compression pointer; the class is IN,
CH, HS, NONE or ANY. The records after it are walked and must fill the message exactly. A query
is small: messages over 1024 bytes are not taken for one.

Reports ``qname`` (lower case, no trailing dot; ``.`` for the root) and ``qtype`` (``A``,
``AAAA``, ... or ``TYPE<n>``).
"""

from __future__ import annotations

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, Reader, is_printable_ascii, verdict_of

MIN_QUERY, MAX_QUERY = 17, 1024
ALLOWED_FLAGS = 0x0100 | 0x0020 | 0x0010  # RD, AD, CD
CLASSES = frozenset({1, 3, 4, 254, 255})
QTYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    13: "HINFO",
    15: "MX",
    16: "TXT",
    25: "KEY",
    28: "AAAA",
    29: "LOC",
    33: "SRV",
    35: "NAPTR",
    39: "DNAME",
    43: "DS",
    44: "SSHFP",
    46: "RRSIG",
    47: "NSEC",
    48: "DNSKEY",
    50: "NSEC3",
    52: "TLSA",
    64: "SVCB",
    65: "HTTPS",
    99: "SPF",
    251: "IXFR",
    252: "AXFR",
    255: "ANY",
    257: "CAA",
}
MAX_NAME = 255


def domain_name(message: Reader, pointers: bool) -> str:
    """A sequence of labels ending at the root label, or (where allowed) at a pointer backwards."""
    start = message.pos
    labels: list[str] = []
    while True:
        size = message.u8()
        if size == 0:
            break
        if size & 0xC0 == 0xC0 and pointers:
            target = ((size & 0x3F) << 8) | message.u8()
            if not 2 + 12 <= target + 2 < start:
                raise Malformed("compression pointer not backwards into the message")
            labels.append("*")
            break
        if size > 63:
            raise Malformed("label longer than 63 bytes or reserved label type")
        label = message.take(size)
        if not is_printable_ascii(label) or b"." in label:
            raise Malformed("label with invisible characters")
        labels.append(label.decode("ascii").lower())
        if message.pos - start > MAX_NAME:
            raise Malformed("name longer than 255 bytes")
    return ".".join(labels) or "."


def parse_dns(data: bytes) -> Fields:
    frame = Reader(data)
    length = frame.u16()
    if not MIN_QUERY <= length <= MAX_QUERY:
        raise Malformed("length out of range for a query")
    message = Reader(data, 2, 2 + length)
    message.skip(2)  # id
    if message.u16() & ~ALLOWED_FLAGS:
        raise Malformed("not a standard query")
    message.expect(b"\x00\x01\x00\x00")  # one question, no answers
    authority = message.u16()
    additional = message.u16()
    if authority > 1 or additional > 2:
        raise Malformed("too many records for a query")
    qname = domain_name(message, pointers=False)
    qtype = message.u16()
    if qtype == 0 or message.u16() not in CLASSES:
        raise Malformed("bad question type or class")
    for _ in range(authority + additional):
        domain_name(message, pointers=True)
        message.skip(8)  # type, class, ttl
        message.vec16()
    message.finish()
    return {"qname": qname, "qtype": QTYPES.get(qtype, f"TYPE{qtype}")}


DNS = Identifier(
    trusted=True,
    name="dns",
    identify=verdict_of(parse_dns),
    precedence=DEFAULT_PRECEDENCE,
    fields={"qname": HOST, "qtype": TEXT},
    description="DNS over TCP: length-prefixed standard query, one question, valid name, records filling the message",
)
