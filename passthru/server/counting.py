"""Every open connection of this process, counted in one place.

The acceptors ask it whether they may accept (``max_connections``, global and per listener)
and are resumed by it when a connection closes; connections tell it when they are accepted,
leave identification, start or stop relaying, and close. The per-source limits
(:class:`~passthru.server.admission.Admission`) live behind it too, so no other object keeps a
count of connections.

It also enforces idle timeouts with one periodic sweep over the relaying connections (cheaper
than a timer per connection), and lets a shutdown wait for connections to finish.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent
from gevent.event import Event

from passthru.config import Limits
from passthru.server.admission import Admission
from passthru.server.lifecycle import End

if TYPE_CHECKING:
    from passthru.server.connection import Connection
    from passthru.server.relay import Relay

#: How often idle relays are looked for; an idle timeout fires up to this much late.
SWEEP_SECONDS = 0.1


class Counting:
    def __init__(self) -> None:
        self.open: set[Connection] = set()
        self.identifying = 0
        self.per_listener: Counter[tuple] = Counter()
        self.relays: set[Relay] = set()
        self.admission = Admission()
        #: Called after each close, so acceptors paused at a limit may accept again.
        self.on_capacity: Callable[[], None] = lambda: None
        self._empty = Event()
        self._empty.set()
        self._sweeper: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return len(self.open)

    # -- accepting ------------------------------------------------------------------------
    def full(self, limits: Limits, listener_key: tuple, listener_max: int | None) -> bool:
        """At ``max_connections`` (global, or this listener's): stop accepting for now."""
        if limits.max_connections is not None and len(self.open) >= limits.max_connections:
            return True
        return listener_max is not None and self.per_listener[listener_key] >= listener_max

    # -- a connection's life --------------------------------------------------------------
    def accepted(self, connection: Connection) -> None:
        self.open.add(connection)
        self.per_listener[connection.listener_key] += 1
        self.identifying += 1
        self._empty.clear()

    def admit(self, limits: Limits, connection: Connection) -> str | None:
        """Apply the per-source limits to the (real) client; the ``End`` word that refuses it.
        A connection admitted under such limits is counted per source (``admitted``); with none
        configured there is nothing to count."""
        if not Admission.applies(limits):
            return None
        refused = self.admission.admit(limits, connection.source, self.identifying - 1)
        if refused is None:
            connection.admitted = True
        return refused

    def identified(self, connection: Connection) -> None:
        """Once per connection: identification is over (routed, refused or failed)."""
        self.identifying -= 1
        if connection.admitted:
            self.admission.identified(connection.source)

    def relaying(self, relay: Relay) -> None:
        self.relays.add(relay)
        if self._sweeper is None:
            self._sweeper = gevent.spawn(self._sweep_forever)

    def relay_over(self, relay: Relay) -> None:
        self.relays.discard(relay)

    def closed(self, connection: Connection) -> None:
        self.open.discard(connection)
        self.per_listener[connection.listener_key] -= 1
        if connection.admitted:
            self.admission.closed(connection.source)
        if not self.open:
            self._empty.set()
        self.on_capacity()

    # -- idle timeouts and shutdown -------------------------------------------------------
    def sweep(self, now: float | None = None) -> None:
        """End every relay that moved no byte for its idle timeout."""
        now = time.monotonic() if now is None else now
        for relay in [r for r in self.relays if now - r.last_activity >= r.idle]:
            relay.finish(End.IDLE_TIMEOUT)

    def _sweep_forever(self) -> None:
        while True:
            gevent.sleep(SWEEP_SECONDS)
            self.sweep()

    def wait_empty(self, timeout: float) -> bool:
        return self._empty.wait(timeout)

    def close_all(self, end: End) -> None:
        for connection in list(self.open):
            connection.shut_down(end)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
            self._sweeper = None
