"""TLS: a ClientHello parsed structurally, reassembled across records and TCP reads.

Reports ``sni`` (lower case), ``alpn`` (list, in the client's order) and ``version`` (the
highest the client offers: "1.3", "1.2", ...). GREASE values (RFC 8701) are ignored.

An SSL 2.0 CLIENT-HELLO in the 2-byte record format (what old clients sent for compatibility,
RFC 5246 appendix E.2) is TLS too: ``version`` is "2.0-compat" when it offers SSL 3.0 or TLS,
"2.0" for a pure SSL 2.0 hello; it carries no extensions, so no ``sni``/``alpn``. DTLS is not
TLS over TCP: its record version (0xfeXX) is rejected.
"""

from __future__ import annotations

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, Reader, Truncated, hostname, verdict_of

HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
MAX_RECORD = 2**14 + 2048  # plaintext limit plus the slack RFC 8446 allows for ciphertext
MAX_HELLO = 2**16  # a ClientHello longer than this is not something a real client sends

EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43

VERSION_NAMES = {0x0300: "3.0", 0x0301: "1.0", 0x0302: "1.1", 0x0303: "1.2", 0x0304: "1.3"}


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values: 0x?A?A with both bytes equal."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def handshake_bytes(data: bytes) -> bytes:
    """Concatenate the payloads of the leading handshake records until the ClientHello is whole.

    A ClientHello may be split over several records (and any record over several TCP reads).
    """
    payload = b""
    pos = 0
    needed_payload: int | None = None
    while needed_payload is None or len(payload) < needed_payload:
        record = Reader(data, pos)
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
        fragment = record.take(length) if len(data) >= record.pos + length else None
        if fragment is None:
            # Enough of the record may already be here to reject it early.
            partial = data[record.pos :]
            check_hello_start(payload + partial)
            raise Truncated(record.pos + length)
        payload += fragment
        pos = record.pos
        if needed_payload is None:
            # Also when a whole record carried fewer than 4 bytes: its first byte already decides
            # (checked while the record was partial, so it must be checked once it is whole too).
            check_hello_start(payload)
            if len(payload) >= 4:
                needed_payload = 4 + int.from_bytes(payload[1:4], "big")
    return payload


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


def parse_client_hello(data: bytes) -> Fields:
    if data and data[0] & 0x80:
        return parse_sslv2_hello(data)
    payload = handshake_bytes(data)
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
    seen: set[int] = set()
    while extensions.remaining:
        ext_type = extensions.u16()
        body = extensions.vec16()
        if ext_type in seen:
            raise Malformed("duplicate extension")  # RFC 8446 4.2: MUST NOT repeat
        seen.add(ext_type)
        if ext_type == EXT_SERVER_NAME and body.remaining:
            sni = server_name(body)
            if sni is not None:
                fields["sni"] = sni
        elif ext_type == EXT_ALPN:
            fields["alpn"] = alpn_protocols(body)
        elif ext_type == EXT_SUPPORTED_VERSIONS:
            best = highest_version(body)
            if best is not None:
                fields["version"] = VERSION_NAMES.get(best, f"0x{best:04x}")
    return fields


def server_name(body: Reader) -> str | None:
    names = body.vec16()
    while names.remaining:
        name_type = names.u8()
        name = names.vec16().rest()
        if name_type == 0:
            return hostname(name)
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
    offered = []
    while versions.remaining:
        version = versions.u16()
        if not is_grease(version):
            offered.append(version)
    return max(offered) if offered else None


TLS = Identifier(
    trusted=True,
    name="tls",
    identify=verdict_of(parse_client_hello),
    precedence=DEFAULT_PRECEDENCE,
    fields={"sni": HOST, "alpn": TEXT, "version": TEXT},
    description="TLS ClientHello (SSL 3.0 to TLS 1.3, structurally parsed) or SSLv2-format CLIENT-HELLO",
)
