"""Upstream templates at connection time: render, validate, resolve, check, or refuse.

A route with ``to: "{tenant}.svc.internal:8443"`` and ``allow:`` gets its backend from what the
client sent, so everything here treats the rendered host as hostile:

1. **Render**: each ``{name}`` takes the route's regex group, else the field the identifier
   reported; a missing value or a list (``alpn``) refuses the connection.
2. **Validate**: the host must be an IP literal or a DNS name and nothing else. It is lower-cased
   (DNS names are case-insensitive; globs compare lower case) and one trailing dot (the absolute
   form) is dropped. Refused: anything but ASCII letters, digits, '-' and '.' (NUL, spaces, '/',
   ':' outside IPv6, '%' scopes, Unicode: punycode ``xn--`` labels are ordinary names, U-labels
   are not converted), empty labels (leading, doubled or two trailing dots), labels over 63
   characters or starting/ending with '-', names over 253 characters, and names whose last label
   is all digits (``127.1``, ``2130706433``: the resolver would read them as IPv4 addresses).
3. **Allow**: a name must match a host glob of ``allow`` (``*.svc.internal``: any name below it;
   a plain name: itself); an IP literal must lie in one of its networks.
4. **Resolve** (names only) without blocking other connections (gevent's resolver), bounded by
   ``timeouts.connect``, through a bounded LRU cache whose answers live ``timeouts.resolve``
   (failures at most :data:`NEGATIVE_TTL`); concurrent lookups of one name share one query.
5. **Check**: when ``allow`` lists networks, every address the name resolved to must lie in one
   of them (a name allowed by glob cannot point the connection elsewhere).

A refused target is never dialed: the connection ends ``upstream_not_allowed`` (steps 1-3, 5)
or ``upstream_unresolved`` (step 4).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import gevent
from gevent import socket as gsocket
from gevent.event import AsyncResult

from passthru.config import Endpoint, Route, Timeouts
from passthru.config.model import UpstreamTemplate
from passthru.config.templates import PLACEHOLDER, is_host_name

NOT_ALLOWED = "upstream_not_allowed"
UNRESOLVED = "upstream_unresolved"
MAX_CACHED = 1024
NEGATIVE_TTL = 5.0

Address = tuple[int, tuple]  # (family, sockaddr)
Lookup = Callable[[str, int], list[Address]]


@dataclass(frozen=True)
class Target:
    """Either ``route`` (the templated route with ``to`` filled in) or ``ended`` and ``error``."""

    route: Route | None = None
    ended: str | None = None
    error: str | None = None


def render(template: UpstreamTemplate, groups: Mapping[str, str], fields: Mapping[str, Any]) -> str:
    """The host with its placeholders filled; ValueError when a value is missing or a list."""

    def value(found: Any) -> str:
        name = found.group(1)
        text = groups.get(name, fields.get(name))
        if text is None:
            raise ValueError(f"no value for {{{name}}} (the client did not report it)")
        if isinstance(text, list | tuple | set | frozenset | dict):
            raise ValueError(f"{{{name}}} is a list, not one value")
        return str(text)

    return PLACEHOLDER.sub(value, template.host)


def normalized_host(host: str) -> str | ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The rendered host as an IP literal or a lower-case DNS name; ValueError otherwise."""
    if not host.isascii() or not host.isprintable():
        raise ValueError("it has characters that are not printable ASCII")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if getattr(address, "scope_id", None):
            raise ValueError("a scoped IPv6 address is not allowed")
        return address
    name = host.lower()
    name = name[:-1] if name.endswith(".") else name
    if not is_host_name(name):
        raise ValueError("it is not a valid DNS name (labels of letters, digits and '-', at most 253 characters)")
    return name


def allowed(host: str | ipaddress.IPv4Address | ipaddress.IPv6Address, template: UpstreamTemplate) -> bool:
    """Step 3: a name matches a glob, an address lies in a network."""
    if not isinstance(host, str):
        return any(host in network for network in template.networks)
    return any(host == glob or (glob.startswith("*.") and host.endswith(glob[1:])) for glob in template.globs)


def outside(addresses: list[Address], template: UpstreamTemplate) -> str | None:
    """Step 5: the first resolved address outside ``allow``'s networks (when it lists any)."""
    if not template.networks:
        return None
    for _family, sockaddr in addresses:
        address = ipaddress.ip_address(sockaddr[0])
        if not any(address in network for network in template.networks):
            return str(address)
    return None


def system_lookup(host: str, port: int) -> list[Address]:
    """Every stream address of ``host`` through gevent's resolver (never blocks the hub)."""
    infos = gsocket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys((family, sockaddr) for family, _t, _p, _c, sockaddr in infos))


