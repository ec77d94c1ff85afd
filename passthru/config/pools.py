"""Builders for a route's backend pool: ``to`` with weights, and ``health_check``.

::

    to:
      - 127.0.0.1:8001                          # weight 1
      - {address: 127.0.0.1:8002, weight: 3}    # weight 1..256
    health_check:                               # optional; {} for all the defaults
      interval: 2s
      timeout: 1s
      send: "PING\\r\\n"                           # bytes, as in identifiers: a string or {hex: ...}
      expect: "+PONG"                           # the reply must start with these bytes
      rise: 2
      fall: 3

Backend state is keyed by the resolved address, so one address may appear only once per route
(two entries would share one state anyway): give it a weight instead of listing it twice.
"""

from __future__ import annotations

from passthru.config.addresses import ADDRESS_HINT, parse_endpoint
from passthru.config.checker import Checker
from passthru.config.document import Node
from passthru.config.identifiers import byte_string
from passthru.config.model import MAX_WEIGHT, Endpoint, HealthCheck
from passthru.config.units import parse_duration

BACKEND_KEYS = ("address", "weight")
HEALTH_CHECK_KEYS = ("interval", "timeout", "send", "expect", "rise", "fall")
#: Upper bound for ``rise`` / ``fall``: beyond it a check would take minutes to act.
MAX_STREAK = 100


def upstreams(check: Checker, node: Node) -> tuple[tuple[Endpoint, ...], tuple[int, ...]] | None:
    """``to``: one address or a non-empty list of addresses and ``{address, weight}`` mappings;
    returns the endpoints and their weights (in the same order)."""
    items = node.as_list()
    if not items:
        check.error(node.pos, f"{node.where} is an empty list: give at least one address ({ADDRESS_HINT})")
        return None
    built = [_backend(check, item) for item in items]
    seen: dict[tuple, tuple[Endpoint, int]] = {}
    for item, backend in zip(items, built, strict=True):
        if backend is None:
            continue
        endpoint = backend[0]
        key = (endpoint.family, endpoint.sockaddr)
        if key in seen:
            first, line = seen[key]
            check.error(
                item.pos,
                f"{item.where}: {endpoint} is the same backend as {first} (line {line}): "
                f"list it once and give it a weight (1..{MAX_WEIGHT}) instead",
            )
            return None
        seen[key] = (endpoint, item.pos[0])
    if None in built:
        return None
    endpoints = tuple(b[0] for b in built if b is not None)
    weights = tuple(b[1] for b in built if b is not None)
    return endpoints, weights


def _backend(check: Checker, node: Node) -> tuple[Endpoint, int] | None:
    if not node.is_mapping:
        endpoint = check.converted(node, parse_endpoint)
        return (endpoint, 1) if endpoint is not None else None
    check.known_keys(node, BACKEND_KEYS, required=("address",))
    address_node, weight_node = node.child("address"), node.child("weight")
    endpoint = check.converted(address_node, parse_endpoint) if address_node else None
    weight = check.integer(weight_node, 1, MAX_WEIGHT) if weight_node else 1
    if endpoint is None or weight is None:
        return None
    return endpoint, weight


def health_check(check: Checker, node: Node) -> HealthCheck | None:
    """``health_check``: a mapping of optional settings; ``{}`` enables checks with the defaults."""
    if not check.mapping(node, '{interval: 2s, timeout: 1s, send: "PING\\r\\n", expect: "+PONG"} ({} for defaults)'):
        return None
    check.known_keys(node, HEALTH_CHECK_KEYS)
    values: dict[str, object] = {}
    ok = True
    for key in HEALTH_CHECK_KEYS:
        child = node.child(key)
        if child is None:
            continue
        if key in ("interval", "timeout"):
            value: object = check.converted(child, parse_duration)
        elif key in ("send", "expect"):
            value = byte_string(check, child)
        else:
            value = check.integer(child, 1, MAX_STREAK)
        if value is None:
            ok = False
        else:
            values[key] = value
    return HealthCheck(**values) if ok else None  # type: ignore[arg-type]
