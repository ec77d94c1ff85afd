"""Dialing a route's backends: only addresses the config names, resolved when it loaded.

``Balancer.order`` gives the order to try them in: the backend the ``balance`` algorithm picks
among the UP ones, then the other UP ones (best first, by the same algorithm), then the DOWN
ones as a last resort (a backend we believe dead may be back, and trying it beats refusing the
client); when every backend is down the algorithm picks among all of them. ``dial_any`` walks
that order: a backend that refuses, times out or is unreachable is marked down at once and the
next one is tried (unless the error is this process's own shortage, such as EMFILE: that says
nothing about the backend). Nothing has been sent to a backend before its connect succeeds, so the
client's prefix simply goes to the one that accepts: the client notices nothing but the delay.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Collection, Sequence

from gevent import socket as gsocket

from passthru.config import Endpoint, Route
from passthru.server.backends import BACKENDS, Backends
from passthru.server.balance import POLICIES, Member


class UpstreamUnavailable(Exception):
    """Every backend of the route refused, timed out or failed; ``attempts`` says how."""

    def __init__(self, attempts: list[tuple[Endpoint, str]]) -> None:
        self.attempts = attempts
        super().__init__("; ".join(f"{endpoint}: {reason}" for endpoint, reason in attempts))


class Balancer:
    """Chooses the order in which a route's backends are tried. One per route per config; the
    backends' up/down state and connection counts live in ``backends`` and outlast it."""

    def __init__(self, route: Route, backends: Backends = BACKENDS) -> None:
        self.route = route
        self.members = [Member(endpoint, weight, backends.state(endpoint)) for endpoint, weight in route.backends]
        self._rank = POLICIES[route.balance]
        self._by_endpoint = {m.endpoint: m for m in self.members}
        self.where = f"route {route.name}"  # for the backend state log lines

    def order(self, client_host: str) -> Sequence[Endpoint]:
        if len(self.members) == 1:
            return (self.members[0].endpoint,)
        up = [m for m in self.members if m.state.up]
        down = [m for m in self.members if not m.state.up]
        if up:
            ranked = self._rank(up, client_host, True) + self._rank(down, client_host, False)
        else:  # everything is down: still try, spreading as if they were up
            ranked = self._rank(down, client_host, True)
        return [m.endpoint for m in ranked]

    def connected(self, endpoint: Endpoint) -> None:
        """``dial_any`` returned a connection to ``endpoint``: it is up and has one more."""
        state = self._by_endpoint[endpoint].state
        state.connect_succeeded(self.where)
        state.acquire()

    def failed(self, endpoint: Endpoint, reason: str) -> None:
        """A connect to ``endpoint`` failed: it is down until a connect or a check succeeds."""
        self._by_endpoint[endpoint].state.connect_failed(reason, self.where)

    def release(self, endpoint: Endpoint) -> None:
        """A connection to ``endpoint`` that ``dial_any`` returned has closed."""
        self._by_endpoint[endpoint].state.release()


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


#: Errors that say this process is short of resources, not that the backend is down.
LOCAL_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def connect_error_text(exc: OSError) -> str:
    """How a failed connect reads in the per-connection log: ``Connection refused``, ..."""
    if isinstance(exc, TimeoutError):
        return "connect timed out"
    return exc.strerror or str(exc)


def down_reason(exc: OSError) -> str:
    """The same, as a state-change reason: ``connection refused``."""
    text = connect_error_text(exc)
    return text[:1].lower() + text[1:]


def dial_any(
    balancer: Balancer,
    client_host: str,
    timeout: float,
    on_failure: Callable[[Endpoint, OSError], None] | None = None,
    exclude: Collection[Endpoint] = (),
) -> tuple[gsocket.socket, Endpoint]:
    """Try the route's backends in balance order; the first that accepts wins. ``on_failure``
    hears of every failed attempt (for metrics), also those a later backend made good.
    ``exclude``: backends this connection already tried (one that failed after accepting)."""
    attempts: list[tuple[Endpoint, str]] = []
    for endpoint in balancer.order(client_host):
        if endpoint in exclude:
            continue
        try:
            sock = dial(endpoint, timeout)
        except OSError as exc:
            attempts.append((endpoint, connect_error_text(exc)))
            if exc.errno not in LOCAL_ERRNOS:
                balancer.failed(endpoint, down_reason(exc))
            if on_failure is not None:
                on_failure(endpoint, exc)
            continue
        balancer.connected(endpoint)
        return sock, endpoint
    raise UpstreamUnavailable(attempts)
