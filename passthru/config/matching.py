"""Builder for a route's ``match``: the protocol, its fields' tests, ``client`` and ``listener``.

A field value is a string (exact), a list ("any of"), or a mapping with one key: ``regex``
(Python ``re``, the whole value must match; named groups feed ``to`` templates), ``prefix``,
``suffix`` (each one value or a list), or ``not`` (any of the other forms, negated). Which keys a
route may name comes from the identifiers' own declarations, handed in as ``protocols`` (name ->
declared field kinds, or None for a user file without ``FIELDS``: any key). The kind decides the
comparison (host names fold case and take ``*.`` globs; numbers compare by value).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from passthru.config.addresses import parse_network
from passthru.config.checker import Checker, closest, describe, one_of_text
from passthru.config.document import Node
from passthru.config.model import MATCH_FORMS, FieldRule, IPNetwork
from passthru.identify.base import FieldKind, FieldKinds

#: ``match`` keys that are not fields an identifier reports.
SPECIAL_KEYS = ("protocol", "client", "listener")

#: Protocol name -> its declared field kinds (None: undeclared, any key goes).
Protocols = Mapping[str, FieldKinds | None]


@dataclass(frozen=True)
class Match:
    """A parsed ``match``; ``groups`` are the named groups of its (not negated) regexes."""

    protocol: str | None
    fields: dict[str, FieldRule]
    clients: tuple[IPNetwork, ...] = ()
    listeners: tuple[str, ...] = ()
    groups: frozenset[str] = frozenset()


EMPTY = Match(None, {})


def reported_fields(protocol: str | None, protocols: Protocols) -> Collection[str] | None:
    """The fields ``protocol`` declares (None when anything may be reported)."""
    declared = protocols.get(protocol) if protocol is not None else None
    return None if declared is None else tuple(declared)


def default_kind(name: str, protocols: Protocols) -> FieldKind:
    """The kind of a field whose protocol declares nothing (or is not named): what any
    identifier declaring that field name says (host wins), else text."""
    kinds = {declared.get(name) for declared in protocols.values() if declared is not None}
    for kind in (FieldKind.HOST, FieldKind.NUMBER):
        if kind in kinds:
            return kind
    return FieldKind.TEXT


def match(
    check: Checker, node: Node, protocols: Protocols, listener_names: Collection[str] | None = None
) -> Match | None:
    """The parsed ``match``, or None when something in it was invalid (reported)."""
    if node.value is None:  # ``match:`` with nothing after it: same as no match, a catch-all
        return EMPTY
    if not check.mapping(node, "{protocol: tls, sni: example.com}"):
        return None
    protocol_node = node.child("protocol")
    protocol = known_protocol(check, protocol_node, protocols) if protocol_node else None
    valid = protocol is not None or protocol_node is None
    declared = protocols.get(protocol) if protocol is not None else None
    fields: dict[str, FieldRule] = {}
    clients: tuple[IPNetwork, ...] = ()
    listeners: tuple[str, ...] = ()
    groups: set[str] = set()
    for key in node.value:
        child = node.child(key)
        assert child is not None
        name = str(key)
        if name == "protocol":
            continue
        if name == "client":
            parsed_clients = client_networks(check, child)
            valid = valid and parsed_clients is not None
            clients = parsed_clients or ()
            continue
        if name == "listener":
            parsed_listeners = listener_refs(check, child, listener_names)
            valid = valid and parsed_listeners is not None
            listeners = parsed_listeners or ()
            continue
        if declared is not None and name not in declared:
            unknown_field(check, node, name, protocol, declared)
            valid = False
            continue
        kind = declared[name] if declared is not None else default_kind(name, protocols)
        rule = field_rule(check, child, kind)
        if rule is None:
            valid = False
            continue
        fields[name] = rule
        if rule.form == "regex" and not rule.negated:
            groups.update(re.compile(rule.values[0]).groupindex)
    return Match(protocol, fields, clients, listeners, frozenset(groups)) if valid else None


def unknown_field(check: Checker, node: Node, name: str, protocol: str | None, declared: FieldKinds) -> None:
    keys = [*declared, *SPECIAL_KEYS]
    guess = closest(name, keys)
    suggestion = f"; did you mean '{guess}'?" if guess else ""
    reports = one_of_text(declared) if declared else "no fields"
    check.error(
        node.key_pos(name),
        f"{node.where}: protocol '{protocol}' never reports '{name}' (it reports {reports}; "
        f"also: client, listener){suggestion}",
    )


def known_protocol(check: Checker, node: Node, protocols: Collection[str]) -> str | None:
    value = node.value
    if isinstance(value, str) and value in protocols:
        return value
    if isinstance(value, list):
        check.error(node.pos, f"{node.where} takes one protocol name; write one route per protocol")
        return None
    known = sorted(protocols)
    guess = closest(str(value), known) if isinstance(value, str) else None
    suggestion = f"; did you mean '{guess}'?" if guess else ""
    check.error(node.pos, f"{node.where}: unknown protocol {describe(value)} (known: {one_of_text(known)}){suggestion}")
    return None


def field_rule(check: Checker, node: Node, kind: FieldKind, negatable: bool = True) -> FieldRule | None:
    """One field's test: a value, a list, or ``{regex|prefix|suffix|not: ...}``."""
    if not node.is_mapping:
        values = field_values(check, node)
        if values is None or (kind == FieldKind.NUMBER and not _numbers(check, node, values)):
            return None
        return FieldRule("exact", values, kind)
    forms = list(MATCH_FORMS if negatable else MATCH_FORMS[:-1])
    keys = list(node.value)
    if len(keys) != 1:
        check.error(node.pos, f"{node.where} takes exactly one of {one_of_text(forms)}, not {len(keys)} keys")
        return None
    form = str(keys[0])
    if form not in forms:
        if form == "not":
            check.error(node.key_pos(form), f"{node.where}: 'not' inside 'not' cancels out; write the inner test")
            return None
        guess = closest(form, forms)
        suggestion = f"; did you mean '{guess}'?" if guess else ""
        check.error(
            node.key_pos(form), f"{node.where}: unknown test '{form}' (valid: {one_of_text(forms)}){suggestion}"
        )
        return None
    child = node.child(form)
    assert child is not None
    if form == "not":
        inner = field_rule(check, child, kind, negatable=False)
        return replace(inner, negated=True) if inner is not None else None
    if form == "regex":
        pattern = regex(check, child)
        return FieldRule("regex", (pattern,), kind) if pattern is not None else None
    values = field_values(check, child)
    if values is None:
        return None
    if "" in values:
        check.error(child.pos, f"{child.where}: an empty {form} matches everything; give some text")
        return None
    return FieldRule(form, values, kind)


