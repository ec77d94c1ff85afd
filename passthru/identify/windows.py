"""Microsoft remote protocols: RDP and SMB.

``rdp``: a TPKT header (version 3, length 11..1024) carrying an X.224 Connection Request whose
length indicator matches the TPKT length, with DST-REF 0 and class 0, then an optional cookie
line (``Cookie: mstshash=NAME`` or a ``Cookie: msts=`` routing token) and an optional RDP
Negotiation Request (type 1, length 8, with its optional correlation info) filling the rest.
Reports ``cookie`` (the mstshash name), ``routing_token`` and ``protocols`` (requested security
protocols: rdp, ssl, hybrid, rdstls, hybrid_ex).

``smb``: a NetBIOS session message (type 0, 24-bit length) holding an SMB1 NEGOTIATE (``\\xffSMB``
command 0x72, status 0, word count 0, a dialect list of ``\\x02``-prefixed strings filling the
byte count) or an SMB2/3 NEGOTIATE (``\\xfeSMB``, header size 64, command 0, request direction,
structure size 36, 1..64 known dialect codes); or a NetBIOS session request (type 0x81, port
139) with two well-encoded NetBIOS names. Reports ``version`` ("1", "2") and ``dialects``, or for a
session request ``called`` (the server's NetBIOS name).
"""

from __future__ import annotations

from passthru.identify.base import DEFAULT_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    Reader,
    Truncated,
    ascii_text,
    peek_u8,
    read_crlf_line,
    verdict_of,
)

TPKT_MIN, TPKT_MAX = 11, 1024
X224_CONNECTION_REQUEST = 0xE0
RDP_NEG_REQ = 0x01
CORRELATION_INFO_PRESENT = 0x08
RDP_PROTOCOLS = {0x01: "ssl", 0x02: "hybrid", 0x04: "rdstls", 0x08: "hybrid_ex", 0x10: "rdsaad"}
COOKIE = b"Cookie: mstshash="
ROUTING_TOKEN = b"Cookie: msts="


def parse_rdp(data: bytes) -> Fields:
    tpkt = Reader(data)
    tpkt.expect(b"\x03\x00")
    length = tpkt.u16()
    if not TPKT_MIN <= length <= TPKT_MAX:
        raise Malformed("TPKT length out of range")
    x224 = Reader(data, 4, length)
    if x224.u8() != length - 5:
        raise Malformed("X.224 length indicator does not match the TPKT length")
    x224.expect(bytes([X224_CONNECTION_REQUEST]) + b"\x00\x00")  # CR with credit 0, DST-REF 0
    x224.skip(2)  # SRC-REF
    x224.expect(b"\x00")  # class 0, no options
    fields: Fields = {}
    if x224.remaining and peek_u8(data, x224.pos) == ord("C"):
        fields.update(cookie(x224))
    if x224.remaining:
        fields["protocols"] = negotiation_request(x224)
    x224.finish()
    return fields


def cookie(x224: Reader) -> Fields:
    """The CRLF-terminated cookie line inside the X.224 request."""
    window = x224.data[: x224.end]
    try:
        line, end = read_crlf_line(window, x224.pos, TPKT_MAX)
    except Truncated:
        if len(window) == x224.end:
            raise Malformed("cookie line without CRLF") from None
        raise
    x224.skip(end - x224.pos)
    if line.startswith(COOKIE):
        return {"cookie": ascii_text(line[len(COOKIE) :], allow=b" ")}
    if line.startswith(ROUTING_TOKEN):
        return {"routing_token": ascii_text(line[len(ROUTING_TOKEN) :])}
    raise Malformed("unknown cookie")


def negotiation_request(x224: Reader) -> list[str]:
    x224.expect(bytes([RDP_NEG_REQ]))
    flags = x224.u8()
    if flags & ~0x0B:
        raise Malformed("undefined RDP_NEG_REQ flags")
    x224.expect(b"\x08\x00")
    requested = x224.u32le()
    if requested & ~0x1F:
        raise Malformed("undefined requested protocols")
    if flags & CORRELATION_INFO_PRESENT:
        x224.expect(b"\x06\x00\x24\x00")  # TYPE_RDP_CORRELATION_INFO, flags 0, length 36
        x224.skip(32)
    protocols = ["rdp"] if requested == 0 else []
    return protocols + [name for bit, name in RDP_PROTOCOLS.items() if requested & bit]


