"""VPNs that run over TCP: OpenVPN and tinc.

``openvpn`` (TCP mode): a 2-byte packet length, then the client's first packet, which is
P_CONTROL_HARD_RESET_CLIENT_V2 (opcode 7) or _V3 (opcode 10, tls-crypt-v2) with key id 0 and an
8-byte session id. The whole packet must be there and one of the real layouts must fit it
exactly:

* plain: ACK array length 0, message packet-id 0, then an empty payload or a list of TLVs
  (the early-negotiation TLVs of OpenVPN 2.6) that fills the packet;
* ``--tls-auth``: an HMAC of 16, 20, 28, 32, 48 or 64 bytes, replay packet-id 1..255, a
  timestamp after 2001, then the plain layout;
* ``--tls-crypt``/``--tls-crypt-v2``: replay packet-id 1..255 (or 0x0f0000NN, OpenVPN 2.6's
  early-negotiation marker), timestamp, a 32-byte tag and at
  least 5 encrypted bytes; with V3 the packet ends with the wrapped client key, whose own
  length is the packet's last 2 bytes.

This is stricter than sslh's probe (length and opcode only) and than Wireshark's heuristic.
Reports ``opcode`` (hard_reset_v2/hard_reset_v3) and ``wrapping`` (none, tls-auth, tls-crypt).

``tinc``: the first line of the meta protocol, ``0 NAME 17`` (tinc 1.0) or ``0 NAME 17.N``
(tinc 1.1), NAME made of letters, digits and underscores (or ``?`` and an invitation cookie).
Reports ``name`` and ``version``.
"""

from __future__ import annotations

from passthru.identify.base import DEFAULT_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    Reader,
    Truncated,
    decimal,
    expect_prefix,
    read_line,
    verdict_of,
    words,
)

OPCODES = {0x38: "hard_reset_v2", 0x50: "hard_reset_v3"}  # (opcode << 3) | key id 0
MIN_PACKET, MAX_PACKET = 14, 2048
HMAC_SIZES = (16, 20, 28, 32, 48, 64)
CRYPT_TAG = 32
EARLIEST_TIME = 1_000_000_000  # 2001-09-09: an OpenVPN replay timestamp is never older
MAX_FIRST_PACKET_ID = 255
EARLY_NEGOTIATION = 0x0F  # OpenVPN 2.6 marks a V3 reset's packet-id 0x0f000001 (EARLY_NEG_START)


def plain_control(packet: Reader) -> None:
    """ACK array length 0, message packet-id 0, then TLVs (or nothing) to the end."""
    packet.expect(b"\x00" * 5)
    while packet.remaining:
        packet.u16()
        packet.vec16()


def replay_header(packet: Reader) -> None:
    """The replay protection of --tls-auth/--tls-crypt: packet-id of a first packet, timestamp."""
    packet_id = packet.u32()
    if packet_id >> 24 not in (0, EARLY_NEGOTIATION) or not 1 <= packet_id & 0xFFFFFF <= MAX_FIRST_PACKET_ID:
        raise Malformed("not the packet-id of a first packet")
    if packet.u32() < EARLIEST_TIME:
        raise Malformed("not the replay header of a first packet")


def tls_auth(body: bytes) -> None:
    for size in HMAC_SIZES:
        try:
            packet = Reader(body, size, len(body))
            replay_header(packet)
            plain_control(packet)
            return
        except Malformed:
            continue
    raise Malformed("no HMAC size fits")


def tls_crypt(body: bytes, opcode: str) -> None:
    packet = Reader(body, 0, len(body))
    replay_header(packet)
    packet.skip(CRYPT_TAG)
    if opcode == "hard_reset_v3":
        wrapped_key = int.from_bytes(body[-2:], "big")
        if not CRYPT_TAG + 2 < wrapped_key <= packet.remaining - 5:
            raise Malformed("wrapped client key length does not fit")
    elif packet.remaining < 5:
        raise Malformed("tls-crypt packet too short")


def wrapping(body: bytes, opcode: str) -> str | None:
    """Which real layout fits the packet after its session id, if any."""
    layouts = (
        ("none", lambda: plain_control(Reader(body, 0, len(body)))),
        ("tls-auth", lambda: tls_auth(body)),
        ("tls-crypt", lambda: tls_crypt(body, opcode)),
    )
    for name, check in layouts:
        if name != "tls-crypt" and opcode != "hard_reset_v2":
            continue
        try:
            check()
        except Malformed:
            continue
        return name
    return None


def parse_openvpn(data: bytes) -> Fields:
    frame = Reader(data)
    length = frame.u16()
    if not MIN_PACKET <= length <= MAX_PACKET:
        raise Malformed("packet length out of range")
    opcode = OPCODES.get(frame.u8())
    if opcode is None:
        raise Malformed("not a client hard reset with key id 0")
    frame.skip(8)  # session id
    found = wrapping(frame.take(length - 9), opcode)
    if found is None:
        raise Malformed("no OpenVPN packet layout fits")
    return {"opcode": opcode, "wrapping": found}


OPENVPN = Identifier(
    trusted=True,
    name="openvpn",
    identify=verdict_of(parse_openvpn),
    precedence=DEFAULT_PRECEDENCE,
    fields={"opcode": TEXT, "wrapping": TEXT},
    description=(
        "OpenVPN over TCP: length-prefixed P_CONTROL_HARD_RESET_CLIENT_V2/V3, key id 0, complete packet "
        "whose plain, tls-auth or tls-crypt layout fits its length"
    ),
)

TINC_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
TINC_COOKIE_CHARS = TINC_NAME_CHARS | frozenset(b"-")
TINC_MAX_LINE = 2048


def tinc_name(raw: bytes) -> str:
    body, chars = (raw[1:], TINC_COOKIE_CHARS) if raw.startswith(b"?") else (raw, TINC_NAME_CHARS)
    if not body or not set(body) <= chars:
        raise Malformed("not a tinc node name")
    return raw.decode("ascii")


def parse_tinc(data: bytes) -> Fields:
    expect_prefix(data, b"0 ")
    try:
        line, _ = read_line(data, 0, TINC_MAX_LINE)
    except Truncated:
        # reject early once the name is over and the version does not start with "17"
        partial = data.split(b" ")
        if len(partial) >= 3:
            tinc_name(partial[1])
            expect_prefix(partial[2], b"17"[: len(partial[2])])
        raise
    _, name, version = words(line, 3)
    major, _, minor = version.partition(b".")
    decimal(major, 17, 17)
    if minor:
        decimal(minor, 255)
    return {"name": tinc_name(name), "version": version.decode("ascii")}


TINC = Identifier(
    trusted=True,
    name="tinc",
    identify=verdict_of(parse_tinc),
    precedence=DEFAULT_PRECEDENCE,
    fields={"name": TEXT, "version": TEXT},
    description="tinc meta-protocol ID line: '0 NAME 17' (1.0) or '0 NAME 17.N' (1.1)",
)
