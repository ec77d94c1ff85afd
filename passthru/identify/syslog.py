"""Syslog over TCP (RFC 6587): octet-counted (``LEN SP MSG``) or LF-delimited messages, each
starting with ``<PRI>`` (0..191, canonical decimal), in one of the two formats:

* RFC 5424: ``<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID `` -- the timestamp is ``-`` or
  an RFC 3339 date-time, each field visible ASCII within its length limit (or ``-``);
* RFC 3164 (BSD): ``<PRI>Mmm dd hh:mm:ss HOSTNAME `` with a real month and clock time.

The octet count must cover at least the header. Reports ``format`` (rfc5424/rfc3164),
``framing`` (octet-counting/non-transparent), ``facility``, ``severity``, ``hostname`` and
``app_name`` (5424).
"""

from __future__ import annotations

import re

from passthru.identify.base import GENERIC_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, Truncated, decimal, is_printable_ascii, verdict_of

MAX_PRI = 191
MAX_FRAME = 64 * 1024
FACILITIES = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "audit",
    "alert",
    "clock",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
]
SEVERITIES = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
PRI = re.compile(rb"<([0-9]{1,3})>")
RFC3339 = re.compile(
    rb"[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\.[0-9]{1,6})?(Z|[+-][0-2][0-9]:[0-5][0-9])"
)
BSD_TIMESTAMP = re.compile(
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ( [1-9]|[12][0-9]|3[01]) [0-2][0-9]:[0-5][0-9]:[0-6][0-9]"
)
# RFC 5424 header fields after the version, with their maximum lengths
RFC5424_FIELDS = (("timestamp", 32), ("hostname", 255), ("app_name", 48), ("procid", 128), ("msgid", 32))


def header_fields(data: bytes, start: int, limits: tuple[tuple[str, int], ...]) -> list[bytes]:
    """Space-separated visible-ASCII fields from ``start``, each within its limit; Truncated
    until the space after the last one has arrived."""
    values: list[bytes] = []
    offset = start
    for _, limit in limits:
        space = data.find(b" ", offset, offset + limit + 1)
        value = data[offset:] if space < 0 else data[offset:space]
        if not is_printable_ascii(value) or (space < 0 and len(value) > limit):
            raise Malformed("bad syslog header field")
        if space < 0:
            raise Truncated(len(data) + 1)
        if not value:
            raise Malformed("empty syslog header field")
        values.append(value)
        offset = space + 1
    return values


def parse_message(data: bytes, start: int) -> Fields:
    if data[start : start + 1] not in (b"", b"<"):
        raise Malformed("message does not start with <PRI>")
    pri = PRI.match(data, start)
    if pri is None:
        if len(data) - start >= 5 or not re.fullmatch(rb"(<[0-9]{0,3})?", data[start:]):
            raise Malformed("bad PRI")
        raise Truncated(len(data) + 1)
    value = decimal(pri.group(1), MAX_PRI)
    fields: Fields = {"facility": FACILITIES[value >> 3], "severity": SEVERITIES[value & 7]}
    offset = pri.end()
    if data.startswith(b"1 ", offset) or data[offset:] in (b"", b"1"):
        timestamp, host, app, _, _ = header_fields(data, offset + 2, RFC5424_FIELDS)
        if timestamp != b"-" and RFC3339.fullmatch(timestamp) is None:
            raise Malformed("bad RFC 5424 timestamp")
        fields.update(format="rfc5424", hostname=host.decode(), app_name=app.decode())
        return fields
    stamp = data[offset : offset + 15]
    if len(stamp) < 15:
        if not could_be_bsd_timestamp(stamp):
            raise Malformed("neither an RFC 5424 version nor a BSD timestamp")
        raise Truncated(offset + 16)
    if not BSD_TIMESTAMP.fullmatch(stamp) or data[offset + 15 : offset + 16] not in (b"", b" "):
        raise Malformed("bad BSD timestamp")
    (host,) = header_fields(data, offset + 16, (("hostname", 255),))
    fields.update(format="rfc3164", hostname=host.decode())
    return fields


MONTHS = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")
# the characters allowed at each position of a BSD timestamp after the month: " d hh:mm:ss"
BSD_SHAPE = (b" ", b" 123", b"0123456789", b" ", b"012", b"0123456789", b":", b"012345", b"0123456789", b":")
BSD_SHAPE += (b"0123456", b"0123456789")


def could_be_bsd_timestamp(stamp: bytes) -> bool:
    """Whether the first bytes of a BSD timestamp can still be completed into one."""
    if not any(month.startswith(stamp[:3]) for month in MONTHS):
        return False
    return all(char in allowed for char, allowed in zip(stamp[3:], BSD_SHAPE, strict=False))


def parse_syslog(data: bytes) -> Fields:
    counted = re.match(rb"[0-9]{1,6}", data)
    if counted is None:
        fields = parse_message(data, 0)
        fields["framing"] = "non-transparent"
        return fields
    if counted.end() == len(data):
        if data.startswith(b"0"):
            raise Malformed("octet count with a leading zero")
        raise Truncated(len(data) + 1)
    if data[counted.end()] != ord(" "):
        raise Malformed("octet count not followed by a space")
    decimal(counted.group(0), MAX_FRAME, 5)
    fields = parse_message(data, counted.end() + 1)
    fields["framing"] = "octet-counting"
    return fields


SYSLOG = Identifier(
    trusted=True,
    name="syslog",
    identify=verdict_of(parse_syslog),
    precedence=GENERIC_PRECEDENCE,
    fields={"format": TEXT, "framing": TEXT, "facility": TEXT, "severity": TEXT, "hostname": HOST, "app_name": TEXT},
    description="Syslog over TCP: <PRI> then an RFC 5424 or RFC 3164 header, octet-counted or LF-framed",
)