RDP = Identifier(
    trusted=True,
    name="rdp",
    identify=verdict_of(parse_rdp),
    precedence=DEFAULT_PRECEDENCE,
    fields={"cookie": TEXT, "routing_token": TEXT, "protocols": TEXT},
    description="RDP: TPKT + X.224 Connection Request, optional mstshash cookie and RDP_NEG_REQ, lengths consistent",
)

SMB_MAX = 64 * 1024
SMB2_DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x02FF: "2.???", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}
SMB1_NEGOTIATE = 0x72
NETBIOS_SESSION_REQUEST = 0x81
NETBIOS_NAME_LENGTH = 32


def parse_smb(data: bytes) -> Fields:
    if peek_u8(data, 0) == NETBIOS_SESSION_REQUEST:
        return session_request(data)
    frame = Reader(data)
    frame.expect(b"\x00")
    length = frame.u24()
    if not 35 <= length <= SMB_MAX:
        raise Malformed("NetBIOS message length out of range for a negotiate")
    message = Reader(data, 4, 4 + length)
    if message.expect_any((b"\xffSMB", b"\xfeSMB")) == b"\xffSMB":
        return smb1_negotiate(message)
    return smb2_negotiate(message)


def smb1_negotiate(message: Reader) -> Fields:
    message.expect(bytes([SMB1_NEGOTIATE]) + bytes(4))  # command, status 0
    message.skip(23)  # flags, flags2, pid high, signature, reserved, tid, pid, uid, mid
    message.expect(b"\x00")  # word count
    dialects = message.sub(message.u16le())
    names: list[str] = []
    while dialects.remaining:
        dialects.expect(b"\x02")
        names.append(ascii_text(dialects.cstring(64), allow=b" "))
    if not names:
        raise Malformed("no dialects")
    message.finish()
    return {"version": "1", "dialects": names}


def smb2_negotiate(message: Reader) -> Fields:
    message.expect(b"\x40\x00")  # header structure size 64
    message.skip(2 + 4)  # credit charge, channel sequence / status
    message.expect(b"\x00\x00")  # command NEGOTIATE
    message.skip(2)  # credits requested
    if message.u32le() & 0x01:
        raise Malformed("response flag set in a request")
    message.skip(4 + 8 + 4 + 4 + 8 + 16)  # next command, message id, pid, tree id, session id, signature
    message.expect(b"\x24\x00")  # NEGOTIATE request structure size 36
    count = message.u16le()
    if not 1 <= count <= 64:
        raise Malformed("dialect count out of range")
    message.skip(2 + 2 + 4 + 16 + 8)  # security mode, reserved, capabilities, client guid, contexts
    names = []
    for _ in range(count):
        name = SMB2_DIALECTS.get(message.u16le())
        if name is None:
            raise Malformed("unknown SMB2 dialect")
        names.append(name)
    message.skip(message.remaining)
    return {"version": "2", "dialects": names}


def netbios_name(request: Reader) -> str:
    """A first-level encoded NetBIOS name (RFC 1001 14.1): 32 letters A..P, then the scope."""
    request.expect(bytes([NETBIOS_NAME_LENGTH]))
    encoded = request.take(NETBIOS_NAME_LENGTH)
    if any(not 0x41 <= c <= 0x50 for c in encoded):
        raise Malformed("NetBIOS name not first-level encoded")
    request.expect(b"\x00")  # empty scope
    raw = bytes((encoded[i] - 0x41) << 4 | (encoded[i + 1] - 0x41) for i in range(0, NETBIOS_NAME_LENGTH, 2))
    return raw[:15].rstrip(b" \0").decode("latin-1")


def session_request(data: bytes) -> Fields:
    frame = Reader(data, 1)
    frame.expect(b"\x00\x00\x44")  # flags 0, length 68: two 34-byte names
    request = Reader(data, 4, 4 + 68)
    called = netbios_name(request)
    netbios_name(request)
    return {"called": called}


SMB = Identifier(
    trusted=True,
    name="smb",
    identify=verdict_of(parse_smb),
    precedence=DEFAULT_PRECEDENCE,
    fields={"version": TEXT, "dialects": TEXT, "called": TEXT},
    description="SMB1 or SMB2/3 NEGOTIATE over NetBIOS session framing, or a NetBIOS session request (139)",
)
