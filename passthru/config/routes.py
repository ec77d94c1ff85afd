"""Builders for ``routes`` and for the ``default`` / ``on_timeout`` targets.

A route's ``match`` names a protocol (one the identifiers know), fields that protocol reports,
``client`` networks and ``listener`` names (see ``matching.py``). A route without ``match`` is a
catch-all. A ``to`` with ``{placeholders}`` is a template and needs ``allow`` (``templates.py``).
``default`` and ``on_timeout`` take ``reject``, a route name or an address: names cannot
contain ``:`` and addresses always do, so the three forms never overlap. A route's
backend pool (``to`` with weights, ``health_check``) is built in ``pools.py``.
``transparent: true`` dials the backends from the client's own address (default false).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from passthru.config import pools, templates
from passthru.config.addresses import parse_endpoint
from passthru.config.checker import Checker, closest, describe, one_of_text
from passthru.config.document import Node
from passthru.config.matching import EMPTY, Protocols, match, reported_fields
from passthru.config.model import BALANCE_MODES, PROXY_PROTOCOL_VERSIONS, Route

ROUTE_KEYS = ("name", "match", "to", "allow", "balance", "proxy_protocol", "health_check", "transparent")
REQUIRED = {
    "name": "a unique name, e.g. name: web",
    "to": "where to send matching connections, e.g. to: 127.0.0.1:8443",
}
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
REJECT = "reject"


def routes(
    check: Checker, node: Node | None, protocols: Protocols, listener_names: Collection[str] | None = None
) -> tuple[tuple[Route, ...], set[str]]:
    """The ordered rule list, and every route name declared (also those of broken routes, so
    a reference to one is not reported a second time as unknown). Names must be unique.
    ``protocols``: each protocol's declared fields; ``listener_names``: names ``listen`` gives."""
    declared: dict[str, int] = {}
    if node is None:
        return (), set()
    if not node.is_sequence:
        check.error(node.pos, f"routes must be a list of routes (- name: ...), not {describe(node.value)}")
        return (), set()
    built = [_route(check, item, protocols, listener_names, declared) for item in node.items()]
    return tuple(r for r in built if r is not None), set(declared)


def _route(
    check: Checker,
    node: Node,
    protocols: Protocols,
    listener_names: Collection[str] | None,
    declared: dict[str, int],
) -> Route | None:
    if not check.mapping(node, "{name: web, match: {protocol: tls}, to: 127.0.0.1:8443}"):
        return None
    check.known_keys(node, ROUTE_KEYS)
    for key, hint in REQUIRED.items():
        if key not in node.value:
            check.error(node.pos, f"{node.where}: missing required key '{key}': {hint}")
    name_node, match_node, to_node, allow_node, balance_node, proxy_node, check_node, transparent_node = (
        node.child(k) for k in ROUTE_KEYS
    )
    name = route_name(check, name_node) if name_node else None
    if name_node and name and not check.unique(declared, name, node.pos[0], name_node.pos, "route"):
        name = None
    matched = match(check, match_node, protocols, listener_names) if match_node else EMPTY
    template = None
    if to_node is not None and templates.is_template(to_node):
        groups = matched.groups if matched else ()
        reported = reported_fields(matched.protocol, protocols) if matched else None
        template = templates.upstream_template(check, to_node, allow_node, groups, reported)
        pool = ((), ()) if template is not None else None
        if check_node is not None:
            check.error(check_node.pos, f"{check_node.where}: a templated to has no fixed backends to check")
    else:
        pool = pools.upstreams(check, to_node) if to_node else None
        if allow_node is not None:
            check.error(allow_node.pos, f"{allow_node.where} only applies to a to with {{placeholders}}")
    balance = check.choice(balance_node, BALANCE_MODES) if balance_node else BALANCE_MODES[0]
    proxy = check.choice(proxy_node, PROXY_PROTOCOL_VERSIONS) if proxy_node else None
    health = pools.health_check(check, check_node) if check_node else None
    transparent = flag(check, transparent_node) if transparent_node is not None else False
    if (
        name is None
        or pool is None
        or balance is None
        or matched is None
        or (check_node is not None and health is None)
    ):
        return None
    if transparent is None:
        return None
    to, weights = pool
    return Route(
        name,
        matched.protocol,
        matched.fields,
        to,
        balance,
        proxy,
        line=node.pos[0],
        weights=weights,
        health_check=health,
        transparent=transparent,
        clients=matched.clients,
        listeners=matched.listeners,
        template=template,
    )


def flag(check: Checker, node: Node) -> bool | None:
    """A YAML boolean (``true`` / ``false``); anything else (``yes``, ``1``, ``"true"``) is an error."""
    if isinstance(node.value, bool):
        return node.value
    check.error(node.pos, f"{node.where} must be true or false, not {describe(node.value)}")
    return None


def route_name(check: Checker, node: Node) -> str | None:
    name = node.value
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        check.error(node.pos, f"invalid route name {describe(name)}: use letters, digits, '_', '.' and '-'")
        return None
    if name == REJECT:
        check.error(node.pos, "'reject' is reserved (it means: close the connection); choose another route name")
        return None
    return name


def target(check: Checker, node: Node, routes_by_name: Mapping[str, Route], declared: Collection[str]) -> Route | None:
    """``reject`` -> None; a route name -> that route; an address -> a synthetic route to it.

    ``declared`` holds the names of routes that failed to build: those were reported already.
    """
    value = node.value
    if value == REJECT:
        return None
    if isinstance(value, str) and ":" not in value:
        if value in routes_by_name or value in declared:
            return routes_by_name.get(value)
        names = f"a route name ({one_of_text(routes_by_name)})" if routes_by_name else "a route name"
        guess = closest(value, routes_by_name)
        suggestion = f"; did you mean '{guess}'?" if guess else ""
        check.error(
            node.pos,
            f"{node.where}: unknown route '{value}'; use reject, {names} or an address like 127.0.0.1:22{suggestion}",
        )
        return None
    endpoint = check.converted(node, parse_endpoint)
    if endpoint is None:
        return None
    return Route(name=node.where, protocol=None, fields={}, to=(endpoint,), line=node.pos[0])
