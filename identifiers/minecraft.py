"""Minecraft: Java Edition, the handshake a client sends first (server list ping or login).

    VarInt length | VarInt packet id 0x00 | VarInt protocol version | String server address
    | Unsigned Short port | VarInt next state (1 status, 2 login, 3 transfer since 1.20.5)

A VarInt is 7 bits per byte, least significant group first, high bit set on all bytes but the
last; a String is a VarInt byte count then UTF-8. Reports ``server_address`` (what the player
typed: lower case, without a trailing dot or the "\\0FML…" marker modded clients append),
``port``, ``protocol_version`` and ``next_state``, so a route can pick a server by name:

    match: {protocol: minecraft, server_address: [mc.example.com, "*.mc.example.com"]}

The pre-1.7 server list ping (first byte 0xFE) is not recognised.
"""

NAME = "minecraft"
FIELDS = ["server_address", "port", "protocol_version", "next_state"]

MAX_PACKET = 1100  # id + version + a 255-character address (up to 4 bytes each) + port + state
NEXT_STATES = (1, 2, 3)


class Short(Exception):
    """The data ends inside a field; ``needed`` is the total length that would help."""

    def __init__(self, needed):
        super().__init__(needed)
        self.needed = needed


class Malformed(Exception):
    """These bytes cannot be a handshake."""


def read_varint(data, pos, end, max_bytes=5):
    """(value, next position). ``end`` is where the packet stops; a field may not cross it."""
    value = 0
    for i in range(max_bytes):
        if end is not None and pos + i >= end:
            raise Malformed("VarInt runs past the end of the packet")
        if pos + i >= len(data):
            raise Short(pos + i + 1)
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise Malformed(f"VarInt longer than {max_bytes} bytes")


def take(data, pos, size, end):
    if pos + size > end:
        raise Malformed("field runs past the end of the packet")
    if pos + size > len(data):
        raise Short(pos + size)
    return data[pos : pos + size], pos + size


def parse_handshake(data):
    length, pos = read_varint(data, 0, None, max_bytes=2)  # a handshake is far below 16 KiB
    if not 6 <= length <= MAX_PACKET:
        raise Malformed(f"implausible packet length {length}")
    end = pos + length
    packet_id, pos = read_varint(data, pos, end, max_bytes=1)
    if packet_id != 0x00:
        raise Malformed("not packet 0x00")
    version, pos = read_varint(data, pos, end)
    if version >= 1 << 31:
        version -= 1 << 32  # VarInts are signed 32-bit
    size, pos = read_varint(data, pos, end, max_bytes=2)
    raw_address, pos = take(data, pos, size, end)
    port, pos = take(data, pos, 2, end)
    state, pos = read_varint(data, pos, end, max_bytes=1)
    if state not in NEXT_STATES or pos != end:
        raise Malformed("bad next state or trailing bytes in the handshake")
    try:
        address = raw_address.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("server address is not UTF-8") from None
    return {
        "server_address": address.split("\0", 1)[0].rstrip(".").lower(),
        "port": int.from_bytes(port, "big"),
        "protocol_version": version,
        "next_state": state,
    }


def identify(data: bytes):
    try:
        return parse_handshake(data)
    except Short as short:
        return short.needed
    except Malformed:
        return None


SAMPLES = {
    "match": [
        # 1.21 (protocol 767) login to mc.example.com:25565
        b"\x15\x00\xff\x05\x0emc.example.com\x63\xdd\x02",
        # 1.8 (protocol 47) status ping to localhost, followed by the status request
        b"\x0f\x00\x2f\x09localhost\x63\xdd\x01\x01\x00",
        # a Forge client: the address carries "\0FML3\0"
        b"\x1b\x00\xff\x05\x14MC.Example.com\x00FML3\x00\x63\xdd\x02",
    ],
    "no_match": [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\xfe\x01\xfa",  # the legacy (pre-1.7) server list ping
        b"\x15\x00\xff\x05\x0emc.example.com\x63\xdd\x07",  # next state 7
    ],
}
