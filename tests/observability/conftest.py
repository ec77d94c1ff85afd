"""Metrics enabled in a per-test directory, and an admin server on an ephemeral loopback port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from passthru import metrics
from passthru.admin import AdminServer, start_admin
from passthru.config import Endpoint


def loopback(host: str = "127.0.0.1") -> Endpoint:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockaddr = (host, 0, 0, 0) if family == socket.AF_INET6 else (host, 0)
    return Endpoint(host, 0, family, sockaddr)


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Iterator[Path]:
    directory = metrics.setup(tmp_path / "metrics")
    yield directory
    metrics.cleanup()


@pytest.fixture
def admin(metrics_dir: Path) -> Iterator[AdminServer]:
    server = start_admin(loopback())
    yield server
    server.stop()
