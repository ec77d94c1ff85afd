"""A short coverage-guided run of ``fuzz_identifiers.py`` (atheris/libFuzzer) in a subprocess: it
starts from the kept corpus and fails on any crash (an exception escaping an identifier, a broken
verdict contract, a call over the time bound). Long runs: see ``README.md`` beside this file.

New inputs go to a temporary directory, never into the kept corpus (``corpus/identifiers``), so
the run changes nothing in the tree.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FUZZER = HERE / "fuzz_identifiers.py"
CORPUS = HERE / "corpus" / "identifiers"
RUNS = 20000  # about 10-25 s at this machine's speed
MAX_SECONDS = 30  # whichever comes first


def test_short_fuzz_run(tmp_path: Path, fuzz_figures: list[str]) -> None:
    assert importlib.util.find_spec("atheris") is not None, "atheris is not installed (requirements-test.txt pins it)"
    new, artifacts = tmp_path / "new", tmp_path / "artifacts"
    new.mkdir()
    artifacts.mkdir()
    command = [
        sys.executable,
        str(FUZZER),
        f"-runs={RUNS}",
        f"-max_total_time={MAX_SECONDS}",
        "-timeout=20",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(new),
        str(CORPUS),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=MAX_SECONDS + 180, cwd=tmp_path)
    output = done.stdout + done.stderr
    crashes = sorted(artifacts.iterdir())
    if done.returncode != 0 or crashes:
        found = "\n".join(f"{c.name}: {c.read_bytes().hex()}" for c in crashes)
        pytest.fail(
            f"the fuzzer found a problem (exit {done.returncode}); replay it with "
            f"`python tests/fuzz/replay.py FILE` or add it to test_findings.py\n{found}\n{_tail(output)}"
        )
    executed = _stat(output, "number_of_executed_units")
    coverage = re.findall(r"cov: (\d+) ft: (\d+)", output)
    assert executed >= min(RUNS, 1000), _tail(output)
    assert coverage, f"no coverage reported: is passthru instrumented?\n{_tail(output)}"
    cov, ft = coverage[-1]
    assert int(cov) >= 500, f"only {cov} edges covered: is passthru instrumented?\n{_tail(output)}"
    fuzz_figures.append(
        f"fuzz short run: {executed} executions at {_stat(output, 'average_exec_per_sec')}/s, "
        f"coverage {cov} edges {ft} features, {len(list(new.iterdir()))} new inputs, 0 crashes"
    )


def _stat(output: str, name: str) -> int:
    found = re.search(rf"stat::{name}:\s+(\d+)", output)
    return int(found.group(1)) if found else 0


def _tail(output: str) -> str:
    """The end of libFuzzer's output, without atheris's one line per instrumented module."""
    return "\n".join(line for line in output.splitlines() if "Instrumenting" not in line)[-4000:]
