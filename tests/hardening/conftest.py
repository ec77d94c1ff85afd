"""Hardening tests: hostile clients, faults, long runs. Each scenario prints its figures in a
summary section at the end of the run (one line per scenario, in the order they ran)."""

from __future__ import annotations

import resource

import pytest

from tests.hardening.figures import FIGURES


@pytest.fixture(scope="session", autouse=True)
def many_open_files() -> None:
    """Thousands of client and backend sockets live in the test process: lift the soft
    open-files limit to the hard one (as Passthru does for itself)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("hardening figures")
    for scenario, text in FIGURES:
        terminalreporter.write_line(f"{scenario:<16} {text}")
