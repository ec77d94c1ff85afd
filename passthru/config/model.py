"""The validated, resolved configuration: immutable values the server and routing read.

Everything here is checked and resolved by the loader (addresses are looked up once, at load),
so code that receives a :class:`Config` never re-validates or touches DNS.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BALANCE_MODES = ("round_robin", "least_conn", "source_hash", "first")
PROXY_PROTOCOL_VERSIONS = ("v1", "v2")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Endpoint:
    """A ``host:port`` as written, with the socket address it resolved to at load time."""

    host: str
    port: int
    family: int
    sockaddr: tuple

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_ipv6(self) -> bool:
        return self.family == socket.AF_INET6


@dataclass(frozen=True)
class Listener:
    """One listen address; ``proxy_protocol="accept"`` reads a PROXY header from trusted peers."""

    address: Endpoint
    proxy_protocol: str | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()


@dataclass(frozen=True)
class Timeouts:
    """Seconds: wait for identifying bytes, dial an upstream, and tolerate silence when relaying."""

    identify: float = 3.0
    connect: float = 5.0
    idle: float = 3600.0


@dataclass(frozen=True)
class Limits:
    """Resource limits. New limits are added as fields with a default (off unless configured)."""

    identify_bytes: int = 16384


@dataclass(frozen=True)
class Route:
    """A routing rule: ``protocol`` and ``fields`` to match (None / empty = anything), upstreams.

    ``fields`` maps a field name to the values that match it ("any of"), read-only; ``line`` is
    the rule's line in the config file (for an address given as ``default`` or ``on_timeout``,
    the line of that key; the route is then named after the key).
    """

    name: str
    protocol: str | None
    fields: Mapping[str, tuple[str, ...]] = field(hash=False)
    to: tuple[Endpoint, ...]
    balance: str = "round_robin"
    proxy_protocol: str | None = None
    line: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    @property
    def catch_all(self) -> bool:
        return self.protocol is None and not self.fields


@dataclass(frozen=True)
class DeclarativeIdentifier:
    """A no-code identifier from the config's ``identifiers:`` list (see ``config/declarative.py``).

    Exactly one of ``prefix``, ``bytes_at`` (compared at ``offset``) or ``regex`` is set.
    """

    name: str
    prefix: bytes | None
    offset: int
    bytes_at: bytes | None
    regex: re.Pattern[bytes] | None
    min_length: int
    line: int = 0


@dataclass(frozen=True)
class Config:
    """A whole validated config file. ``default`` / ``on_timeout`` of None mean ``reject``."""

    path: Path
    listeners: tuple[Listener, ...]
    timeouts: Timeouts
    limits: Limits
    routes: tuple[Route, ...]
    default: Route | None
    on_timeout: Route | None
    identifiers_dir: Path
    workers: int
    admin: Endpoint | None
    declarative: tuple[DeclarativeIdentifier, ...]
    log_format: str = "text"
    _by_name: Mapping[str, Route] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {r.name: r for r in self.routes})

    def route_named(self, name: str) -> Route | None:
        return self._by_name.get(name)
