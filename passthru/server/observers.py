"""The observers of connection lifecycles in a serving process: metrics and the log line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from passthru import metrics
from passthru.connlog import CONNECTIONS, emit
from passthru.server.lifecycle import End, NullObserver

if TYPE_CHECKING:
    from passthru.server.connection import Connection


class MetricsObserver(NullObserver):
    """Counts what ``/metrics`` shows (see ``passthru.metrics``)."""

    def opened(self, connection: Connection) -> None:
        metrics.connection_opened()

    def identified(self, connection: Connection, seconds: float) -> None:
        metrics.identified(seconds)

    def identify_timeout(self, connection: Connection) -> None:
        metrics.identify_timeout(len(connection.data))

    def unmatched(self, connection: Connection) -> None:
        metrics.unmatched(connection.record.protocol)

    def refused(self, connection: Connection, end: End) -> None:
        metrics.limit_hit(end.value)

    def upstream_failed(self, connection: Connection, backend: str, reason: str) -> None:
        route = connection.route.name if connection.route is not None else metrics.NO_ROUTE
        metrics.upstream_failed(route, backend, reason)

    def closed(self, connection: Connection) -> None:
        metrics.connection_closed(connection.record)


class LogObserver(NullObserver):
    """Writes the connection's one log line when it closes (batched by ``connlog``)."""

    def __init__(self, log_format: str | None = None) -> None:
        self.log_format = log_format  # the command line's; else the config's

    def closed(self, connection: Connection) -> None:
        emit(connection.record, self.log_format or connection.runtime.config.log_format)

    def flush(self) -> None:
        CONNECTIONS.flush()
