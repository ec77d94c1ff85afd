"""The Android Debug Bridge transport (``adb connect`` to adbd over TCP): a CNXN message.

The 24-byte little-endian header: command ``CNXN``, protocol version 0x01000000 or 0x01000001,
max payload 4 KiB..1 MiB, payload length within it, payload checksum (the byte sum; 0 allowed
from version 0x01000001 on, which skips it), and the magic ``command ^ 0xffffffff``. The payload
is the system identity ``TYPE:SERIAL:BANNER`` with a known TYPE. Reports ``system_type``,
``version`` and ``features`` (from the banner).
"""

from __future__ import annotations

from passthru.identify.base import DEFAULT_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, Reader, verdict_of

CNXN = b"CNXN"
VERSIONS = {0x01000000: "1.0.0", 0x01000001: "1.0.1"}
MIN_MAXDATA, MAX_MAXDATA = 4096, 1024 * 1024
MAX_IDENTITY = 64 * 1024
SYSTEM_TYPES = ("host", "device", "bootloader", "recovery", "sideload", "rescue")


def parse_adb(data: bytes) -> Fields:
    header = Reader(data)
    header.expect(CNXN)
    version = header.u32le()
    if version not in VERSIONS:
        raise Malformed("unknown ADB protocol version")
    maxdata = header.u32le()
    length = header.u32le()
    checksum = header.u32le()
    if not MIN_MAXDATA <= maxdata <= MAX_MAXDATA or not 1 <= length <= min(maxdata, MAX_IDENTITY):
        raise Malformed("payload size out of range")
    header.expect((int.from_bytes(CNXN, "little") ^ 0xFFFFFFFF).to_bytes(4, "little"))
    identity = header.take(length)
    if (checksum or version == 0x01000000) and checksum != sum(identity):
        raise Malformed("payload checksum mismatch")
    system_type, _, rest = identity.rstrip(b"\0").partition(b":")
    if system_type.decode("latin-1") not in SYSTEM_TYPES or b":" not in rest:
        raise Malformed("payload is not a TYPE:SERIAL:BANNER identity")
    fields: Fields = {"system_type": system_type.decode(), "version": VERSIONS[version]}
    banner = rest.partition(b":")[2]
    for item in banner.split(b";"):
        key, _, value = item.partition(b"=")
        if key == b"features":
            fields["features"] = value.decode("latin-1").split(",")
    return fields


ADB = Identifier(
    trusted=True,
    name="adb",
    identify=verdict_of(parse_adb),
    precedence=DEFAULT_PRECEDENCE,
    fields={"system_type": TEXT, "version": TEXT, "features": TEXT},
    description="ADB CNXN message: header fields, magic, payload checksum and a TYPE:SERIAL:BANNER identity",
)
