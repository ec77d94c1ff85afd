"""Turning a config-declared identifier into an :class:`Identifier` with the standard verdicts.

The verdicts (see ``passthru/identify/base.py``), for a rule that needs ``n = min_length`` bytes:

* ``prefix`` / ``at``: as soon as the bytes received contradict the expected bytes the answer is
  ``None`` (more bytes cannot fix a mismatch); with fewer than ``n`` bytes and no contradiction,
  ``n``; otherwise a match with no fields.
* ``regex``: with fewer than ``n`` bytes, ``n``; from ``n`` bytes on, the regex is searched
  (``re.search``; anchor it with ``^`` for "starts with") and the answer is final: a match whose
  fields are the named groups that took part (decoded as latin-1), or ``None``. The regex is
  tried on whatever arrived once ``n`` bytes are there, so a rule that needs a whole line should
  set ``min_length`` to its shortest possible length.

Config rules are the user's, so they take :data:`USER_PRECEDENCE` and win over built-ins.
"""

from __future__ import annotations

from passthru.config.model import DeclarativeIdentifier
from passthru.identify.base import TEXT, USER_PRECEDENCE, Fields, Identifier, IdentifyFunc


def to_identifier(d: DeclarativeIdentifier) -> Identifier:
    if d.regex is not None:
        func = _regex_rule(d)
        fields = dict.fromkeys(d.regex.groupindex, TEXT)
        description = f"config rule: regex {d.regex.pattern!r}"
    else:
        expected = d.prefix if d.prefix is not None else d.bytes_at
        assert expected is not None, "a declarative identifier has a prefix, bytes_at or regex"
        offset = 0 if d.prefix is not None else d.offset
        func = _bytes_rule(offset, expected, d.min_length)
        fields = {}
        description = f"config rule: {expected!r} at offset {offset}"
    return Identifier(
        name=d.name,
        identify=func,
        precedence=USER_PRECEDENCE,
        source=f"config line {d.line}" if d.line else "config",
        fields=fields,
        description=description,
        trusted=True,  # written by the operator in the config: as trusted as a built-in
    )


def _bytes_rule(offset: int, expected: bytes, min_length: int) -> IdentifyFunc:
    def identify(data: bytes) -> Fields | int | None:
        seen = data[offset : offset + len(expected)]
        if seen != expected[: len(seen)]:
            return None
        return min_length if len(data) < min_length else {}

    return identify


def _regex_rule(d: DeclarativeIdentifier) -> IdentifyFunc:
    regex, min_length = d.regex, d.min_length
    assert regex is not None

    def identify(data: bytes) -> Fields | int | None:
        if len(data) < min_length:
            return min_length
        found = regex.search(data)
        if found is None:
            return None
        return {k: v.decode("latin-1") for k, v in found.groupdict().items() if v is not None}

    return identify
