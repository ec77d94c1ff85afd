"""From (protocol, fields, client address, listener) to a route: ordered rules, first match wins.

Pure, no I/O. A rule matches when its protocol equals the identified one (or it names none),
the client address lies in one of its ``client`` networks (when it lists any), the listener is
one it names (when it names any), and every field it lists passes its test:

* exact values, a list meaning "any of"; a field the client offers as a list (``alpn``) passes
  when any offered value does;
* ``regex`` (the whole value must match; named groups are captured for ``to`` templates),
  ``prefix``, ``suffix``; ``not`` negates any of them (for an offered list: none passes);
* host-kind fields (as the identifier declares them) compare case-insensitively without a
  trailing dot, and an exact ``*.example.com`` matches any name below ``example.com`` (not
  ``example.com`` itself); number fields compare by value;
* a field the identifier did not report never matches, not even ``not``.

Rules are compiled once per config load (regexes, sets, networks), so the per-connection work is
a few set lookups; :meth:`Router.match` returns the route and the groups its regexes captured.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from passthru.config.matching import number_text
from passthru.config.model import FieldRule, IPNetwork
from passthru.identify.base import FieldKind

#: What a field test answers: None (no match) or the groups it captured (usually NO_GROUPS).
Groups = Mapping[str, str]
NO_GROUPS: Groups = MappingProxyType({})


class RouteLike(Protocol):
    name: str
    protocol: str | None
    fields: Mapping[str, FieldRule]
    clients: Sequence[IPNetwork]
    listeners: Sequence[str]


@dataclass(frozen=True)
class RouteMatch:
    """The chosen route and what its regexes captured (group name -> text)."""

    route: Any
    groups: Groups


def _normalizer(kind: FieldKind) -> Callable[[Any], str | None]:
    if kind == FieldKind.HOST:
        return lambda value: str(value).lower().rstrip(".")
    if kind == FieldKind.NUMBER:
        return number_text
    return str


@dataclass(frozen=True)
class FieldMatcher:
    """One ``match`` key, compiled: ``test`` takes one normalized value."""

    name: str
    normalize: Callable[[Any], str | None]
    test: Callable[[str], Groups | None]
    negated: bool

    @classmethod
    def compile(cls, name: str, rule: FieldRule) -> FieldMatcher:
        return cls(name, _normalizer(rule.kind), _test(rule), rule.negated)

    def accepts(self, offered: Any) -> Groups | None:
        if offered is None:
            return None
        found = None
        for item in offered if isinstance(offered, list | tuple | set | frozenset) else (offered,):
            text = self.normalize(item)
            found = self.test(text) if text is not None else None
            if found is not None:
                break
        if self.negated:
            return NO_GROUPS if found is None else None
        return found


def _test(rule: FieldRule) -> Callable[[str], Groups | None]:
    host = rule.kind == FieldKind.HOST
    normalize = _normalizer(rule.kind)
    if rule.form == "regex":
        pattern = re.compile(rule.values[0], re.IGNORECASE if host else 0)

        def regex(text: str) -> Groups | None:
            found = pattern.fullmatch(text)
            if found is None:
                return None
            groups = {k: v for k, v in found.groupdict().items() if v is not None}
            return groups or NO_GROUPS

        return regex
    values = tuple(str(normalize(v)) for v in rule.values)
    if rule.form == "prefix":
        return lambda text: NO_GROUPS if text.startswith(values) else None
    if rule.form == "suffix":
        return lambda text: NO_GROUPS if text.endswith(values) else None
    exact = frozenset(v for v in values if not (host and v.startswith("*.")))
    below = tuple(v[1:] for v in values if host and v.startswith("*."))  # "*.a.com" -> ".a.com"
    return lambda text: NO_GROUPS if text in exact or (below and text.endswith(below)) else None


def client_address(host: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's address as ``client:`` compares it (IPv4-mapped IPv6 as IPv4)."""
    if not host:
        return None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


@dataclass(frozen=True)
class CompiledRule:
    route: Any
    protocol: str | None
    matchers: tuple[FieldMatcher, ...]
    clients: tuple[IPNetwork, ...]
    listeners: frozenset[str]

    @classmethod
    def compile(cls, route: RouteLike) -> CompiledRule:
        matchers = tuple(FieldMatcher.compile(k, v) for k, v in route.fields.items())
        clients = tuple(getattr(route, "clients", ()))
        listeners = frozenset(getattr(route, "listeners", ()))
        return cls(route, route.protocol, matchers, clients, listeners)

    def matches(
        self, protocol: str | None, fields: Mapping[str, Any], client: Any, listener: str | None
    ) -> Groups | None:
        if self.protocol is not None and self.protocol != protocol:
            return None
        if self.listeners and listener not in self.listeners:
            return None
        if self.clients and (client is None or not any(client in network for network in self.clients)):
            return None
        groups: dict[str, str] | None = None
        for matcher in self.matchers:
            found = matcher.accepts(fields.get(matcher.name))
            if found is None:
                return None
            if found:
                groups = {**(groups or {}), **found}
        return groups or NO_GROUPS


class Router:
    """The compiled, ordered rule list of one config."""

    def __init__(self, routes: Iterable[RouteLike]) -> None:
        self.rules = tuple(CompiledRule.compile(r) for r in routes)
        self._by_client = any(rule.clients for rule in self.rules)
        #: A ``postgres`` rule tests ``sni`` or ``alpn``: the server must then read the ClientHello
        #: behind a client's SSLRequest (``passthru/server/pgwire.py``); otherwise nothing changes.
        self.postgres_tls = any(
            rule.protocol == "postgres" and any(m.name in ("sni", "alpn") for m in rule.matchers) for rule in self.rules
        )

    def match(
        self, protocol: str | None, fields: Mapping[str, Any], client: str | None = None, listener: str | None = None
    ) -> RouteMatch | None:
        """The first route whose rule matches, with its regex groups; None: the caller applies
        ``default``. ``client``: the real client address (after a trusted PROXY header);
        ``listener``: the ``name`` of the listen entry that accepted the connection."""
        address = client_address(client) if self._by_client else None
        for rule in self.rules:
            groups = rule.matches(protocol, fields, address, listener)
            if groups is not None:
                return RouteMatch(rule.route, groups)
        return None

    def route(
        self, protocol: str | None, fields: Mapping[str, Any], client: str | None = None, listener: str | None = None
    ) -> Any:
        """The first matching route, or None (for callers that need no groups)."""
        found = self.match(protocol, fields, client, listener)
        return found.route if found is not None else None
