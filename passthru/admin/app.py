"""The admin endpoints as one WSGI app: ``/metrics``, ``/healthz``, ``/readyz``.

``/metrics`` is prometheus-client's own WSGI app (content negotiation: Prometheus text or
OpenMetrics, gzip) over a registry that sums the workers' files. ``/healthz`` answers 200 as long
as the process can answer at all; ``/readyz`` asks ``readiness()`` on every probe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger("passthru.admin")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

PATHS = ("/metrics", "/healthz", "/readyz")


def admin_app(registry: CollectorRegistry, readiness: Callable[[], bool]) -> WSGIApp:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "405 Method Not Allowed", "GET only\n", [("Allow", "GET, HEAD")])
        if path == "/metrics":
            return metrics(environ, start_response)
        if path == "/healthz":
            return _plain(start_response, "200 OK", "ok\n")
        if path == "/readyz":
            if _is_ready(readiness):
                return _plain(start_response, "200 OK", "ready\n")
            return _plain(start_response, "503 Service Unavailable", "not ready (starting or draining)\n")
        return _plain(start_response, "404 Not Found", "not found; try " + ", ".join(PATHS) + "\n")

    return app


def _is_ready(readiness: Callable[[], bool]) -> bool:
    try:
        return bool(readiness())
    except Exception:
        log.exception("readiness check failed; answering not ready")
        return False


def _plain(
    start_response: StartResponse, status: str, body: str, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    data = body.encode()
    start_response(
        status,
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data))), *(headers or [])],
    )
    return [data]
