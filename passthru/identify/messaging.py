"""Message brokers: MQTT, AMQP and STOMP.

``mqtt``: a CONNECT packet (type 1, flags 0) with a minimal remaining length, protocol name
``MQIsdp`` level 3 (3.1) or ``MQTT`` level 4 (3.1.1) or 5, connect flags that obey the spec's
rules (reserved bit clear, will QoS/retain only with a will, QoS < 3, no password without a user
name before 5.0), v5 properties, and a payload (client id, will, user name, password) that fills
the packet exactly. Reports ``version``, ``client_id`` and ``username``.

``amqp``: the 8-byte protocol header of AMQP 0-8, 0-9, 0-9-1 or 1.0 (plain, TLS or SASL layer).
Reports ``version`` and for 1.0 ``layer`` (amqp/tls/sasl).

``stomp``: a CONNECT or STOMP frame: the command line, then ``name:value`` headers up to the empty
line, with an ``accept-version`` or ``host`` header. Reports ``host``, ``accept_version`` and
``login``.
"""

from __future__ import annotations

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    Reader,
    expect_one_of,
    first_header,
    header_block,
    hostname,
    utf8_text,
    verdict_of,
)

MQTT_CONNECT = 0x10
MQTT_NAMES = (b"\x00\x04MQTT", b"\x00\x06MQIsdp")
MQTT_VERSIONS = {(b"\x00\x06MQIsdp", 3): "3.1", (b"\x00\x04MQTT", 4): "3.1.1", (b"\x00\x04MQTT", 5): "5.0"}
MQTT_MAX_CONNECT = 1024 * 1024
WILL, WILL_QOS, WILL_RETAIN, PASSWORD, USERNAME = 0x04, 0x18, 0x20, 0x40, 0x80


def mqtt_string(packet: Reader) -> str:
    return utf8_text(packet.vec16().rest())


def parse_mqtt(data: bytes) -> Fields:
    packet = Reader(data)
    packet.expect(bytes([MQTT_CONNECT]))
    remaining = packet.varint()
    if not 12 <= remaining <= MQTT_MAX_CONNECT:
        raise Malformed("CONNECT length out of range")
    body = packet.sub(remaining)
    name = body.expect_any(MQTT_NAMES)
    level = body.u8()
    version = MQTT_VERSIONS.get((name, level))
    if version is None:
        raise Malformed("unknown protocol name and level")
    flags = body.u8()
    if flags & 0x01 or (flags & WILL_QOS) == WILL_QOS:
        raise Malformed("reserved connect flag set or will QoS 3")
    if not flags & WILL and flags & (WILL_QOS | WILL_RETAIN):
        raise Malformed("will QoS or retain without a will")
    if level < 5 and flags & PASSWORD and not flags & USERNAME:
        raise Malformed("password without user name")
    body.skip(2)  # keep alive
    if level == 5:
        body.sub(body.varint())  # properties
    fields: Fields = {"version": version, "client_id": mqtt_string(body)}
    if flags & WILL:
        if level == 5:
            body.sub(body.varint())  # will properties
        if not mqtt_string(body):
            raise Malformed("empty will topic")
        body.vec16()  # will payload
    if flags & USERNAME:
        fields["username"] = mqtt_string(body)
    if flags & PASSWORD:
        body.vec16()
    body.finish()
    return fields


MQTT = Identifier(
    trusted=True,
    name="mqtt",
    identify=verdict_of(parse_mqtt),
    precedence=DEFAULT_PRECEDENCE,
    fields={"version": TEXT, "client_id": TEXT, "username": TEXT},
    description="MQTT CONNECT (3.1, 3.1.1, 5.0): protocol name/level, legal flags, payload filling the packet",
)

AMQP_HEADERS = {
    b"AMQP\x00\x00\x09\x01": ("0-9-1", None),
    b"AMQP\x01\x01\x00\x09": ("0-9", None),
    b"AMQP\x01\x01\x08\x00": ("0-8", None),
    b"AMQP\x00\x01\x00\x00": ("1.0", "amqp"),
    b"AMQP\x02\x01\x00\x00": ("1.0", "tls"),
    b"AMQP\x03\x01\x00\x00": ("1.0", "sasl"),
}


def parse_amqp(data: bytes) -> Fields:
    version, layer = AMQP_HEADERS[expect_one_of(data, tuple(AMQP_HEADERS))]
    return {"version": version} if layer is None else {"version": version, "layer": layer}


AMQP = Identifier(
    trusted=True,
    name="amqp",
    identify=verdict_of(parse_amqp),
    precedence=DEFAULT_PRECEDENCE,
    fields={"version": TEXT, "layer": TEXT},
    description="AMQP protocol header: 0-8, 0-9, 0-9-1, or 1.0 (AMQP, TLS or SASL layer)",
)

STOMP_COMMANDS = (b"CONNECT\n", b"CONNECT\r\n", b"STOMP\n", b"STOMP\r\n")
STOMP_MAX_HEADERS = 8192


def parse_stomp(data: bytes) -> Fields:
    command = expect_one_of(data, STOMP_COMMANDS)
    headers = header_block(data, len(command), STOMP_MAX_HEADERS)
    host = first_header(headers, b"host")
    accept = first_header(headers, b"accept-version")
    if host is None and accept is None:
        raise Malformed("neither host nor accept-version")
    fields: Fields = {}
    if host:
        fields["host"] = hostname(host)
    if accept:
        fields["accept_version"] = accept.decode("ascii", "replace")
    login = first_header(headers, b"login")
    if login:
        fields["login"] = utf8_text(login)
    return fields


STOMP = Identifier(
    trusted=True,
    name="stomp",
    identify=verdict_of(parse_stomp),
    precedence=DEFAULT_PRECEDENCE,
    fields={"host": HOST, "accept_version": TEXT, "login": TEXT},
    description="STOMP CONNECT/STOMP frame with well-formed headers including accept-version or host",
)
