"""Hardening tests: hostile clients, faults, long runs. Each scenario prints its figures in a
summary section at the end of the run (``figures.py``; the hook is in ``tests/conftest.py``)."""

from __future__ import annotations

import resource

import pytest


@pytest.fixture(scope="session", autouse=True)
def many_open_files() -> None:
    """Thousands of client and backend sockets live in the test process: lift the soft
    open-files limit to the hard one (as Passthru does for itself)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
