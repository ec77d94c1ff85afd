"""Dialing a route's backends: only addresses the config names, resolved when it loaded."""

from __future__ import annotations

import itertools
import socket
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from gevent import socket as gsocket

from passthru.config import Endpoint, Route


class UpstreamUnavailable(Exception):
    """Every backend of the route refused, timed out or failed; ``attempts`` says how."""

    def __init__(self, attempts: list[tuple[Endpoint, str]]) -> None:
        self.attempts = attempts
        super().__init__("; ".join(f"{endpoint}: {reason}" for endpoint, reason in attempts))


@dataclass
class Balancer:
    """Chooses the order in which a route's backends are tried. One per route per config."""

    route: Route
    _counter: itertools.count = field(default_factory=itertools.count)

    def order(self, client_host: str) -> Sequence[Endpoint]:
        backends = self.route.to
        if len(backends) == 1 or self.route.balance == "first":
            return backends
        if self.route.balance == "source_hash":
            start = zlib.crc32(client_host.encode()) % len(backends)  # stable across workers
        else:
            start = next(self._counter) % len(backends)
        return backends[start:] + backends[:start]

    def release(self, endpoint: Endpoint) -> None:
        """A connection to ``endpoint`` that ``dial_any`` returned has closed."""


def dial(endpoint: Endpoint, timeout: float) -> gsocket.socket:
    """Connect to one backend; TCP_NODELAY since we forward whatever segments the client sent."""
    sock = gsocket.socket(endpoint.family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(endpoint.sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def dial_any(balancer: Balancer, client_host: str, timeout: float) -> tuple[gsocket.socket, Endpoint]:
    """Try the route's backends in balance order; the first that accepts wins."""
    attempts: list[tuple[Endpoint, str]] = []
    for endpoint in balancer.order(client_host):
        try:
            return dial(endpoint, timeout), endpoint
        except TimeoutError:
            attempts.append((endpoint, "connect timed out"))
        except OSError as exc:
            attempts.append((endpoint, exc.strerror or str(exc)))
    raise UpstreamUnavailable(attempts)