class Targets:
    """Renders, checks and resolves templated upstreams; owns the process's bounded name cache."""

    def __init__(self, lookup: Lookup = system_lookup, max_cached: int = MAX_CACHED) -> None:
        self.lookup = lookup
        self.max_cached = max_cached
        self.cache: OrderedDict[tuple[str, int], tuple[float, list[Address] | str]] = OrderedDict()
        self.pending: dict[tuple[str, int], AsyncResult] = {}

    def resolve(self, route: Route, groups: Mapping[str, str], fields: Mapping[str, Any], timeouts: Timeouts) -> Target:
        """The one entry point for blocking-style code (a greenlet): ``route`` (with a template),
        the regex groups its match captured, the fields the identifier reported. Never dials;
        never raises for client input; waits (cooperatively) only for a name not in the cache."""
        checked = self.check(route, groups, fields)
        if isinstance(checked, Target):
            return checked
        host, template = checked
        return self._finish(route, template, host, self.addresses(host, template.port, timeouts))

    def resolve_then(
        self,
        route: Route,
        groups: Mapping[str, str],
        fields: Mapping[str, Any],
        timeouts: Timeouts,
        then: Callable[[Target], None],
    ) -> Target | None:
        """The same for callback-driven code (the hub must not wait): the Target now when no
        lookup is needed (refused, IP literal, fresh cache entry); else None, and ``then(target)``
        is called exactly once, later, from a greenlet that did the lookup."""
        checked = self.check(route, groups, fields)
        if isinstance(checked, Target):
            return checked
        host, template = checked
        cached = self.cache.get((host, template.port))
        if cached is not None and cached[0] > time.monotonic():
            return self._finish(route, template, host, cached[1])
        job = gevent.spawn(self.resolve, route, groups, fields, timeouts)
        job.link_value(lambda done: then(done.value))
        job.link_exception(lambda failed: then(Target(ended=UNRESOLVED, error=f"lookup failed: {failed.exception}")))
        return None

    def check(
        self, route: Route, groups: Mapping[str, str], fields: Mapping[str, Any]
    ) -> Target | tuple[str, UpstreamTemplate]:
        """Steps 1-3 (no I/O): a final Target for a refusal or an allowed IP literal, else the
        normalized name still to resolve."""
        template = route.template
        assert template is not None, "only templated routes are resolved here"
        rendered = template.host
        try:
            rendered = render(template, groups, fields)
            host = normalized_host(rendered)
        except ValueError as exc:
            return Target(ended=NOT_ALLOWED, error=f"upstream {_shown(rendered)}: {exc}")
        if not allowed(host, template):
            return Target(ended=NOT_ALLOWED, error=f"upstream {_shown(rendered)} is not in allow")
        if not isinstance(host, str):
            return self._finish(route, template, str(host), [_literal(host, template.port)])
        return host, template

    @staticmethod
    def _finish(route: Route, template: UpstreamTemplate, host: str, addresses: list[Address] | str) -> Target:
        """Step 5 and the route to dial."""
        if isinstance(addresses, str):
            return Target(ended=UNRESOLVED, error=f"upstream {host}: {addresses}")
        stray = outside(addresses, template)
        if stray is not None:
            return Target(ended=NOT_ALLOWED, error=f"upstream {host} resolves to {stray}, outside allow")
        endpoints = tuple(Endpoint(host, template.port, family, sockaddr) for family, sockaddr in addresses)
        return Target(route=replace(route, to=endpoints, weights=(), template=None))

    def addresses(self, host: str, port: int, timeouts: Timeouts) -> list[Address] | str:
        """The cached answer, or one lookup shared by every connection asking meanwhile."""
        key = (host, port)
        now = time.monotonic()
        cached = self.cache.get(key)
        if cached is not None and cached[0] > now:
            self.cache.move_to_end(key)
            return cached[1]
        pending = self.pending.get(key)
        if pending is not None:
            return pending.get()
        pending = self.pending[key] = AsyncResult()
        answer: list[Address] | str = "the lookup was interrupted"
        try:
            answer = self._lookup(host, port, timeouts.connect)
        finally:  # whatever happened, the connections waiting on this lookup get an answer
            del self.pending[key]
            pending.set(answer)
        ttl = timeouts.resolve if not isinstance(answer, str) else min(timeouts.resolve, NEGATIVE_TTL)
        self.cache[key] = (time.monotonic() + ttl, answer)
        self.cache.move_to_end(key)
        while len(self.cache) > self.max_cached:
            self.cache.popitem(last=False)
        return answer

    def _lookup(self, host: str, port: int, timeout: float) -> list[Address] | str:
        try:
            with gevent.Timeout(timeout):
                addresses = self.lookup(host, port)
        except gevent.Timeout:
            return f"no answer from the resolver within {timeout:g}s"
        except (OSError, UnicodeError) as exc:
            return f"does not resolve ({getattr(exc, 'strerror', None) or exc})"
        return addresses or "does not resolve (no addresses)"


def _literal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> Address:
    if address.version == 6:
        return socket.AF_INET6, (str(address), port, 0, 0)
    return socket.AF_INET, (str(address), port)


def _shown(text: str) -> str:
    """A hostile value, safe and short for a log line."""
    shown = repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."


#: The process's targets (one cache per worker process).
TARGETS = Targets()
