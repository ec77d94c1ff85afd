"""Peer-to-peer handshakes: BitTorrent and Bitcoin.

``bittorrent``: the handshake ``\\x13BitTorrent protocol``, 8 reserved bytes and the 20-byte info
hash (48 bytes). Reports ``info_hash`` (hex) and, when the peer id follows in Azureus style
(``-LT2080-``), ``client``. Encrypted handshakes (MSE) are random bytes by design and are not
recognised.

``bitcoin``: a P2P message header with the network magic of main, testnet3, testnet4, signet or
regtest, the command ``version`` (NUL padded), a payload of 46..1024 bytes whose double-SHA-256
checksum matches, and a payload that parses as a version message. Reports ``network``,
``protocol_version`` and ``user_agent``.
"""

from __future__ import annotations

import hashlib
import re

from passthru.identify.base import DEFAULT_PRECEDENCE, NUMBER, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, Reader, expect_prefix, verdict_of

BITTORRENT = b"\x13BitTorrent protocol"
AZUREUS_PEER_ID = re.compile(rb"-([A-Za-z~]{2}[0-9A-Za-z]{4})-")


def parse_bittorrent(data: bytes) -> Fields:
    expect_prefix(data, BITTORRENT)
    handshake = Reader(data, len(BITTORRENT))
    handshake.skip(8)  # reserved (extension bits)
    fields: Fields = {"info_hash": handshake.take(20).hex()}
    client = AZUREUS_PEER_ID.match(data, handshake.pos)
    if client is not None:
        fields["client"] = client.group(1).decode("ascii")
    return fields


BITTORRENT_HANDSHAKE = Identifier(
    trusted=True,
    name="bittorrent",
    identify=verdict_of(parse_bittorrent),
    precedence=DEFAULT_PRECEDENCE,
    fields={"info_hash": TEXT, "client": TEXT},
    description="BitTorrent peer handshake: '\\x13BitTorrent protocol', reserved bytes, info hash",
)

BITCOIN_NETWORKS = {
    b"\xf9\xbe\xb4\xd9": "main",
    b"\x0b\x11\x09\x07": "testnet3",
    b"\x1c\x16\x3f\x28": "testnet4",
    b"\x0a\x03\xcf\x40": "signet",
    b"\xfa\xbf\xb5\xda": "regtest",
}
VERSION_COMMAND = b"version" + bytes(5)
MIN_VERSION_PAYLOAD, MAX_VERSION_PAYLOAD = 46, 1024
MAX_USER_AGENT = 256


def parse_bitcoin(data: bytes) -> Fields:
    header = Reader(data)
    network = BITCOIN_NETWORKS[header.expect_any(tuple(BITCOIN_NETWORKS))]
    header.expect(VERSION_COMMAND)
    length = header.u32le()
    if not MIN_VERSION_PAYLOAD <= length <= MAX_VERSION_PAYLOAD:
        raise Malformed("version payload length out of range")
    checksum = header.take(4)
    payload = header.take(length)
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise Malformed("checksum mismatch")
    version = Reader(payload, 0, length)
    protocol_version = version.u32le()
    if not 106 <= protocol_version < 1_000_000:
        raise Malformed("implausible protocol version")
    version.skip(8 + 8 + 26 + 26 + 8)  # services, timestamp, addr_recv, addr_from, nonce
    size = version.u8()
    if size > MAX_USER_AGENT:
        raise Malformed("user agent too long")
    user_agent = version.take(size).decode("utf-8", "replace")
    version.skip(4)  # start height
    if version.remaining > 1:
        raise Malformed("bytes after the version message")
    return {"network": network, "protocol_version": protocol_version, "user_agent": user_agent}


BITCOIN = Identifier(
    trusted=True,
    name="bitcoin",
    identify=verdict_of(parse_bitcoin),
    precedence=DEFAULT_PRECEDENCE,
    fields={"network": TEXT, "protocol_version": NUMBER, "user_agent": TEXT},
    description="Bitcoin P2P 'version' message: network magic, command, length and double-SHA-256 checksum",
)
