"""Backend names re-resolved in the background, never per connection.

Backend addresses are resolved when the config loads, so a connection never waits for DNS.
A backend given by name (``api.internal:80``) is then looked up again every
``timeouts.resolve`` (30 s by default) by a greenlet (gevent's resolver does not block the hub); when the
answer changes, new connections and health checks go to the new address. A failed lookup
keeps the last good address (a DNS outage must not take backends away) and is logged once per
outage. Only names the current config uses are looked up.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable

import gevent
from gevent import socket as gsocket

from passthru.config import Config, Endpoint

log = logging.getLogger("passthru.resolver")


def is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return True
    return False


def config_names(config: Config) -> set[Endpoint]:
    """The backends of ``config`` that are given by name."""
    routes = [*config.routes, config.default, config.on_timeout]
    return {e for route in routes if route is not None for e in route.to if is_name(e.host)}


class Resolver:
    def __init__(self) -> None:
        self.interval = 30.0
        self.current: dict[Endpoint, tuple[int, tuple]] = {}
        self.names: set[Endpoint] = set()
        self.failing: set[Endpoint] = set()
        self._loop: gevent.Greenlet | None = None

    def address(self, endpoint: Endpoint) -> tuple[int, tuple]:
        """``(family, sockaddr)`` to dial now: the latest lookup, or the one made at load."""
        current = self.current
        if current:  # only names are looked up again; most configs dial addresses
            return current.get(endpoint, (endpoint.family, endpoint.sockaddr))
        return endpoint.family, endpoint.sockaddr

    def apply(self, config: Config) -> None:
        """Follow the names of this config (called at start and after each reload)."""
        self.names = config_names(config)
        self.interval = config.timeouts.resolve
        self.current = {e: a for e, a in self.current.items() if e in self.names}
        if self.names and self._loop is None:
            self._loop = gevent.spawn(self._refresh_forever)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.kill(block=False)
            self._loop = None

    def _refresh_forever(self) -> None:
        while True:
            gevent.sleep(self.interval)
            self.refresh(list(self.names))

    def refresh(self, endpoints: Iterable[Endpoint]) -> None:
        for endpoint in endpoints:
            try:
                family, _, _, _, sockaddr = gsocket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)[
                    0
                ]
            except OSError as exc:
                if endpoint not in self.failing:
                    self.failing.add(endpoint)
                    log.warning("cannot resolve backend %s (%s); still using %s", endpoint, exc, self._text(endpoint))
                continue
            self.failing.discard(endpoint)
            if (family, sockaddr) != self.address(endpoint):
                log.info("backend %s now resolves to %s (was %s)", endpoint, sockaddr[0], self._text(endpoint))
                self.current[endpoint] = (family, sockaddr)

    def _text(self, endpoint: Endpoint) -> str:
        return str(self.address(endpoint)[1][0])


#: The process's resolver: the dialer and the health checks ask it where a backend is now.
RESOLVER = Resolver()
