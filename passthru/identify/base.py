"""The identifier API, shared by built-ins and user files in ``identifiers/``.

An identifier is a pure function over the bytes a client has sent so far. It answers with one
of three verdicts, exactly the ones a user file returns (see DESIGN.md):

* a ``dict`` of fields (possibly empty): the bytes are this protocol;
* ``None``: the bytes cannot be this protocol, however many more arrive;
* an ``int``: the fewest total bytes after which its answer could change (more than it has).
  The engine does not ask again before that many bytes arrived, so asking for more than the
  next useful byte (say, a whole 24-byte preface after seeing "P") can hold back every other
  identifier's match: prefix checks ask for one more byte at a time.

Built-ins keep to the same boundary so any of them could be moved to ``identifiers/`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

Fields: TypeAlias = dict[str, Any]
Verdict: TypeAlias = "Fields | int | None"
IdentifyFunc: TypeAlias = Callable[[bytes], "Fields | int | None"]

#: Precedence classes. Lower wins when several identifiers match the same bytes: a user file
#: always beats a built-in, and a built-in that recognises a wrapper or a more specific dialect
#: (``h2c`` over ``http``) declares a lower number than the generic one it overlaps with.
USER_PRECEDENCE = 0
SPECIFIC_PRECEDENCE = 10
DEFAULT_PRECEDENCE = 50
GENERIC_PRECEDENCE = 90


class FieldKind(StrEnum):
    """What a reported field holds, which decides how routes compare it: host names fold case
    and take ``*.`` globs; numbers compare by value; text compares exactly."""

    TEXT = "text"
    HOST = "host"
    NUMBER = "number"


TEXT, HOST, NUMBER = FieldKind.TEXT, FieldKind.HOST, FieldKind.NUMBER
FieldKinds: TypeAlias = Mapping[str, FieldKind]


@dataclass(frozen=True)
class Identifier:
    """One named protocol recogniser. ``source`` says where it came from (for logs and lists).

    ``fields`` declares what it may report and of which kind (None: undeclared, as a user file
    without ``FIELDS``: routes may then name any key). ``trusted`` is set by whoever builds the
    identifier: trusted ones (built-ins, config rules) run without the user-code time limit and
    may be pre-asked by the first-byte prefilter.
    """

    name: str
    identify: IdentifyFunc
    precedence: int = DEFAULT_PRECEDENCE
    source: str = "builtin"
    samples_match: tuple[bytes, ...] = field(default=(), repr=False)
    samples_no_match: tuple[bytes, ...] = field(default=(), repr=False)
    fields: FieldKinds | None = field(default=None, hash=False, compare=False)
    description: str = ""
    trusted: bool = False

    def field_kind(self, name: str) -> FieldKind | None:
        """The declared kind of one field; None when the identifier does not report it (or
        declares nothing)."""
        return None if self.fields is None else self.fields.get(name)


class InvalidVerdict(TypeError):
    """An identifier returned something other than a dict, None, or an int above the length."""


def check_verdict(name: str, data: bytes, verdict: object) -> Fields | int | None:
    """Validate a raw verdict at the boundary so a bad identifier cannot confuse the engine.

    A ``bool`` is rejected explicitly (it is an ``int`` in Python, and ``True`` would read as
    "needs 1 byte"); an ``int`` must ask for more bytes than are already there, otherwise the
    identifier would be asked again with the same data forever.
    """
    if verdict is None:
        return None
    if isinstance(verdict, Mapping):
        bad = [k for k in verdict if not isinstance(k, str)]
        if bad:
            raise InvalidVerdict(f"identifier {name!r} returned field names that are not strings: {bad!r}")
        return dict(verdict)
    if isinstance(verdict, bool) or not isinstance(verdict, int):
        raise InvalidVerdict(
            f"identifier {name!r} returned {type(verdict).__name__}; "
            "expected a dict of fields, None, or an int (bytes needed)"
        )
    if verdict <= len(data):
        raise InvalidVerdict(
            f"identifier {name!r} asked for {verdict} bytes but already has {len(data)}; "
            "return None or a dict once it can decide"
        )
    return verdict
