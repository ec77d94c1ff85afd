"""The admin endpoint (``admin:`` in the config): ``/metrics``, ``/healthz``, ``/readyz``, and the
status page ``/`` with its data ``/status.json``.

It runs in the top process: the supervisor when ``workers`` > 1 (it sees every worker's metric
and status files and outlives any one worker), else the single serving process.
``observability(endpoint, access)`` is the one call ``passthru run`` needs around serving;
``start_admin`` is the building block.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from passthru import metrics
from passthru.admin.access import AccessPolicy
from passthru.admin.app import admin_app
from passthru.admin.server import AdminHTTPServer, serve_in_thread
from passthru.admin.status import History, build, read_samples, read_states
from passthru.config import Endpoint
from passthru.config.operating import AdminAccess

log = logging.getLogger("passthru.admin")

__all__ = ["AdminServer", "observability", "start_admin"]


@dataclass
class AdminServer:
    """A running admin server; ``address`` is the bound (host, port), useful with port 0."""

    server: AdminHTTPServer
    thread: threading.Thread
    history: History | None = None

    @property
    def address(self) -> tuple:
        return self.server.server_address

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        if self.history is not None:
            self.history.stop()


def status_source(history: History) -> Callable[[], dict[str, Any]]:
    """``/status.json``'s document, from the metric files and the processes' status files."""

    def status() -> dict[str, Any]:
        directory = metrics.directory()
        if directory is None:
            raise RuntimeError("metrics are not set up")
        return build(read_samples(metrics.registry()), read_states(directory), history, time.time())

    return status


def start_admin(
    endpoint: Endpoint,
    readiness: Callable[[], bool] = metrics.ready,
    registry: CollectorRegistry | None = None,
    access: AdminAccess | None = None,
) -> AdminServer:
    """Serve the admin endpoints on ``endpoint`` in a daemon thread. ``registry`` defaults to
    the multiprocess one, so ``metrics.setup()`` must have been called. Raises ``OSError`` when
    the address cannot be bound."""
    history = History(metrics.registry) if metrics.enabled() else None
    status = status_source(history) if history is not None else None
    app = admin_app(registry if registry is not None else metrics.registry(), readiness, status, AccessPolicy(access))
    server = AdminHTTPServer(endpoint.family, endpoint.sockaddr, app)
    thread = serve_in_thread(server)
    if history is not None:
        history.start()
    log.info("admin: status page /, /status.json, /metrics, /healthz, /readyz on http://%s", endpoint)
    return AdminServer(server, thread, history)


@contextlib.contextmanager
def observability(endpoint: Endpoint | None, access: AdminAccess | None = None) -> Iterator[AdminServer | None]:
    """Metrics and the admin server for the duration of ``passthru run`` (nothing when
    ``endpoint`` is None). Enter it before forking workers; it cleans up on exit."""
    if endpoint is None:
        yield None
        return
    metrics.setup()
    try:
        admin = start_admin(endpoint, access=access)
    except BaseException:
        metrics.cleanup()
        raise
    try:
        yield admin
    finally:
        admin.stop()
        metrics.cleanup()
