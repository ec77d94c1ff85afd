"""Per-source limits checked when a connection is accepted, before any byte is read.

What happens at each limit (README, "Limits and failure behaviour"):

* ``max_connections`` (global, and per listener): the listener stops accepting until a
  connection closes; new clients wait in the kernel's backlog, as with HAProxy's ``maxconn``.
* ``max_connections_per_source``, ``connection_rate_per_source``, ``max_identifying`` and
  ``max_identifying_per_source``: the connection is accepted and closed at once, sending
  nothing, and logged with ``end=limit_<which>`` (and counted in metrics).

Limits are per worker process (as HAProxy's are per process): with ``workers: N`` the machine
admits up to N times as many. Counters drop entries that reach zero, and rate buckets that
have refilled are forgotten, so memory follows the number of active sources, not history.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from passthru.config import Limits

#: Forget refilled rate buckets once this many sources are tracked.
PRUNE_ABOVE = 10_000


@dataclass
class TokenBucket:
    tokens: float
    updated: float

    def take(self, count: int, period: float, now: float) -> bool:
        """Refill at ``count`` per ``period`` (capped at ``count``), then take one if there is one."""
        self.tokens = min(count, self.tokens + (now - self.updated) * count / period)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Admission:
    def __init__(self) -> None:
        self.open: Counter[str] = Counter()
        self.identifying: Counter[str] = Counter()
        self.buckets: dict[str, TokenBucket] = {}

    @staticmethod
    def applies(limits: Limits) -> bool:
        """Whether any limit ``admit`` checks is set (else there is nothing to count)."""
        return not (
            limits.max_connections_per_source is None
            and limits.max_identifying is None
            and limits.max_identifying_per_source is None
            and limits.connection_rate_per_source is None
        )

    def admit(self, limits: Limits, source: str, identifying_now: int) -> str | None:
        """Count a new connection from ``source`` in, or say which limit refuses it.
        ``identifying_now`` is how many of this process's connections are being identified."""
        if limits.max_connections_per_source is not None and self.open[source] >= limits.max_connections_per_source:
            return "limit_per_source"
        if limits.max_identifying is not None and identifying_now >= limits.max_identifying:
            return "limit_identifying"
        per_source = limits.max_identifying_per_source
        if per_source is not None and self.identifying[source] >= per_source:
            return "limit_identifying_per_source"
        if limits.connection_rate_per_source is not None and not self._take(source, *limits.connection_rate_per_source):
            return "rate_per_source"
        self.open[source] += 1
        self.identifying[source] += 1
        return None

    def identified(self, source: str) -> None:
        """The connection left identification (routed, rejected, or failed)."""
        _decrement(self.identifying, source)

    def closed(self, source: str) -> None:
        _decrement(self.open, source)

    def _take(self, source: str, count: int, period: float) -> bool:
        now = time.monotonic()
        bucket = self.buckets.get(source)
        if bucket is None:
            if len(self.buckets) >= PRUNE_ABOVE:
                self._prune(now, count, period)
            bucket = self.buckets[source] = TokenBucket(count, now)
        return bucket.take(count, period, now)

    def _prune(self, now: float, count: int, period: float) -> None:
        full = [s for s, b in self.buckets.items() if b.tokens + (now - b.updated) * count / period >= count]
        for source in full:
            del self.buckets[source]


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
