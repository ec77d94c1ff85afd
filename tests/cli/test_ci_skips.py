"""The CI rule of tests/support/ci.py, checked on a throw-away test file run by pytest itself."""

from __future__ import annotations

import pytest

SAMPLE = """
import pytest

def test_needs_root():
    pytest.skip("needs root")

@pytest.mark.skipif(True, reason="no namespaces here")
def test_marked():
    pass

@pytest.mark.xfail(strict=True, reason="a known bug")
def test_known_bug():
    assert False

def test_runs():
    pass
"""

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("ci", ["true", ""])
def test_a_skip_fails_in_ci_and_only_there(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest("from tests.support.ci import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_inprocess("-rA")
    if ci:
        result.assert_outcomes(passed=1, failed=1, errors=1, xfailed=1)
        result.stdout.fnmatch_lines(["*skipped in CI (CI=true), where every test must run: *needs root*"])
        result.stdout.fnmatch_lines(["*skipped in CI (CI=true), where every test must run: *no namespaces here*"])
    else:
        result.assert_outcomes(passed=1, skipped=2, xfailed=1)
