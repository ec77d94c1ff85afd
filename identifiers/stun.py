"""STUN and TURN over TCP (RFC 8489, RFC 8656): share port 443 between HTTPS and a TURN server.

Every STUN message starts with a 20-byte header:

    2 bits 0 | 14-bit message type | 16-bit length (a multiple of 4) | magic cookie 0x2112A442
    | 96-bit transaction id

The magic cookie makes eight bytes enough to decide. Reports ``method`` (``binding``,
``allocate``, … or the number) and ``class`` (``request``, ``indication``, ``success``,
``error``). WebRTC clients that cannot reach UDP use TURN over TCP on 443, so a route like
``match: {protocol: stun}  to: 127.0.0.1:3478`` next to the HTTPS one serves both.

The classic STUN of RFC 3489 (no magic cookie) is not recognised: it cannot be told apart
from random bytes that early.
"""

NAME = "stun"
FIELDS = ["method", "class"]

MAGIC_COOKIE = b"\x21\x12\xa4\x42"
HEADER = 20
METHODS = {
    0x001: "binding",
    0x003: "allocate",
    0x004: "refresh",
    0x006: "send",
    0x007: "data",
    0x008: "create_permission",
    0x009: "channel_bind",
    0x00A: "connect",
    0x00B: "connection_bind",
    0x00C: "connection_attempt",
}
CLASSES = ("request", "indication", "success", "error")


def identify(data: bytes):
    head = data[:8]
    if len(head) >= 1 and head[0] & 0xC0:
        return None  # the two top bits of a STUN message are zero
    if len(head) >= 4 and int.from_bytes(head[2:4], "big") % 4:
        return None  # attributes are padded to 4 bytes, so is the length
    if not MAGIC_COOKIE.startswith(head[4:8]):
        return None
    if len(head) < 8:
        return 8
    kind = int.from_bytes(data[0:2], "big")
    # The class is spread over bits 4 and 8 of the type; the method is the other 12 bits.
    klass = ((kind >> 4) & 0x1) | ((kind >> 7) & 0x2)
    method = (kind & 0x000F) | ((kind >> 1) & 0x0070) | ((kind >> 2) & 0x0F80)
    return {"method": METHODS.get(method, str(method)), "class": CLASSES[klass]}


SAMPLES = {
    "match": [
        # RFC 5769 section 2.1, the sample request (Binding, with SOFTWARE and credentials)
        bytes.fromhex(
            "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
            "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020"
            "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf"
        ),
        # a TURN Allocate request as a WebRTC client opens it over TCP (REQUESTED-TRANSPORT UDP)
        bytes.fromhex("000300082112a442000102030405060708090a0b0019000411000000"),
    ],
    "no_match": [
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        b"SSH-2.0-OpenSSH_9.6\r\n",
        bytes.fromhex("000100002112a443000102030405060708090a0b"),  # wrong cookie
    ],
}
