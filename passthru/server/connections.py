"""Every open connection of this process: counted while identifying, held while relaying.

It enforces idle timeouts with one periodic sweep (cheaper than a timer per connection, and
a relay is callbacks, not a greenlet that could time out by itself), and lets a shutdown wait
for relays to finish before closing what is left.
"""

from __future__ import annotations

import time

import gevent
from gevent.event import Event

from passthru.server.relay import Relay

#: How often idle relays are looked for; an idle timeout fires up to this much late.
SWEEP_SECONDS = 0.1


class Connections:
    def __init__(self) -> None:
        self.relays: set[Relay] = set()
        self.identifying = 0
        self._empty = Event()
        self._empty.set()
        self._sweeper: gevent.Greenlet | None = None

    def __len__(self) -> int:
        return self.identifying + len(self.relays)

    def begin_identifying(self) -> None:
        self.identifying += 1
        self._empty.clear()

    def end_identifying(self) -> None:
        self.identifying -= 1
        self._maybe_empty()

    def add_relay(self, relay: Relay) -> None:
        self.relays.add(relay)
        self._empty.clear()
        if self._sweeper is None:
            self._sweeper = gevent.spawn(self._sweep_forever)

    def remove_relay(self, relay: Relay) -> None:
        self.relays.discard(relay)
        self._maybe_empty()

    def _maybe_empty(self) -> None:
        if not self.relays and self.identifying == 0:
            self._empty.set()

    def sweep(self, now: float | None = None) -> None:
        """End every relay that moved no byte for its idle timeout."""
        now = time.monotonic() if now is None else now
        for relay in [r for r in self.relays if now - r.last_activity >= r.idle]:
            relay.finish("idle_timeout")

    def _sweep_forever(self) -> None:
        while True:
            gevent.sleep(SWEEP_SECONDS)
            self.sweep()

    def wait_empty(self, timeout: float) -> bool:
        return self._empty.wait(timeout)

    def close_all(self, reason: str) -> None:
        for relay in list(self.relays):
            relay.finish(reason)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
            self._sweeper = None
