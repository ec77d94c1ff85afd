"""Memcached's binary protocol: the request a client opens with (libmemcached with
``BINARY_PROTOCOL``, spymemcached, Couchbase SDKs, pylibmc ``binary=True``, every SASL login).

A 24-byte header -- magic 0x80 (request), a known opcode, key length (at most 250), extras length,
data type 0 (raw bytes), vbucket, total body length (at most 1 MiB), opaque, CAS -- whose extras
and key lengths are the ones the opcode takes and fit the body; decided once the header, extras
and key are here (the value may be large). Used by ``parse_memcached`` in ``databases.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from passthru.identify.base import Fields
from passthru.identify.parsing import Malformed, Reader

REQUEST_MAGIC = 0x80
MAX_KEY = 250
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Opcode:
    """One request opcode: its text-protocol name, the extras lengths it takes, and whether
    it needs a key, may carry one, or carries none; ``value`` whether a value may follow."""

    name: str
    extras: tuple[int, ...]
    key: str  # "required", "optional", "none"
    value: bool


def _opcodes() -> dict[int, Opcode]:
    get, store, delete, arith = Opcode("get", (0,), "required", False), (8,), (0,), (20,)
    table = {
        0x00: get,
        0x01: Opcode("set", store, "required", True),
        0x02: Opcode("add", store, "required", True),
        0x03: Opcode("replace", store, "required", True),
        0x04: Opcode("delete", delete, "required", False),
        0x05: Opcode("incr", arith, "required", False),
        0x06: Opcode("decr", arith, "required", False),
        0x07: Opcode("quit", (0,), "none", False),
        0x08: Opcode("flush_all", (0, 4), "none", False),
        0x0A: Opcode("noop", (0,), "none", False),
        0x0B: Opcode("version", (0,), "none", False),
        0x0C: Opcode("getk", (0,), "required", False),
        0x0E: Opcode("append", (0,), "required", True),
        0x0F: Opcode("prepend", (0,), "required", True),
        0x10: Opcode("stats", (0,), "optional", False),
        0x1B: Opcode("verbosity", (4,), "none", False),
        0x1C: Opcode("touch", (4,), "required", False),
        0x1D: Opcode("gat", (4,), "required", False),
        0x20: Opcode("sasl_list_mechs", (0,), "none", False),
        0x21: Opcode("sasl_auth", (0,), "required", True),
        0x22: Opcode("sasl_step", (0,), "required", True),
    }
    quiet = {0x09: 0x00, 0x0D: 0x0C, 0x11: 0x01, 0x12: 0x02, 0x13: 0x03, 0x14: 0x04, 0x15: 0x05}
    quiet |= {0x16: 0x06, 0x17: 0x07, 0x18: 0x08, 0x19: 0x0E, 0x1A: 0x0F, 0x1E: 0x1D}
    for code, loud in quiet.items():
        base = table[loud]
        table[code] = Opcode(base.name + "q", base.extras, base.key, base.value)
    return table


OPCODES = _opcodes()
KEYLESS = frozenset({"sasl_auth", "sasl_step"})  # their "key" is a SASL mechanism name


def parse_binary_request(data: bytes) -> Fields:
    header = Reader(data)
    header.expect(bytes([REQUEST_MAGIC]))
    opcode = OPCODES.get(header.u8())
    if opcode is None:
        raise Malformed("unknown memcached binary opcode")
    key_length = header.u16()
    extras = header.u8()
    header.expect(b"\x00")  # data type: raw bytes
    header.skip(2)  # vbucket
    body = header.u32()
    header.skip(4 + 8)  # opaque, CAS
    if key_length > MAX_KEY or extras not in opcode.extras or body > MAX_BODY:
        raise Malformed("lengths out of range for the opcode")
    if (opcode.key == "required" and not key_length) or (opcode.key == "none" and key_length):
        raise Malformed("key where the opcode takes none, or none where it needs one")
    if body < extras + key_length or (body > extras + key_length and not opcode.value):
        raise Malformed("body length does not fit extras, key and value")
    header.skip(extras)
    key = header.take(key_length)
    fields: Fields = {"command": opcode.name, "format": "binary"}
    if key and opcode.name not in KEYLESS:
        fields["key"] = key.decode("latin-1")
    return fields
