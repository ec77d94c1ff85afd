"""From (protocol, fields) to a route: ordered rules, first match wins. Pure, no I/O.

A rule matches when its protocol equals the identified one (or it names none: a catch-all)
and every field it lists matches the identifier's report:

* a rule's list means "any of";
* a field the client offers as a list (``alpn``) matches when any offered value is listed;
* values compare as strings; host-name fields compare case-insensitively, and a rule value
  ``*.example.com`` matches any name below ``example.com`` (not ``example.com`` itself);
* a field the identifier did not report never matches.

Rules are compiled once per config load so that the per-connection work is a few set lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: Fields that carry DNS names: compared case-insensitively, ``*.`` globs allowed.
HOST_FIELDS = frozenset({"sni", "host", "to", "qname", "server_address", "domain"})


class RouteLike(Protocol):
    name: str
    protocol: str | None
    fields: Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class FieldMatcher:
    """One ``match`` key: exact values, plus suffixes for ``*.`` globs on host fields."""

    name: str
    exact: frozenset[str]
    suffixes: tuple[str, ...]
    fold_case: bool

    @classmethod
    def compile(cls, name: str, values: Iterable[Any]) -> FieldMatcher:
        fold = name in HOST_FIELDS
        exact: set[str] = set()
        suffixes: list[str] = []
        for value in values:
            text = str(value).lower().rstrip(".") if fold else str(value)
            if fold and text.startswith("*."):
                suffixes.append(text[1:])  # keep the dot: "*.a.com" -> ".a.com"
            else:
                exact.add(text)
        return cls(name, frozenset(exact), tuple(suffixes), fold)

    def accepts(self, offered: Any) -> bool:
        if offered is None:
            return False
        if isinstance(offered, list | tuple | set | frozenset):
            return any(self._accepts_one(item) for item in offered)
        return self._accepts_one(offered)

    def _accepts_one(self, value: Any) -> bool:
        text = str(value)
        if self.fold_case:
            text = text.lower().rstrip(".")
        if text in self.exact:
            return True
        return any(text.endswith(suffix) for suffix in self.suffixes)


@dataclass(frozen=True)
class CompiledRule:
    route: RouteLike
    protocol: str | None
    matchers: tuple[FieldMatcher, ...]

    def matches(self, protocol: str | None, fields: Mapping[str, Any]) -> bool:
        if self.protocol is not None and self.protocol != protocol:
            return False
        return all(m.accepts(fields.get(m.name)) for m in self.matchers)


class Router:
    """The compiled, ordered rule list of one config."""

    def __init__(self, routes: Iterable[RouteLike]) -> None:
        self.rules = tuple(
            CompiledRule(r, r.protocol, tuple(FieldMatcher.compile(k, v) for k, v in r.fields.items())) for r in routes
        )

    def route(self, protocol: str | None, fields: Mapping[str, Any]) -> RouteLike | None:
        """The first route whose rule matches, or None (the caller applies ``default``)."""
        for rule in self.rules:
            if rule.matches(protocol, fields):
                return rule.route
        return None
