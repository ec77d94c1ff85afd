"""TLS: a ClientHello parsed structurally, reassembled across records and TCP reads.

Reports ``sni`` (lower case; left out when the name is not visible ASCII, which no route could
match, rather than losing the ClientHello), ``alpn`` (list, in the client's order) and ``version`` (the
highest the client offers: "1.3", "1.2", ...). GREASE values (RFC 8701) are ignored.

An SSL 2.0 CLIENT-HELLO in the 2-byte record format (what old clients sent for compatibility,
RFC 5246 appendix E.2) is TLS too: ``version`` is "2.0-compat" when it offers SSL 3.0 or TLS,
"2.0" for a pure SSL 2.0 hello; it carries no extensions, so no ``sni``/``alpn``. DTLS is not
TLS over TCP: its record version (0xfeXX) is rejected.
"""

from __future__ import annotations

import struct

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.incremental import Resumable
from passthru.identify.parsing import Malformed, Reader, Truncated, hostname

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
MAX_RECORD = 2**14 + 2048  # plaintext limit plus the slack RFC 8446 allows for ciphertext
MAX_HELLO = 2**16  # a ClientHello longer than this is not something a real client sends

EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
EXTENSIONS_READ = frozenset({EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_VERSIONS})

VERSION_NAMES = {0x0300: "3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values: 0x?A?A with both bytes equal."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


class HandshakeRecords:
    """The payloads of the leading handshake records, gathered until the ClientHello is whole.

    A ClientHello may be split over several records (and any record over several TCP reads).
    The reassembly keeps its place across calls (an ``Identifier.session``): a hello trickled in
    as thousands of one-byte records is read once, not once per record.
    """

    __slots__ = ("examined", "needed", "payload", "pos")

    def __init__(self) -> None:
        self.pos = 0  # where the next record starts
        self.payload = bytearray()
        self.needed: int | None = None  # the whole hello's length, once its header arrived
        self.examined = 0  # bytes of the input looked at (whole records, and partial ones' starts)

    def read(self, data: bytes) -> bytes:
        while self.needed is None or len(self.payload) < self.needed:
            record = Reader(data, self.pos)
            content_type = record.u8()
            if content_type != HANDSHAKE:
                raise Malformed("not a handshake record")
            major = record.u8()
            minor = record.u8()
            if major != 3 or minor > 4:
                raise Malformed("record version is not SSL 3.0 to TLS 1.3")
            length = record.u16()
            if length == 0 or length > MAX_RECORD:
                raise Malformed("record length out of range")
            if len(data) < record.pos + length:
                # Enough of the record may already be here to reject it early.
                start = data[record.pos : record.pos + 5]
                self.examined += record.pos - self.pos + len(start)
                check_hello_start(bytes(self.payload[:5]) + start)
                raise Truncated(record.pos + length)
            self.payload += record.take(length)
            self.examined += record.pos - self.pos
            self.pos = record.pos
            if self.needed is None:
                # Also when a whole record carried fewer than 4 bytes: its first byte already
                # decides (checked while the record was partial, so once it is whole too).
                check_hello_start(bytes(self.payload[:5]))
                if len(self.payload) >= 4:
                    self.needed = 4 + int.from_bytes(self.payload[1:4], "big")
        return bytes(self.payload)


def check_hello_start(payload: bytes) -> None:
    """Reject early when the first handshake bytes cannot start a ClientHello."""
    if payload and payload[0] != CLIENT_HELLO:
        raise Malformed("first handshake message is not a ClientHello")
    if len(payload) >= 4:
        length = int.from_bytes(payload[1:4], "big")
        if length < 38 or length > MAX_HELLO:
            raise Malformed("ClientHello length out of range")
    if len(payload) >= 5 and payload[4] != 3:
        raise Malformed("ClientHello version is not 3.x")


SSL2_CLIENT_HELLO = 0x01
SSL2_MAX_RECORD = 0x7FFF  # 2-byte header: the high bit is the flag, 15 bits of length


def parse_sslv2_hello(data: bytes) -> Fields:
    """The SSL 2.0 record-format CLIENT-HELLO: lengths must add up to the record length."""
    header = Reader(data)
    length = header.u16() & SSL2_MAX_RECORD
    hello = Reader(data, 2, 2 + length)
    if hello.u8() != SSL2_CLIENT_HELLO:
        raise Malformed("SSLv2 record is not a CLIENT-HELLO")
    version = hello.u16()
    if version != 0x0002 and version not in VERSION_NAMES:
        raise Malformed("SSLv2 hello offers an unknown version")
    specs = hello.u16()
    session_id = hello.u16()
    challenge = hello.u16()
    if not specs or specs % 3 or session_id not in (0, 16) or not 16 <= challenge <= 32:
        raise Malformed("SSLv2 CLIENT-HELLO lengths out of range")
    if length != 9 + specs + session_id + challenge:
        raise Malformed("SSLv2 CLIENT-HELLO lengths do not add up to the record")
    hello.skip(specs + session_id + challenge)
    return {"version": "2.0" if version == 0x0002 else "2.0-compat"}


class ClientHello(Resumable):
    """A ClientHello (or SSLv2-format hello) read resumably: see ``HandshakeRecords``."""

    def __init__(self) -> None:
        super().__init__()
        self.records = HandshakeRecords()

    @property
    def examined(self) -> int:
        return self.records.examined

    def parse(self, data: bytes) -> Fields:
        if data and data[0] & 0x80:
            return parse_sslv2_hello(data)
        return client_hello_fields(self.records.read(data))


def client_hello_fields(payload: bytes) -> Fields:
    """The fields of a complete ClientHello handshake message."""
    hello = Reader(payload, 4, 4 + int.from_bytes(payload[1:4], "big"))
    legacy_version = hello.u16()
    hello.skip(32)  # random
    session_id = hello.vec8()
    if session_id.remaining > 32:
        raise Malformed("session id longer than 32 bytes")
    suites = hello.vec16()
    if suites.remaining < 2 or suites.remaining % 2:
        raise Malformed("cipher suite list has an odd or zero length")
    compression = hello.vec8()
    if compression.remaining < 1:
        raise Malformed("no compression methods")
    fields: Fields = {"version": VERSION_NAMES.get(legacy_version, f"0x{legacy_version:04x}")}
    if hello.remaining == 0:
        return fields  # SSL 3.0 style hello without extensions
    extensions = hello.vec16()
    if hello.remaining:
        raise Malformed("bytes after the extensions")
    found = extension_bounds(payload, extensions.pos, extensions.remaining)
    if len({ext_type for ext_type, _, _ in found}) != len(found):
        raise Malformed("duplicate extension")  # RFC 8446 4.2: MUST NOT repeat
    for ext_type, start, end in found:
        if ext_type not in EXTENSIONS_READ:
            continue
        if ext_type == EXT_SERVER_NAME and end > start:
            sni = server_name(Reader(payload, start, end))
            if sni is not None:
                fields["sni"] = sni
        elif ext_type == EXT_ALPN:
            fields["alpn"] = alpn_protocols(Reader(payload, start, end))
        elif ext_type == EXT_SUPPORTED_VERSIONS:
            best = highest_version(Reader(payload, start, end))
            if best is not None:
                fields["version"] = VERSION_NAMES.get(best, f"0x{best:04x}")
    return fields


def extension_bounds(payload: bytes, pos: int, length: int) -> list[tuple[int, int, int]]:
    """(type, body start, body end) of each extension in ``payload[pos:pos + length]`` (all of
    it has arrived): a hello carries a dozen or more, and only three are read, so the list is
    walked with plain integers rather than a ``Reader`` per extension."""
    end = pos + length
    found = []
    while pos < end:
        start = pos + 4
        if start > end:
            raise Malformed("extension header overruns the extension list")
        ext_type = payload[pos] << 8 | payload[pos + 1]
        pos = start + (payload[pos + 2] << 8 | payload[pos + 3])
        if pos > end:
            raise Malformed("extension overruns the extension list")
        found.append((ext_type, start, pos))
    return found


def server_name(body: Reader) -> str | None:
    names = body.vec16()
    while names.remaining:
        name_type = names.u8()
        name = names.vec16().rest()
        if name_type == 0:
            try:
                return hostname(name)
            except Malformed:
                return None  # a name no route could match (NUL, spaces, non-ASCII): still TLS, no sni
    return None


def alpn_protocols(body: Reader) -> list[str]:
    protocols = body.vec16()
    offered: list[str] = []
    while protocols.remaining:
        raw = protocols.vec8().rest()
        if not raw:
            raise Malformed("empty ALPN protocol name")
        offered.append(raw.decode("latin-1"))
    return offered


def highest_version(body: Reader) -> int | None:
    versions = body.vec8()
    if versions.remaining % 2:
        raise Malformed("odd supported_versions length")
    raw = versions.rest()
    offered = [version for version in struct.unpack(f">{len(raw) // 2}H", raw) if not is_grease(version)]
    return max(offered) if offered else None


TLS = Identifier(
    trusted=True,
    name="tls",
    identify=ClientHello.once,
    session=ClientHello,
    precedence=DEFAULT_PRECEDENCE,
    fields={"sni": HOST, "alpn": TEXT, "version": TEXT},
    description="TLS ClientHello (SSL 3.0 to TLS 1.3, structurally parsed) or SSLv2-format CLIENT-HELLO",
)
