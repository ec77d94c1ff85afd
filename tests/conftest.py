"""Shared fixtures: start Passthru on a generated config, with real backends on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from passthru.plugins.timelimit import TIME_LIMIT
from tests.hardening.figures import pytest_terminal_summary  # noqa: F401  (a hook: the figures at the end)
from tests.support.ci import pytest_runtest_makereport  # noqa: F401  (a hook: in CI a skip fails)
from tests.support.net import free_port
from tests.support.passthru_process import PassthruProcess


@pytest.fixture(params=["splice", "copy"])
def relay_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test against both relay paths (``os.splice`` and the portable copy)."""
    monkeypatch.setenv("PASSTHRU_RELAY", request.param)
    return request.param


@pytest.fixture
def passthru(tmp_path: Path) -> Iterator[Callable[..., PassthruProcess]]:
    """``passthru(body)`` starts Passthru listening on a fresh port with ``body`` as the rest of
    the config; the listen port is ``proc.port``. Stopped at the end of the test."""
    started: list[PassthruProcess] = []

    def start(
        body: str,
        *,
        extra_args: tuple[str, ...] = (),
        identify_timeout: str = "1s",
        idle_timeout: str = "30s",
        connect_timeout: str = "2s",
    ) -> PassthruProcess:
        port = free_port()
        timeouts = f"timeouts:\n  identify: {identify_timeout}\n  connect: {connect_timeout}\n  idle: {idle_timeout}\n"
        text = f"listen:\n  - 127.0.0.1:{port}\n{timeouts}{body}"
        proc = PassthruProcess(tmp_path, text, [("127.0.0.1", port)], extra_args)
        proc.port = port  # type: ignore[attr-defined]
        started.append(proc.start())
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(autouse=True)
def _sigalrm_given_back():
    """The process's time limit for user identifiers keeps SIGALRM for a second after the last
    call: give it back after each test, so that no test starts with another's timer ticking."""
    yield
    TIME_LIMIT.disarm()
