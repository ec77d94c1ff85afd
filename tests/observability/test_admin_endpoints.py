"""``/healthz``, ``/readyz`` and ``/metrics`` over real HTTP on 127.0.0.1 (and ::1)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from passthru import metrics
from passthru.admin import AdminServer, observability, start_admin
from tests.observability.conftest import loopback
from tests.observability.scrape import get, scrape


def test_healthz_is_up_while_readyz_follows_the_readiness_signal() -> None:
    ready = threading.Event()
    server = start_admin(loopback(), readiness=ready.is_set, registry=CollectorRegistry())
    try:
        assert get(server.address, "/healthz")[0] == 200
        status, _, body = get(server.address, "/readyz")
        assert (status, body) == (503, "not ready (starting or draining)\n")
        ready.set()
        assert get(server.address, "/readyz")[:3:2] == (200, "ready\n")
        assert get(server.address, "/healthz")[0] == 200
        ready.clear()  # draining
        assert get(server.address, "/readyz")[0] == 503
    finally:
        server.stop()


def test_a_readiness_check_that_raises_means_not_ready() -> None:
    def broken() -> bool:
        raise OSError("gone")

    server = start_admin(loopback(), readiness=broken, registry=CollectorRegistry())
    try:
        assert get(server.address, "/readyz")[0] == 503
        assert get(server.address, "/healthz")[0] == 200
    finally:
        server.stop()


def test_unknown_paths_and_methods(admin: AdminServer) -> None:
    status, _, body = get(admin.address, "/nope")
    assert status == 404 and "/metrics" in body


def test_metrics_is_the_prometheus_text_format(admin: AdminServer) -> None:
    metrics.connection_opened()
    status, headers, _ = get(admin.address, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert scrape(admin.address).value("passthru_connections_active") == 1
    # A scraper that asks for OpenMetrics gets it, and the OpenMetrics parser reads it.
    assert scrape(admin.address, openmetrics=True).value("passthru_connections_active") == 1


def test_admin_on_ipv6_loopback(metrics_dir) -> None:
    try:
        server = start_admin(loopback("::1"))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert get(server.address, "/healthz")[0] == 200
    finally:
        server.stop()


def test_stop_releases_the_port() -> None:
    server = start_admin(loopback(), readiness=lambda: True, registry=CollectorRegistry())
    port = server.address[1]
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_observability_is_off_without_an_admin_address() -> None:
    with observability(None) as admin:
        assert admin is None
        assert not metrics.enabled()
        metrics.connection_opened()  # a no-op, not an error


def test_observability_sets_up_and_cleans_up() -> None:
    with observability(loopback()) as admin:
        assert admin is not None and metrics.enabled()
        directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        assert directory.is_dir()
        assert get(admin.address, "/readyz")[0] == 503  # nothing has started serving
        metrics.started()
        assert get(admin.address, "/readyz")[0] == 200
        metrics.draining()
        assert get(admin.address, "/readyz")[0] == 503
    assert not metrics.enabled()
    assert not directory.exists(), "the temporary directory is removed"
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def test_a_failing_hook_never_raises(metrics_dir, caplog: pytest.LogCaptureFixture) -> None:
    metrics.connection_opened()  # creates this process's metrics
    broken = Counter("broken", "x", ["a", "b"], registry=None)
    metrics._metrics.limit_rejections = broken  # type: ignore[union-attr]  # wrong label count
    metrics.limit_hit("max_connections")
    metrics.limit_hit("max_connections")
    assert caplog.text.count("recording a metric failed") == 1
