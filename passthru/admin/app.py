"""The admin endpoints as one WSGI app: ``/metrics``, ``/healthz``, ``/readyz``, and the status:
``/`` (one self-contained HTML page) and ``/status.json``.

``/metrics`` is prometheus-client's own WSGI app (content negotiation: Prometheus text or
OpenMetrics, gzip) over a registry that sums the workers' files. ``/healthz`` answers 200 as long
as the process can answer at all; ``/readyz`` asks ``readiness()`` on every probe. ``/`` and
``/status.json`` answer only clients :class:`~passthru.admin.access.AccessPolicy` allows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app

from passthru.admin.access import CHALLENGE, AccessPolicy
from passthru.admin.page import PAGE, PAGE_HEADERS

log = logging.getLogger("passthru.admin")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

PATHS = ("/", "/status.json", "/metrics", "/healthz", "/readyz")
NO_STORE = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]


def admin_app(
    registry: CollectorRegistry,
    readiness: Callable[[], bool],
    status: Callable[[], dict[str, Any]] | None = None,
    access: AccessPolicy | None = None,
) -> WSGIApp:
    metrics = make_wsgi_app(registry)
    policy = access or AccessPolicy(None)

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
        if path in ("/", "/status.json") and status is not None:
            refusal = policy.refusal(environ)
            if refusal is not None:
                extra = [CHALLENGE] if refusal[0].startswith("401") else []
                return _plain(start_response, refusal[0], refusal[1], extra)
            if path == "/":
                return _send(start_response, "200 OK", "text/html; charset=utf-8", PAGE, PAGE_HEADERS)
            body = json.dumps(status(), separators=(",", ":"), default=str, allow_nan=False).encode()
            return _send(start_response, "200 OK", "application/json", body)
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
    return _send(start_response, status, "text/plain; charset=utf-8", body.encode(), headers)


def _send(
    start_response: StartResponse,
    status: str,
    content_type: str,
    data: bytes,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status,
        [("Content-Type", content_type), ("Content-Length", str(len(data))), *NO_STORE, *(headers or [])],
    )
    return [data]
