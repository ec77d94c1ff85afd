"""Dialing a route's backends: only addresses the config names, resolved when it loaded.

``Balancer.order`` gives the order to try them in: the backend the ``balance`` algorithm picks
among the UP ones, then the other UP ones (best first, by the same algorithm), then the DOWN
ones as a last resort (a backend we believe dead may be back, and trying it beats refusing the
client); when every backend is down the algorithm picks among all of them. ``dial_any`` walks
that order: a backend that refuses, times out or is unreachable is marked down at once and the
next one is tried (unless the error is this process's own shortage, such as EMFILE: that says
nothing about the backend). Nothing has been sent to a backend before its connect succeeds, so the
client's prefix simply goes to the one that accepts: the client notices nothing but the delay.

Transparent routes (``transparent: true``) dial from the client's own address, as sslh
``--transparent`` does: the socket gets ``IP_TRANSPARENT`` (``IPV6_TRANSPARENT``) and is bound
to ``(client address, 0)`` before the connect, so the backend sees the client. That needs
CAP_NET_ADMIN (or CAP_NET_RAW) in this process, and routing that brings the backend's replies to
the client's address back to this host and into the socket (policy routing, see the README).
A client on loopback is dialled from our own address, as sslh does for local clients (a
loopback source cannot leave the host). Failing to take the client's address is this host's
problem, not the backend's: it is a :class:`SourceAddressError`, the attempt is logged with
the reason, and the backend is not marked down. :func:`check_transparent` finds a missing
privilege once, at start-up.
"""

from __future__ import annotations

import _socket
import contextlib
import errno
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Callable, Collection, Iterable, Sequence

from gevent import socket as gsocket

from passthru.config import Endpoint, Route
from passthru.server.backends import BACKENDS, Backends
from passthru.server.balance import POLICIES, Member
from passthru.server.resolver import RESOLVER

log = logging.getLogger("passthru.server")

#: Linux socket options; not every Python build names the IPv6 one.
IP_TRANSPARENT = getattr(socket, "IP_TRANSPARENT", 19)
IPV6_TRANSPARENT = getattr(socket, "IPV6_TRANSPARENT", 75)
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)

PRIVILEGE_HINT = (
    "transparent routes need CAP_NET_ADMIN: run Passthru as root without user:, "
    "or give it the capability (systemd AmbientCapabilities=CAP_NET_ADMIN)"
)


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


class SourceAddressError(OSError):
    """A transparent dial could not use the client's address as its source (no privilege, an
    address family the backend does not have, the address refused): a problem of this host, not
    of the backend. Its text says which, and what to do."""


def dial(endpoint: Endpoint, timeout: float, source: tuple[str, int] | None = None) -> gsocket.socket:
    """Connect to one backend; TCP_NODELAY since we forward whatever segments the client sent.
    ``source`` (the client's ``(host, port)``): connect from that host, transparently."""
    family, sockaddr = RESOLVER.address(endpoint)  # a name's latest lookup (see resolver.py)
    sock = gsocket.socket(family, socket.SOCK_STREAM)
    try:
        if source is not None:
            bind_transparent(sock, endpoint, source[0])
        sock.settimeout(timeout)
        sock.connect(sockaddr)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        sock.close()
        raise
    return sock


def start_connect(endpoint: Endpoint, source: tuple[str, int] | None = None) -> _socket.socket:
    """Begin a non-blocking connect to one backend (the connection waits for it to become
    writable, then asks :func:`connect_result`). TCP_NODELAY since we forward whatever segments
    the client sent. Raises OSError when the connect fails at once."""
    family, sockaddr = RESOLVER.address(endpoint)  # a name's latest lookup (see resolver.py)
    sock = _socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)  # no Python-level wrapper
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source is not None:
            bind_transparent(sock, endpoint, source[0])
        error = sock.connect_ex(sockaddr)
        if error not in (0, errno.EINPROGRESS):
            raise OSError(error, os.strerror(error))
    except BaseException:
        sock.close()
        raise
    return sock


def connect_result(sock: socket.socket) -> OSError | None:
    """After a non-blocking connect became writable: None if it succeeded, else its error."""
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return OSError(error, os.strerror(error)) if error else None  # OSError picks the subclass by errno


