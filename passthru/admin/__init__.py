"""The admin endpoint (``admin:`` in the config): ``/metrics``, ``/healthz``, ``/readyz``.

It runs in the top process: the supervisor when ``workers`` > 1 (it sees every worker's metric
files and outlives any one worker), else the single serving process. ``observability(endpoint)``
is the one call ``passthru run`` needs around serving; ``start_admin`` is the building block.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from passthru import metrics
from passthru.admin.app import admin_app
from passthru.admin.server import AdminHTTPServer, serve_in_thread
from passthru.config import Endpoint

log = logging.getLogger("passthru.admin")

__all__ = ["AdminServer", "observability", "start_admin"]


@dataclass
class AdminServer:
    """A running admin server; ``address`` is the bound (host, port), useful with port 0."""

    server: AdminHTTPServer
    thread: threading.Thread

    @property
    def address(self) -> tuple:
        return self.server.server_address

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_admin(
    endpoint: Endpoint,
    readiness: Callable[[], bool] = metrics.ready,
    registry: CollectorRegistry | None = None,
) -> AdminServer:
    """Serve the admin endpoints on ``endpoint`` in a daemon thread. ``registry`` defaults to
    the multiprocess one, so ``metrics.setup()`` must have been called. Raises ``OSError`` when
    the address cannot be bound."""
    app = admin_app(registry if registry is not None else metrics.registry(), readiness)
    server = AdminHTTPServer(endpoint.family, endpoint.sockaddr, app)
    thread = serve_in_thread(server)
    log.info("admin: /metrics, /healthz, /readyz on http://%s", endpoint)
    return AdminServer(server, thread)


@contextlib.contextmanager
def observability(endpoint: Endpoint | None) -> Iterator[AdminServer | None]:
    """Metrics and the admin server for the duration of ``passthru run`` (nothing when
    ``endpoint`` is None). Enter it before forking workers; it cleans up on exit."""
    if endpoint is None:
        yield None
        return
    metrics.setup()
    try:
        admin = start_admin(endpoint)
    except BaseException:
        metrics.cleanup()
        raise
    try:
        yield admin
    finally:
        admin.stop()
        metrics.cleanup()
