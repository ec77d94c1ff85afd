"""The fuzz tests' figures (executions, coverage, corpus size), printed at the end of the run."""

from __future__ import annotations

import pytest

FIGURES: list[str] = []


@pytest.fixture
def fuzz_figures() -> list[str]:
    """Append one summary line per scenario; they are printed after the test run."""
    return FIGURES


def pytest_terminal_summary(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("fuzzing")
        for line in FIGURES:
            terminalreporter.write_line(line)
