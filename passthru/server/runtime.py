"""Everything a connection needs from one config, built once per (re)load and swapped whole.

A connection takes the current ``Runtime`` when it is accepted and keeps it to the end, so a
reload never changes the rules under a connection already in flight.
"""

from __future__ import annotations

from dataclasses import dataclass

from passthru.config import Config, Route
from passthru.config.declarative import to_identifier
from passthru.identify import BUILTINS, Identifier
from passthru.routing import Router
from passthru.server.upstream import Balancer


@dataclass(frozen=True)
class Runtime:
    config: Config
    router: Router
    balancers: dict[str, Balancer]
    declarative: tuple[Identifier, ...]
    #: The first route when it matches everything: then there is nothing to identify and the
    #: connection is dialed at once (HAProxy's plain ``mode tcp``; server-speaks-first works).
    catch_all: Route | None = None

    @classmethod
    def build(cls, config: Config) -> Runtime:
        targets = [*config.routes, config.default, config.on_timeout]
        balancers = {r.name: Balancer(r) for r in targets if r is not None}
        declarative = tuple(to_identifier(d) for d in config.declarative)
        first = config.routes[0] if config.routes else None
        catch_all = first if first is not None and first.protocol is None and not first.fields else None
        return cls(config, Router(config.routes), balancers, declarative, catch_all)

    def identifiers(self, user: tuple[Identifier, ...] = ()) -> list[Identifier]:
        """User files first, then the config's declarative rules, then the built-ins."""
        return [*user, *self.declarative, *BUILTINS]

    def balancer(self, route: Route) -> Balancer:
        return self.balancers[route.name]
