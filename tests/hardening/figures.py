"""The figures the hardening tests measure, printed once at the end of the run (see conftest.py).

A test calls ``figure("soak", "2000 connections, ...")``; the line is kept for the terminal
summary (and echoed to the test's own output, visible with ``-s`` or on failure). Nothing is
written to a file.
"""

from __future__ import annotations

FIGURES: list[tuple[str, str]] = []


def figure(scenario: str, text: str) -> None:
    FIGURES.append((scenario, text))
    print(f"[{scenario}] {text}")
