"""Builder for the ``identifiers:`` section: no-code identifiers declared in the config.

Like sslh's ``regex`` probe or HAProxy's ``req.payload``, each entry recognises a protocol by
its first bytes, in exactly one of three ways::

    identifiers:
      - name: greeting
        prefix: "HELLO "                  # the stream starts with these bytes
      - name: tlv
        at: {offset: 4, bytes: {hex: "cafe"}}   # these bytes at this offset
      - name: chat
        regex: '^CHAT/\\d+ '               # a bytes regex (DOTALL), searched once min_length arrived
        min_length: 8

Byte strings (``prefix``, ``at.bytes``) are written one of two ways:

* a YAML string, each character one byte (encoded as latin-1): use double quotes for escapes,
  ``"\\x16\\x03"``; characters above ``\\xff`` are refused;
* ``{hex: "16 03 01"}``: hex digits, spaces allowed.

A ``regex`` is a string in the same latin-1 sense (single quotes keep its backslashes for
``re``); its named groups become the match's fields. ``min_length`` is how many bytes the client
must have sent before the rule decides: by default the bytes a prefix or ``at`` rule compares,
and 1 for a regex.
"""

from __future__ import annotations

import re

from passthru.config.checker import Checker, describe, one_of_text
from passthru.config.document import Node
from passthru.config.model import DeclarativeIdentifier
from passthru.identify import builtin_names
from passthru.identify.base import TEXT, FieldKinds

IDENTIFIER_KEYS = ("name", "prefix", "at", "regex", "min_length")
KINDS = ("prefix", "at", "regex")
AT_KEYS = ("offset", "bytes")
NAME_PATTERN = re.compile(r"[a-z0-9_-]+")
BYTES_HINT = 'write a string ("\\x16\\x03", one character per byte) or {hex: "1603"}'


def declarative_identifiers(
    check: Checker, node: Node | None, max_bytes: int
) -> tuple[tuple[DeclarativeIdentifier, ...], set[str]]:
    """The valid entries, and every name declared (also of broken entries, so routes naming one
    are not reported again). ``max_bytes`` (``limits.identify_bytes``) bounds what a rule waits for."""
    declared: dict[str, int] = {}
    if node is None:
        return (), set()
    if not node.is_sequence:
        check.error(node.pos, f"identifiers must be a list (- name: ..., prefix: ...), not {describe(node.value)}")
        return (), set()
    built = [_identifier(check, item, max_bytes, declared) for item in node.items()]
    return tuple(i for i in built if i is not None), set(declared)


def declared_fields(d: DeclarativeIdentifier) -> FieldKinds:
    """What a config rule reports: a regex's named groups (text); nothing otherwise."""
    return dict.fromkeys(d.regex.groupindex, TEXT) if d.regex is not None else {}


def _identifier(check: Checker, node: Node, max_bytes: int, declared: dict[str, int]) -> DeclarativeIdentifier | None:
    if not check.mapping(node, '{name: greeting, prefix: "HELLO "}'):
        return None
    check.known_keys(node, IDENTIFIER_KEYS, required=("name",))
    name_node = node.child("name")
    name = _name(check, name_node) if name_node else None
    if name_node and name and not check.unique(declared, name, node.pos[0], name_node.pos, "identifier"):
        name = None
    kinds = [k for k in KINDS if k in node.value]
    if not kinds:
        check.error(node.pos, f"{node.where} needs exactly one of {one_of_text(KINDS)}")
        return None
    for extra in kinds[1:]:
        check.error(node.key_pos(extra), f"{node.where} has both '{kinds[0]}' and '{extra}': use exactly one")
    kind_node = node.child(kinds[0])
    assert kind_node is not None
    prefix = bytes_at = regex = None
    offset = 0
    if kinds[0] == "prefix":
        prefix = byte_string(check, kind_node)
        needed = len(prefix) if prefix else 1
    elif kinds[0] == "at":
        offset, bytes_at = _at(check, kind_node)
        needed = offset + len(bytes_at) if bytes_at else 1
    else:
        regex = _regex(check, kind_node)
        needed = 1
    min_length = _min_length(check, node.child("min_length"), needed, max_bytes, node)
    if name is None or min_length is None or (prefix is None and bytes_at is None and regex is None):
        return None
    return DeclarativeIdentifier(name, prefix, offset, bytes_at, regex, min_length, line=node.pos[0])


def _name(check: Checker, node: Node) -> str | None:
    name = node.value
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        check.error(node.pos, f"invalid identifier name {describe(name)}: use lower-case letters, digits, '_' and '-'")
        return None
    if name in builtin_names():
        check.error(node.pos, f"identifier name '{name}' is a built-in protocol; choose another name")
        return None
    return name


def byte_string(check: Checker, node: Node) -> bytes | None:
    """A non-empty byte string in either documented form."""
    value = node.value
    if node.is_mapping:
        check.known_keys(node, ("hex",), required=("hex",))
        hex_node = node.child("hex")
        if hex_node is None:
            return None
        try:
            data = bytes.fromhex(str(hex_node.value)) if isinstance(hex_node.value, str) else None
        except ValueError:
            data = None
        if data is None:
            shown = describe(hex_node.value)
            check.error(hex_node.pos, f'{hex_node.where} must be pairs of hex digits, e.g. "16 03 01", not {shown}')
        value = data
    elif isinstance(value, str):
        try:
            value = value.encode("latin-1")
        except UnicodeEncodeError:
            check.error(node.pos, f"{node.where} has characters above \\xff: {BYTES_HINT}")
            return None
    else:
        check.error(node.pos, f"{node.where} must be a byte string: {BYTES_HINT}; not {describe(value)}")
        return None
    if value == b"":
        check.error(node.pos, f"{node.where} is empty: {BYTES_HINT}")
        return None
    return value


def _at(check: Checker, node: Node) -> tuple[int, bytes | None]:
    if not check.mapping(node, '{offset: 4, bytes: {hex: "cafe"}}'):
        return 0, None
    check.known_keys(node, AT_KEYS, required=AT_KEYS)
    offset_node, bytes_node = node.child("offset"), node.child("bytes")
    offset = check.integer(offset_node, 0) if offset_node else None
    data = byte_string(check, bytes_node) if bytes_node else None
    return offset or 0, data if offset is not None else None


def _regex(check: Checker, node: Node) -> re.Pattern[bytes] | None:
    if not isinstance(node.value, str) or not node.value:
        check.error(node.pos, f"{node.where} must be a regular expression, e.g. '^HELLO ', not {describe(node.value)}")
        return None
    try:
        return re.compile(node.value.encode("latin-1"), re.DOTALL)
    except UnicodeEncodeError:
        check.error(node.pos, f"{node.where} has characters above \\xff; use \\xNN escapes for bytes")
    except re.error as exc:
        check.error(node.pos, f"{node.where} is not a valid regular expression: {exc}")
    return None


def _min_length(check: Checker, node: Node | None, needed: int, max_bytes: int, entry: Node) -> int | None:
    """Bytes to wait for: at least what the rule compares, at most what identification reads."""
    if node is None:
        min_length = needed
    else:
        min_length = check.integer(node, 1, max_bytes)
        if min_length is None:
            return None
        if min_length < needed:
            check.error(node.pos, f"{node.where} is below the {needed} bytes the rule compares: use {needed} or more")
            return None
    if min_length > max_bytes:
        limit = f"limits.identify_bytes is {max_bytes}"
        check.error(entry.pos, f"{entry.where} needs {min_length} bytes but {limit}: it could never match")
        return None
    return min_length
