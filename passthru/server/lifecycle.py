"""The states a connection goes through, the ways it can end, and who watches it.

A connection moves forward only: ``ACCEPTED → IDENTIFYING → DIALING → RELAYING → CLOSED``,
through ``CLOSING`` when it is refused in order (the client's side is shut down and what it still
sends is drained briefly). It may skip states: a catch-all route dials at once, a refused one
closes at once. An early backend failure goes from ``RELAYING`` back to ``DIALING`` for the next
backend: the one step back. Its end is one :class:`End`, shared by the log line, the metrics and the tests.

Observers (the log line, the metrics, capture) are told of lifecycle events; the connection
code never calls them from its branches, only through :class:`Observers` at the transitions.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Protocol

import gevent

if TYPE_CHECKING:
    from passthru.config import Route
    from passthru.server.connection import Connection


class State(Enum):
    ACCEPTED = "accepted"
    IDENTIFYING = "identifying"
    DIALING = "dialing"
    RELAYING = "relaying"
    CLOSING = "closing"
    CLOSED = "closed"


class End(StrEnum):
    """Why a connection ended: the ``end=`` word of its log line and its metrics label."""

    CLOSED = "closed"  # both sides finished in order
    IDLE_TIMEOUT = "idle_timeout"
    CLIENT_RESET = "client_reset"
    UPSTREAM_RESET = "upstream_reset"
    CLIENT_CLOSED = "client_closed"  # closed before sending anything
    REJECTED = "rejected"  # no route and ``default: reject``
    IDENTIFY_BUDGET = "identify_budget"  # spent its identification CPU (limits.identify_cpu)
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_NOT_ALLOWED = "upstream_not_allowed"
    UPSTREAM_UNRESOLVED = "upstream_unresolved"
    UPSTREAM_REFUSED_TLS = "upstream_refused_tls"
    PROXY_PROTOCOL_ERROR = "proxy_protocol_error"
    LIMIT_PER_SOURCE = "limit_per_source"
    RATE_PER_SOURCE = "rate_per_source"
    LIMIT_IDENTIFYING = "limit_identifying"
    LIMIT_IDENTIFYING_PER_SOURCE = "limit_identifying_per_source"
    SHUTDOWN = "shutdown"
    ERROR = "error"

    @property
    def is_reset(self) -> bool:
        return self in (End.CLIENT_RESET, End.UPSTREAM_RESET)


class Observer(Protocol):
    """What watches connections. Every method is optional in spirit: a no-op is fine."""

    def opened(self, connection: Connection) -> None: ...
    def identified(self, connection: Connection, seconds: float) -> None: ...
    def identify_timeout(self, connection: Connection) -> None: ...
    def unmatched(self, connection: Connection) -> None: ...
    def decided(self, connection: Connection, route: Route | None, why: tuple[str, ...]) -> None: ...
    def refused(self, connection: Connection, end: End) -> None: ...
    def upstream_failed(self, connection: Connection, backend: str, reason: str) -> None: ...
    def closed(self, connection: Connection) -> None: ...
    def flush(self) -> None: ...


class Observers:
    """Fans lifecycle events out to the observers, and flushes them together shortly after the
    first event of a batch (observers may batch: metrics are applied before the log lines are
    written, so whoever reads a connection's log line finds it counted).

    Each event calls only the observers that watch it (override the ``NullObserver`` no-op):
    four events happen to every connection, and a call to a no-op is not free."""

    FLUSH_SECONDS = 0.2

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self._scheduled: gevent.Greenlet | None = None
        self._opened = _watching(observers, "opened")
        self._identified = _watching(observers, "identified")
        self._identify_timeout = _watching(observers, "identify_timeout")
        self._unmatched = _watching(observers, "unmatched")
        self._decided = _watching(observers, "decided")
        self._refused = _watching(observers, "refused")
        self._upstream_failed = _watching(observers, "upstream_failed")
        self._closed = _watching(observers, "closed")

    def opened(self, connection: Connection) -> None:
        for event in self._opened:
            event(connection)
        self._soon()

    def identified(self, connection: Connection, seconds: float) -> None:
        for event in self._identified:
            event(connection, seconds)
        self._soon()

    def identify_timeout(self, connection: Connection) -> None:
        for event in self._identify_timeout:
            event(connection)

    def unmatched(self, connection: Connection) -> None:
        for event in self._unmatched:
            event(connection)

    def decided(self, connection: Connection, route: Route | None, why: tuple[str, ...]) -> None:
        """Routing is decided: ``route`` (None: refused), and ``why`` the first bytes may be
        worth a look (``timeout``, ``unmatched``, ``rejected``: see ``passthru.capture``)."""
        for event in self._decided:
            event(connection, route, why)

    def refused(self, connection: Connection, end: End) -> None:
        for event in self._refused:
            event(connection, end)

    def upstream_failed(self, connection: Connection, backend: str, reason: str) -> None:
        for event in self._upstream_failed:
            event(connection, backend, reason)

    def closed(self, connection: Connection) -> None:
        for event in self._closed:
            event(connection)
        self._soon()

    def _soon(self) -> None:
        """Flush shortly: every event of this batch is applied within ``FLUSH_SECONDS``."""
        if self._scheduled is None:
            self._scheduled = gevent.spawn_later(self.FLUSH_SECONDS, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._scheduled = None
        self.flush()

    def flush(self) -> None:
        for observer in self.observers:
            observer.flush()


def _watching(observers: list[Observer], event: str) -> tuple[Callable[..., None], ...]:
    """The bound ``event`` methods of the observers that do something on it."""
    return tuple(
        getattr(observer, event)
        for observer in observers
        if getattr(type(observer), event, None) is not getattr(NullObserver, event)
    )


class NullObserver:
    """A base with every event a no-op: observers override what they watch."""

    def opened(self, connection: Connection) -> None:
        pass

    def identified(self, connection: Connection, seconds: float) -> None:
        pass

    def identify_timeout(self, connection: Connection) -> None:
        pass

    def unmatched(self, connection: Connection) -> None:
        pass

    def decided(self, connection: Connection, route: Route | None, why: tuple[str, ...]) -> None:
        pass

    def refused(self, connection: Connection, end: End) -> None:
        pass

    def upstream_failed(self, connection: Connection, backend: str, reason: str) -> None:
        pass

    def closed(self, connection: Connection) -> None:
        pass

    def flush(self) -> None:
        pass
