"""The figures the hardening tests measure, printed once at the end of the run (see conftest.py).

A test calls ``figure("soak", "2000 connections, ...")``; the line is kept for the terminal
summary (and echoed to the test's own output, visible with ``-s`` or on failure). Nothing is
written to a file.
"""

from __future__ import annotations

import pytest

FIGURES: list[tuple[str, str]] = []


def figure(scenario: str, text: str) -> None:
    FIGURES.append((scenario, text))
    print(f"[{scenario}] {text}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures of the run, one line per scenario in the order they ran (a pytest hook,
    registered by ``tests/conftest.py``)."""
    if not FIGURES:
        return
    terminalreporter.section("hardening figures")
    for scenario, text in FIGURES:
        terminalreporter.write_line(f"{scenario:<16} {text}")
