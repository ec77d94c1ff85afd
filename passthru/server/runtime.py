"""Everything a connection needs from one config, built once per (re)load and swapped whole.

A connection takes the current ``Runtime`` when it is accepted and keeps it to the end, so a
reload never changes the rules under a connection already in flight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from passthru.capture import Capture, capture_for
from passthru.config import Config, Listener, Route
from passthru.config.declarative import to_identifier
from passthru.identify import BUILTINS, Identifier
from passthru.identify.base import Fields
from passthru.identify.engine import Guard, call_plain
from passthru.plugins import UserIdentifiers
from passthru.routing import Router
from passthru.server.upstream import Balancer


def listener_key(listener: Listener) -> tuple:
    """What identifies a listen socket across reloads: its family and bound address."""
    return (listener.address.family, listener.address.sockaddr)


def connection_guard(user: UserIdentifiers | None) -> Guard:
    """The engine's guard for one connection: built-ins and config rules are called directly,
    user files through their containment, which also bounds their total time per connection."""
    if user is None or not user.current():  # no user files serving: nothing to contain
        return call_plain
    contained = user.connection_guard()

    def guard(identifier: Identifier, data: bytes) -> Fields | int | None:
        if identifier.trusted:
            return identifier.identify(data)
        return contained(identifier, data)

    return guard


@dataclass(frozen=True)
class Runtime:
    config: Config
    router: Router
    balancers: dict[str, Balancer]
    #: The config's declarative rules, then the built-ins: called without containment.
    trusted: tuple[Identifier, ...]
    #: The first route when it matches everything: then there is nothing to identify and the
    #: connection is dialed at once (HAProxy's plain ``mode tcp``; server-speaks-first works).
    catch_all: Route | None = None
    listeners: dict[tuple, Listener] = field(default_factory=dict)
    #: ``capture:``: where the first bytes of connections nothing identified go (None: off)
    capture: Capture | None = None

    @classmethod
    def build(cls, config: Config) -> Runtime:
        targets = [*config.routes, config.default, config.on_timeout]
        balancers = {r.name: Balancer(r) for r in targets if r is not None}
        trusted = (*(to_identifier(d) for d in config.declarative), *BUILTINS)
        first = config.routes[0] if config.routes else None
        catch_all = first if first is not None and first.catch_all else None
        listeners = {listener_key(listener): listener for listener in config.listeners}
        capture = capture_for(config.capture)
        return cls(config, Router(config.routes), balancers, trusted, catch_all, listeners, capture)

    def identifiers(self, user: UserIdentifiers | None = None) -> tuple[Identifier, ...]:
        """User files, then the config's declarative rules and the built-ins whose names no user
        file took (a user file replaces a built-in of the same name)."""
        return user.combined(self.trusted) if user is not None else self.trusted

    def balancer(self, route: Route) -> Balancer:
        """The route's balancer; a rendered template route (``targets.py``) gets its own."""
        balancer = self.balancers[route.name]
        return balancer if balancer.route is route else Balancer(route)
