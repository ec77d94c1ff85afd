"""DNS over TCP (RFC 7766): a 2-byte length, then one request message of these kinds:

* a standard query (opcode QUERY): exactly one question, no answers, at most one authority
  record (IXFR carries the client's SOA there) and at most two additional records (EDNS OPT,
  TSIG); or no question but an OPT record (RFC 7873 5.4, ``dig +header-only``: learning a
  server cookie); at most 1024 bytes, as a query is small;
* a NOTIFY (opcode 4, RFC 1996; ``dig +opcode=notify``, a primary telling its secondaries): one
  question, at most one answer (the new SOA), no authority records, at most two additional;
  at most 1024 bytes, AA allowed (primaries set it);
* an UPDATE (opcode 5, RFC 2136; ``nsupdate``, DHCP servers, Active Directory registration):
  one zone entry of type SOA, then any number of prerequisite, update and additional records
  (TSIG, GSS-TSIG) up to the 16-bit length.

In every kind QR=0, TC/RA/Z clear, RCODE 0 (RD, AD and CD may be set). The question (zone) name
is 1-63 byte labels of visible ASCII, at most 255 bytes, no compression pointer; the class is IN,
CH, HS, NONE or ANY. The records after it are walked and must fill the message exactly.

Reports ``opcode`` (``query``, ``notify``, ``update``), ``qname`` (the question, or the zone of
an UPDATE; lower case, no trailing dot; ``.`` for the root; absent without a question) and
``qtype`` (``A``, ``AAAA``, ... or ``TYPE<n>``; ``SOA`` for an UPDATE).
"""

from __future__ import annotations

from dataclasses import dataclass

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, Reader, Truncated, is_printable_ascii, verdict_of

MIN_QUERY, MAX_QUERY = 17, 1024
AA, RD, AD, CD = 0x0400, 0x0100, 0x0020, 0x0010
QUERY, NOTIFY, UPDATE = 0, 4, 5
SOA = 6


@dataclass(frozen=True)
class Kind:
    """What one opcode's request may hold: header flags, record counts, size."""

    name: str
    flags: int
    max_answers: int
    max_authority: int
    max_additional: int
    max_length: int


UNBOUNDED = 0xFFFF
KINDS = {
    QUERY: Kind("query", RD | AD | CD, 0, 1, 2, MAX_QUERY),
    NOTIFY: Kind("notify", AA | RD | AD | CD, 1, 0, 2, MAX_QUERY),
    # counts: zone, prerequisites, updates, additional (RFC 2136 section 2)
    UPDATE: Kind("update", RD | AD | CD, UNBOUNDED, UNBOUNDED, UNBOUNDED, UNBOUNDED),
}
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
    if length < MIN_QUERY:
        raise Malformed("length out of range for a request")
    message = Reader(data, 2, 2 + length)
    message.skip(2)  # id
    flags = message.u16()
    kind = KINDS.get(flags >> 11 & 0x1F)  # QR and opcode: QR must be 0
    if kind is None or flags & 0x07FF & ~kind.flags or length > kind.max_length:
        raise Malformed("not a query, notify or update request")
    questions, answers, authority, additional = message.u16(), message.u16(), message.u16(), message.u16()
    # one question (one zone); none only in a query that carries an OPT, to learn a server cookie
    if questions != 1 and not (questions == 0 and kind.name == "query" and additional):
        raise Malformed("not one question")
    if answers > kind.max_answers or authority > kind.max_authority or additional > kind.max_additional:
        raise Malformed("too many records for the request")
    if len(data) < 2 + length:  # walk the records once, when all are here (an UPDATE may be long)
        raise Truncated(2 + length)
    fields: Fields = {"opcode": kind.name}
    if questions:
        fields["qname"] = domain_name(message, pointers=False)
        qtype = message.u16()
        if qtype == 0 or message.u16() not in CLASSES or (kind.name == "update" and qtype != SOA):
            raise Malformed("bad question type or class")
        fields["qtype"] = QTYPES.get(qtype, f"TYPE{qtype}")
    for _ in range(answers + authority + additional):
        domain_name(message, pointers=True)
        message.skip(8)  # type, class, ttl
        message.vec16()
    message.finish()
    return fields


DNS = Identifier(
    trusted=True,
    name="dns",
    identify=verdict_of(parse_dns),
    precedence=DEFAULT_PRECEDENCE,
    fields={"opcode": TEXT, "qname": HOST, "qtype": TEXT},
    description=(
        "DNS over TCP: length-prefixed query, NOTIFY or UPDATE, one question (zone), valid name, "
        "records filling the message"
    ),
)
