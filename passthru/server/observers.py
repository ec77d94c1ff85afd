"""The observers of connection lifecycles in a serving process: metrics, the log line, capture."""

from __future__ import annotations

from typing import TYPE_CHECKING

from passthru import metrics
from passthru.connlog import CONNECTIONS, emit
from passthru.server.lifecycle import End, NullObserver

if TYPE_CHECKING:
    from passthru.config import Route
    from passthru.server.connection import Connection


class MetricsObserver(NullObserver):
    """Counts what ``/metrics`` shows (see ``passthru.metrics``). What every connection has
    (opened, identified, closed, bytes) is tallied in plain integers and applied at ``flush``;
    the rarer events are recorded at once."""

    def __init__(self) -> None:
        self.tally = metrics.ConnectionTally()

    def opened(self, connection: Connection) -> None:
        self.tally.opened += 1

    def identified(self, connection: Connection, seconds: float) -> None:
        self.tally.identify_seconds.append(seconds)

    def identify_timeout(self, connection: Connection) -> None:
        metrics.identify_timeout(len(connection.data))

    def unmatched(self, connection: Connection) -> None:
        metrics.unmatched(connection.record.protocol)

    def decided(self, connection: Connection, route: Route | None, why: tuple[str, ...]) -> None:
        if route is not None:
            self.tally.routed(route.name, connection.record.protocol)

    def refused(self, connection: Connection, end: End) -> None:
        metrics.limit_hit(end.value)

    def upstream_failed(self, connection: Connection, backend: str, reason: str) -> None:
        route = connection.route.name if connection.route is not None else metrics.NO_ROUTE
        metrics.upstream_failed(route, backend, reason)

    def closed(self, connection: Connection) -> None:
        self.tally.connection_closed(connection.record)

    def flush(self) -> None:
        if not self.tally.empty():
            tally, self.tally = self.tally, metrics.ConnectionTally()
            metrics.connections_batch(tally)


class LogObserver(NullObserver):
    """Writes the connection's one log line when it closes (batched by ``connlog``)."""

    def __init__(self, log_format: str | None = None) -> None:
        self.log_format = log_format  # the command line's; else the config's

    def closed(self, connection: Connection) -> None:
        emit(connection.record, self.log_format or connection.runtime.config.log_format)

    def flush(self) -> None:
        CONNECTIONS.flush()


class CaptureObserver(NullObserver):
    """Hands the first bytes of connections worth a look to the config's ``capture:`` (which
    never blocks nor raises: see ``passthru.capture``)."""

    def decided(self, connection: Connection, route: Route | None, why: tuple[str, ...]) -> None:
        sampler = connection.runtime.capture
        if sampler is not None and why:
            record = connection.record
            sampler.offer(connection.data, why, record.client, record.listener, record.id)
