"""Builders for the top-level settings: ``listen``, ``timeouts``, ``limits``, ``workers``, ...

Each takes the :class:`Checker` and the section's node (None when the key is absent), reports
what is wrong and returns the best value it can, so loading continues and finds every error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from passthru.config.addresses import parse_endpoint, parse_network
from passthru.config.checker import Checker
from passthru.config.document import Node
from passthru.config.model import LOG_FORMATS, Endpoint, Limits, Listener, Timeouts
from passthru.config.units import parse_count, parse_duration, parse_rate, parse_size

S = TypeVar("S")

KIB = 1024
MIB = 1024 * KIB


def size_between(low: int, high: int, text: str) -> Callable[[object], int]:
    """A size parser that also enforces bounds (``text`` says them the way a user writes them)."""

    def parse(value: object) -> int:
        size = parse_size(value)
        if not low <= size <= high:
            raise ValueError(f"{value!r} is out of range: use a size between {text}")
        return size

    return parse


def duration_between(low: float, high: float, text: str) -> Callable[[object], float]:
    """A duration parser that also enforces bounds."""

    def parse(value: object) -> float:
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            raise ValueError(f"{value!r} is out of range: use a duration between {text}")
        return seconds

    return parse


#: Field name -> parser for each settings section. A new limit is one line here plus a field
#: with a default on :class:`Limits`.
TIMEOUT_FIELDS: Mapping[str, Callable[[object], Any]] = {
    "identify": parse_duration,
    "connect": parse_duration,
    "idle": parse_duration,
    "resolve": parse_duration,
}
LIMIT_FIELDS: Mapping[str, Callable[[object], Any]] = {
    "identify_bytes": size_between(64, MIB, "64B and 1MiB"),
    "identify_cpu": duration_between(0.001, 10.0, "1ms and 10s"),
    "max_connections": parse_count,
    "max_connections_per_source": parse_count,
    "connection_rate_per_source": parse_rate,
    "max_identifying": parse_count,
    "max_identifying_per_source": parse_count,
}


def settings(check: Checker, node: Node | None, cls: Callable[..., S], fields: Mapping[str, Callable]) -> S:
    """A flat mapping of optional, independently parsed fields, e.g. ``timeouts`` or ``limits``."""
    if node is None or not check.mapping(node, f"{{{next(iter(fields))}: ...}}"):
        return cls()
    check.known_keys(node, list(fields))
    values = {}
    for key, parse in fields.items():
        child = node.child(key)
        value = check.converted(child, parse) if child is not None else None
        if value is not None:
            values[key] = value
    return cls(**values)


def timeouts(check: Checker, node: Node | None) -> Timeouts:
    return settings(check, node, Timeouts, TIMEOUT_FIELDS)


def limits(check: Checker, node: Node | None) -> Limits:
    return settings(check, node, Limits, LIMIT_FIELDS)


LISTENER_KEYS = ("address", "proxy_protocol", "trusted_proxies", "max_connections")


def listeners(check: Checker, node: Node | None) -> tuple[Listener, ...]:
    """``listen``: one address, or a list of addresses and ``{address: ..., ...}`` mappings."""
    if node is None:
        return ()
    items = node.as_list()
    if not items:
        check.error(node.pos, "listen must name at least one address, e.g. 0.0.0.0:8443")
    built: list[Listener] = []
    seen: dict[tuple[str, int], int] = {}
    for item in items:
        listener = _listener(check, item)
        if listener is None:
            continue
        key = (listener.address.host, listener.address.port)
        if key in seen:
            check.error(item.pos, f"listen address {listener.address} is listed twice (first at line {seen[key]})")
            continue
        seen[key] = item.pos[0]
        built.append(listener)
    return tuple(built)


def _listener(check: Checker, node: Node) -> Listener | None:
    if not node.is_mapping:
        address = check.converted(node, parse_endpoint)
        return Listener(address) if address else None
    check.known_keys(node, LISTENER_KEYS, required=("address",))
    address_node, mode_node, trusted_node, max_node = (node.child(k) for k in LISTENER_KEYS)
    max_connections = check.converted(max_node, parse_count) if max_node else None
    address = check.converted(address_node, parse_endpoint) if address_node else None
    mode = check.choice(mode_node, ("accept",)) if mode_node else None
    trusted: list = []
    if trusted_node is not None:
        trusted = [check.converted(n, parse_network) for n in trusted_node.as_list()]
        if mode_node is None:
            check.error(trusted_node.pos, "trusted_proxies only applies with proxy_protocol: accept")
    elif mode is not None:
        check.error(mode_node.pos, "proxy_protocol: accept needs trusted_proxies (the networks allowed to send it)")
    if address is None:
        return None
    return Listener(address, mode, tuple(n for n in trusted if n is not None), max_connections)


def workers(check: Checker, node: Node | None) -> int:
    """A positive number of worker processes, or ``auto`` for one per CPU."""
    if node is None:
        return 1
    if node.value == "auto":
        return os.cpu_count() or 1
    value = node.value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    check.error(node.pos, f"workers must be a whole number 1 or more, or auto (one per CPU), not {value!r}")
    return 1


def admin(check: Checker, node: Node | None) -> Endpoint | None:
    """The admin endpoint; absent or null means off."""
    if node is None or node.value is None:
        return None
    return check.converted(node, parse_endpoint)


def account(check: Checker, node: Node | None, lookup: Callable[[str], object], what: str) -> str | None:
    """A user or group name (or numeric id) that exists on this machine."""
    if node is None:
        return None
    name = check.text(node, f"a {what} name, e.g. nobody")
    if name is None:
        return None
    if name.isdigit():
        return name
    try:
        lookup(name)
    except KeyError:
        check.error(node.pos, f"no {what} named '{name}' on this machine")
        return None
    return name


def log_format(check: Checker, node: Node | None) -> str:
    if node is None:
        return LOG_FORMATS[0]
    return check.choice(node, LOG_FORMATS) or LOG_FORMATS[0]


def identifiers_dir(check: Checker, node: Node | None, config_path: Path) -> Path:
    """A directory relative to the config file (``identifiers/`` beside it by default)."""
    base = config_path.absolute().parent
    if node is None:
        return base / "identifiers"
    text = check.text(node, "a directory path, e.g. identifiers")
    return base / text if text else base / "identifiers"
