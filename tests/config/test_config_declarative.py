"""Declarative identifiers: how they load, what is refused, and their three verdicts."""

import re

import pytest

from passthru.config import DeclarativeIdentifier
from passthru.config.declarative import to_identifier
from passthru.identify import BUILTINS, identify
from passthru.identify.base import USER_PRECEDENCE, check_verdict
from tests.config.config_helpers import MINIMAL

DECLARED = (
    MINIMAL
    + r"""identifiers:
  - name: greeting
    prefix: "HELLO "
  - name: tls-ish
    prefix: {hex: "16 03"}
  - name: tlv
    at: {offset: 2, bytes: "\xca\xfe"}
  - name: chat
    regex: '^CHAT/(?P<version>\d+) '
    min_length: 8
  - name: anything-z
    regex: 'z'
  - name: late
    prefix: AB
    min_length: 4
"""
)


@pytest.fixture
def identifiers(load):
    config = load(DECLARED)
    return {d.name: to_identifier(d) for d in config.declarative}


def verdict(identifier, data: bytes):
    return check_verdict(identifier.name, data, identifier.identify(data))


def test_loaded_forms(load):
    greeting, tls_ish, tlv, chat, anything, late = load(DECLARED).declarative
    assert greeting == DeclarativeIdentifier("greeting", b"HELLO ", 0, None, None, 6, line=7)
    assert tls_ish.prefix == b"\x16\x03" and tls_ish.min_length == 2
    assert (tlv.offset, tlv.bytes_at, tlv.min_length) == (2, b"\xca\xfe", 4)
    assert chat.regex.pattern == rb"^CHAT/(?P<version>\d+) " and chat.regex.flags & re.DOTALL
    assert chat.min_length == 8
    assert anything.min_length == 1
    assert late.min_length == 4


def test_routes_may_name_declared_protocols(load):
    config = load(DECLARED.replace("protocol: ssh", "protocol: greeting"))
    assert config.routes[0].protocol == "greeting"


def test_identifier_shape(identifiers):
    greeting = identifiers["greeting"]
    assert greeting.precedence == USER_PRECEDENCE
    assert greeting.source == "config line 7"
    assert identifiers["chat"].fields == {"version": "text"}
    assert greeting.trusted and identifiers["chat"].trusted


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("greeting", b"", 6),
        ("greeting", b"HEL", 6),
        ("greeting", b"HELLO ", {}),
        ("greeting", b"HELLO bob", {}),
        ("greeting", b"HEX", None),  # contradicted before it is complete: no more waiting
        ("greeting", b"GET / HTTP/1.1\r\n", None),
        ("tls-ish", b"\x16", 2),
        ("tls-ish", b"\x16\x03\x01", {}),
        ("tls-ish", b"\x17", None),
        ("tlv", b"", 4),
        ("tlv", b"xx", 4),  # nothing at the offset yet
        ("tlv", b"xx\xca", 4),
        ("tlv", b"xx\xca\xfe", {}),
        ("tlv", b"xx\xca\xfe and more", {}),
        ("tlv", b"xx\xcb", None),
        ("chat", b"CHAT/1", 8),
        ("chat", b"CHAT/12 hello", {"version": "12"}),
        ("chat", b"CHAT/12345", None),  # min_length reached without a match: final
        ("chat", b"GET / HTTP/1.1", None),
        ("anything-z", b"", 1),
        ("anything-z", b"a\nz", {}),  # searched, DOTALL
        ("anything-z", b"a", None),
        ("late", b"AB", 4),  # min_length above the prefix: waits, though the prefix is there
        ("late", b"ABCD", {}),
        ("late", b"AC", None),
    ],
)
def test_verdicts(identifiers, name, data, expected):
    assert verdict(identifiers[name], data) == expected


def test_verdicts_are_pure(identifiers):
    for identifier in identifiers.values():
        for data in (b"", b"HELLO x", b"CHAT/1 x", b"xx\xca\xfe"):
            assert identifier.identify(data) == identifier.identify(data)


def test_config_rules_win_over_builtins(load):
    config = load(MINIMAL + 'identifiers:\n  - name: sshish\n    prefix: "SSH-"\n')
    rules = [to_identifier(d) for d in config.declarative]
    decision = identify([*BUILTINS, *rules], b"SSH-2.0-OpenSSH_9.6\r\n")
    assert decision.protocol == "sshish"


def test_errors(errors):
    text = (
        MINIMAL
        + r"""identifiers:
  - name: ssh
    prefix: "SSH-"
  - name: Upper
    prefix: x
  - name: none
  - name: both
    prefix: a
    regex: b
  - name: badre
    regex: '(x'
  - name: badhex
    prefix: {hex: "zz"}
  - name: wide
    prefix: "Ω"
  - name: empty
    prefix: ""
  - name: short
    prefix: ABCD
    min_length: 2
  - name: far
    at: {offset: 20000, bytes: x}
  - name: atbad
    at: {offset: -1}
  - prefix: x
  - name: dup
    prefix: a
  - name: dup
    prefix: b
"""
    )
    assert errors(text) == [
        "config.yaml:7:11: identifier name 'ssh' is a built-in protocol; choose another name",
        "config.yaml:9:11: invalid identifier name 'Upper': use lower-case letters, digits, '_' and '-'",
        "config.yaml:11:5: identifiers[3] needs exactly one of prefix, at, regex",
        "config.yaml:14:5: identifiers[4] has both 'prefix' and 'regex': use exactly one",
        "config.yaml:16:12: identifiers[5].regex is not a valid regular expression: "
        "missing ), unterminated subpattern at position 0",
        "config.yaml:18:19: identifiers[6].prefix.hex must be pairs of hex digits, e.g. \"16 03 01\", not 'zz'",
        "config.yaml:20:13: identifiers[7].prefix has characters above \\xff: "
        'write a string ("\\x16\\x03", one character per byte) or {hex: "1603"}',
        "config.yaml:22:13: identifiers[8].prefix is empty: "
        'write a string ("\\x16\\x03", one character per byte) or {hex: "1603"}',
        "config.yaml:25:17: identifiers[9].min_length is below the 4 bytes the rule compares: use 4 or more",
        "config.yaml:26:5: identifiers[10] needs 20001 bytes but limits.identify_bytes is 16384: it could never match",
        "config.yaml:29:9: missing required key 'bytes' in identifiers[11].at",
        "config.yaml:29:18: identifiers[11].at.offset must be a whole number 0 or more, not -1",
        "config.yaml:30:5: missing required key 'name' in identifiers[12]",
        "config.yaml:33:11: duplicate identifier name 'dup' (first used at line 31)",
    ]