def regex(check: Checker, node: Node) -> str | None:
    """A Python regular expression that compiles; the whole value must match it."""
    if not isinstance(node.value, str) or not node.value:
        check.error(node.pos, f"{node.where} must be a regular expression, e.g. '[a-z]+\\.example\\.com'")
        return None
    try:
        re.compile(node.value)
    except re.error as exc:
        check.error(node.pos, f"{node.where} is not a valid regular expression: {exc}")
        return None
    return str(node.value)


def field_values(check: Checker, node: Node) -> tuple[str, ...] | None:
    """A scalar or a non-empty list of scalars, as text."""
    items = node.as_list()
    if not items:
        check.error(node.pos, f"{node.where} is an empty list, which matches nothing: give at least one value")
        return None
    values = [check.scalar(item) for item in items]
    return tuple(v for v in values if v is not None) if None not in values else None


def _numbers(check: Checker, node: Node, values: tuple[str, ...]) -> bool:
    bad = [v for v in values if number_text(v) is None]
    if bad:
        check.error(node.pos, f"{node.where} is a number field; {bad[0]!r} is not a number")
    return not bad


def number_text(value: object) -> str | None:
    """A number's canonical text (``"0443"`` and ``443`` -> ``"443"``), None when not a number."""
    try:
        number = float(str(value))
    except ValueError:
        return None
    return str(int(number)) if number.is_integer() else str(number)


def client_networks(check: Checker, node: Node) -> tuple[IPNetwork, ...] | None:
    """``client:``: one or a list of networks or addresses (IPv4 and IPv6)."""
    items = node.as_list()
    if not items:
        check.error(node.pos, f"{node.where} is an empty list, which matches no client: give a network")
        return None
    networks = [check.converted(item, parse_network) for item in items]
    return tuple(n for n in networks if n is not None) if None not in networks else None


def listener_refs(check: Checker, node: Node, names: Collection[str] | None) -> tuple[str, ...] | None:
    """``listener:``: one or a list of names given to ``listen`` entries (``name:``)."""
    items = node.as_list()
    if not items:
        check.error(node.pos, f"{node.where} is an empty list, which matches no listener: give a name")
        return None
    found: list[str] = []
    for item in items:
        name = check.text(item, "the name of a listen entry, e.g. public")
        if name is None:
            return None
        if names is not None and name not in names:
            known = f"named listeners: {one_of_text(sorted(names))}" if names else "no listen entry has a name:"
            guess = closest(name, names)
            suggestion = f"; did you mean '{guess}'?" if guess else ""
            check.error(item.pos, f"{item.where}: unknown listener '{name}' ({known}){suggestion}")
            return None
        found.append(name)
    return tuple(found)
