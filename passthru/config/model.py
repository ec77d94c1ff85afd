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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from passthru.config.operating import AdminAccess, CaptureSettings

from passthru.identify.base import FieldKind

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

BALANCE_MODES = ("round_robin", "least_conn", "source_hash", "first")
MAX_WEIGHT = 256
PROXY_PROTOCOL_VERSIONS = ("v1", "v2")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class Endpoint:
    """A ``host:port`` as written, with the socket address it resolved to at load time."""

    host: str
    port: int
    family: int
    sockaddr: tuple
    #: Computed once: endpoints are dictionary keys on every connection's path (balancing,
    #: the backends tried, the resolver), and a dataclass hashes all its fields each time.
    _hash: int = field(init=False, repr=False, compare=False)
    _text: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.host, self.port, self.family, self.sockaddr)))
        host = f"[{self.host}]" if ":" in self.host else self.host
        object.__setattr__(self, "_text", f"{host}:{self.port}")

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self._text

    @property
    def is_ipv6(self) -> bool:
        return self.family == socket.AF_INET6


@dataclass(frozen=True)
class Listener:
    """One listen address; ``proxy_protocol="accept"`` reads a PROXY header from trusted peers."""

    address: Endpoint
    proxy_protocol: str | None = None
    trusted_proxies: tuple[IPNetwork, ...] = ()
    max_connections: int | None = None  # this listener's share; it stops accepting at the limit
    name: str | None = None  # what routes' ``match: {listener: ...}`` call it


@dataclass(frozen=True)
class Timeouts:
    """Seconds: wait for identifying bytes, dial an upstream, and tolerate silence when relaying."""

    identify: float = 3.0
    connect: float = 5.0
    idle: float = 3600.0
    resolve: float = 30.0  # how often backend names are looked up again, in the background


@dataclass(frozen=True)
class Limits:
    """Resource limits. New limits are added as fields with a default (off unless configured)."""

    identify_bytes: int = 16384
    #: CPU one connection may spend reading and identifying its first bytes (seconds); over it
    #: the connection is closed (``end=identify_budget``), so no client keeps a worker busy.
    identify_cpu: float = 0.05
    #: Connections this process relays or identifies at once; at the limit it stops accepting
    #: (the kernel's backlog queues new ones), as HAProxy's maxconn does. Off when None.
    max_connections: int | None = None
    #: Open connections from one client address; more are closed at once. Off when None.
    max_connections_per_source: int | None = None
    #: New connections from one client address: ``(count, period)``, token bucket. Off when None.
    connection_rate_per_source: tuple[int, float] | None = None
    #: Connections still being identified (reading their first bytes), in all and per address:
    #: the bound on what slow or silent clients may hold. Off when None.
    max_identifying: int | None = None
    max_identifying_per_source: int | None = None


@dataclass(frozen=True)
class HealthCheck:
    """A route's active check of each of its backends (see ``server/health.py``).

    Every ``interval`` a TCP connect, then ``send`` (if set), then the reply must start with
    ``expect`` (if set), all within ``timeout``; ``fall`` failures in a row mark the backend
    down, ``rise`` successes in a row mark it up again.
    """

    interval: float = 2.0
    timeout: float = 1.0
    send: bytes | None = None
    expect: bytes | None = None
    rise: int = 2
    fall: int = 3


#: The forms a ``match`` value takes besides a plain value or list (exact, "any of").
MATCH_FORMS = ("regex", "prefix", "suffix", "not")


@dataclass(frozen=True)
class FieldRule:
    """One ``match`` key's test, as written: ``form`` is ``exact`` (values, ``*.`` globs for
    host fields), ``regex`` (one pattern, the whole value must match), ``prefix`` or ``suffix``
    (any of ``values``); ``negated`` for ``{not: ...}``. ``kind`` is the field's declared kind
    (from the identifiers), which decides case folding, globs and numeric comparison."""

    form: str
    values: tuple[str, ...]
    kind: FieldKind = FieldKind.TEXT
    negated: bool = False

    def __str__(self) -> str:
        text = ",".join(self.values) if self.form == "exact" else f"{self.form}:{','.join(self.values)}"
        return f"not({text})" if self.negated else text


@dataclass(frozen=True)
class UpstreamTemplate:
    """A ``to`` with ``{placeholders}`` (regex groups or reported fields) and its ``allow`` list.

    ``host`` is the host part as written (placeholders in it), ``port`` fixed; the rendered
    host must match one of ``globs`` (``*.`` = any name below) or, as an IP literal, lie in
    one of ``networks``; when ``networks`` is not empty every address a name resolves to must
    lie in one of them too (see ``passthru/server/targets.py``).
    """

    text: str
    host: str
    port: int
    placeholders: tuple[str, ...]
    globs: tuple[str, ...]
    networks: tuple[IPNetwork, ...]


@dataclass(frozen=True)
class Route:
    """A routing rule: ``protocol`` and ``fields`` to match (None / empty = anything), upstreams.

    ``fields`` maps a field name to its :class:`FieldRule`, read-only; ``clients`` (networks
    the real client address must lie in) and ``listeners`` (listen entry names) restrict it
    further when not empty; ``template`` replaces ``to`` (then empty) for ``to: "{x}..."``. ``line`` is
    the rule's line in the config file (for an address given as ``default`` or ``on_timeout``,
    the line of that key; the route is then named after the key).

    ``weights`` runs parallel to ``to`` (1..256 each); empty means every backend weighs 1.
    ``health_check`` enables active checks of every backend of the route.
    ``transparent`` dials the backends from the client's own address (``IP_TRANSPARENT``,
    Linux, needs CAP_NET_ADMIN and return routing; see ``server/upstream.py``).
    """

    name: str
    protocol: str | None
    fields: Mapping[str, FieldRule] = field(hash=False)
    to: tuple[Endpoint, ...]
    balance: str = "round_robin"
    proxy_protocol: str | None = None
    line: int = 0
    weights: tuple[int, ...] = ()
    health_check: HealthCheck | None = None
    transparent: bool = False
    clients: tuple[IPNetwork, ...] = ()
    listeners: tuple[str, ...] = ()
    template: UpstreamTemplate | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        if self.weights and len(self.weights) != len(self.to):
            raise ValueError(f"route {self.name}: {len(self.weights)} weights for {len(self.to)} backends")

    @property
    def backends(self) -> tuple[tuple[Endpoint, int], ...]:
        """``(endpoint, weight)`` for each backend, in listed order."""
        return tuple(zip(self.to, self.weights or (1,) * len(self.to), strict=True))

    @property
    def catch_all(self) -> bool:
        return self.protocol is None and not self.fields and not self.clients and not self.listeners

    def match_text(self) -> str:
        """The rule as one line, for logs: ``protocol=tls sni=*.example.com client=10.0.0.0/8``."""
        terms = [f"protocol={self.protocol}"] if self.protocol else []
        terms += [f"{name}={rule}" for name, rule in self.fields.items()]
        terms += [f"client={','.join(map(str, self.clients))}"] if self.clients else []
        terms += [f"listener={','.join(self.listeners)}"] if self.listeners else []
        return " ".join(terms) or "(anything)"


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
    #: Drop to this user (and group) once the listen sockets are bound; None keeps the caller's.
    user: str | None = None
    group: str | None = None
    #: ``admin:`` as a mapping (who may see the status page) and ``capture:``: config/operating.py
    admin_access: AdminAccess | None = None
    capture: CaptureSettings | None = None
    _by_name: Mapping[str, Route] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {r.name: r for r in self.routes})

    def route_named(self, name: str) -> Route | None:
        return self._by_name.get(name)
