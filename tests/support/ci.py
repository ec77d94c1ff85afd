"""In CI (``CI=true``) a skipped test is a failure.

Tests that need root, network namespaces, a mount namespace, /etc/hosts or a Debian peer skip,
with the reason, on a machine that cannot run them. CI installs everything and runs as root, so
there a skip means coverage vanished unnoticed (a package missing from ``.ci/apt-packages.txt``,
a privilege lost, a test reshaped into skipping): this hook reports it as a failure, with the
skip's reason. It applies to every skip, however it was made (``pytest.skip``, ``skipif``,
``importorskip``), so no test has to remember to use a special helper. Expected failures
(``xfail``) are not skips and are left alone."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), where every test must run: {reason}"
    return None