def transparent_source(endpoint: Endpoint, client_host: str) -> str | None:
    """The address a transparent connection to ``endpoint`` binds: the client's (an IPv4-mapped
    IPv6 address as plain IPv4), or None for a loopback client (dialled from our own address)."""
    try:
        address = ipaddress.ip_address(client_host)
    except ValueError:
        raise SourceAddressError(f"transparent: the client address {client_host!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None
    backend_version = 6 if endpoint.family == socket.AF_INET6 else 4
    if address.version != backend_version:
        raise SourceAddressError(
            f"transparent: the client {address} is IPv{address.version} but backend {endpoint} is "
            f"IPv{backend_version}; a connection from the client's own address needs a backend of the same family"
        )
    return str(address)


def option_name(family: int) -> str:
    return "IPV6_TRANSPARENT" if family == socket.AF_INET6 else "IP_TRANSPARENT"


def set_transparent(sock: socket.socket, family: int) -> None:
    """Allow ``sock`` to bind an address that is not this host's (EPERM without CAP_NET_ADMIN)."""
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
    else:
        sock.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)


def bind_transparent(sock: socket.socket, endpoint: Endpoint, client_host: str) -> None:
    """Make ``sock`` connect from ``client_host`` (any free port). Raises SourceAddressError."""
    host = transparent_source(endpoint, client_host)
    if host is None:
        return
    try:
        set_transparent(sock, endpoint.family)
    except OSError as exc:
        raise SourceAddressError(
            f"transparent: cannot connect from the client's address {host}: "
            f"setting {option_name(endpoint.family)} failed ({exc.strerror or exc}); {PRIVILEGE_HINT}"
        ) from exc
    with contextlib.suppress(OSError):  # the port is chosen at connect, by the whole 4-tuple
        sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
    try:
        sock.bind((host, 0))
    except OSError as exc:
        raise SourceAddressError(
            f"transparent: cannot bind the client's address {host} ({exc.strerror or exc})"
        ) from exc


def transparent_unavailable(families: Iterable[int] = (socket.AF_INET,)) -> str | None:
    """None when this process may open transparent sockets of these families, else why not."""
    if not sys.platform.startswith("linux"):
        return "transparent mode needs Linux (IP_TRANSPARENT)"
    for family in sorted(set(families)):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this host: no IPv6 backend can be dialled either way
        with probe:
            try:
                set_transparent(probe, family)
            except OSError as exc:
                reason = f"setting {option_name(family)} failed: {exc.strerror or exc}"
                return f"this process may not open transparent sockets ({reason}); {PRIVILEGE_HINT}"
    return None


def check_transparent(routes: Iterable[Route], logger: logging.Logger = log) -> str | None:
    """Call once at start-up, after dropping privileges, and after each reload: when a route
    has ``transparent: true`` and this process may not open transparent sockets, log one ERROR
    naming those routes and return it (None when all is well). Serving goes on: those routes'
    connections then fail one by one with the same reason; other routes are unaffected."""
    transparent = [route for route in routes if route.transparent]
    if not transparent:
        return None
    families = {socket.AF_INET} | {endpoint.family for route in transparent for endpoint in route.to}
    problem = transparent_unavailable(families)
    if problem is None:
        return None
    names = ", ".join(route.name for route in transparent)
    plural, its = ("s", "their") if len(transparent) > 1 else ("", "its")
    message = f"route{plural} {names}: transparent: true, but {its} connections will fail: {problem}"
    logger.error(message)
    return message


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
    *,
    source: tuple[str, int] | None = None,
) -> tuple[gsocket.socket, Endpoint]:
    """Try the route's backends in balance order; the first that accepts wins. ``on_failure``
    hears of every failed attempt (for metrics), also those a later backend made good.
    ``exclude``: backends this connection already tried (one that failed after accepting).
    ``source``: the client's ``(host, port)`` for a transparent route (see :func:`dial`); a
    failure to use it does not mark the backend down."""
    attempts: list[tuple[Endpoint, str]] = []
    for endpoint in balancer.order(client_host):
        if endpoint in exclude:
            continue
        try:
            sock = dial(endpoint, timeout, source)
        except OSError as exc:
            text = connect_error_text(exc)
            if source is not None and isinstance(exc, TimeoutError):
                text += f" (transparent: are the backend's replies to {source[0]} routed back to this host?)"
            attempts.append((endpoint, text))
            if exc.errno not in LOCAL_ERRNOS and not isinstance(exc, SourceAddressError):
                balancer.failed(endpoint, down_reason(exc))
            if on_failure is not None:
                on_failure(endpoint, exc)
            continue
        balancer.connected(endpoint)
        return sock, endpoint
    raise UpstreamUnavailable(attempts)
