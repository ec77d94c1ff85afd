"""``pool(body, connect=...)``: Passthru on a fresh port with a chosen ``timeouts.connect``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.net import free_port
from tests.support.passthru_process import PassthruProcess


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Callable[..., PassthruProcess]]:
    started: list[PassthruProcess] = []

    def start(body: str, *, connect: str = "2s") -> PassthruProcess:
        port = free_port()
        text = f"listen:\n  - 127.0.0.1:{port}\ntimeouts:\n  identify: 1s\n  connect: {connect}\n  idle: 30s\n{body}"
        proc = PassthruProcess(tmp_path, text, [("127.0.0.1", port)])
        proc.port = port  # type: ignore[attr-defined]
        started.append(proc.start())
        return proc

    yield start
    for proc in started:
        proc.stop()
