"""The multiprocess directory: one set of mmap files per process, summed when scraped.

prometheus-client's multiprocess mode lets N forked workers each write their own files while
one reader adds them up. This module owns that directory's life: create a fresh one (stale
files from an earlier run would be summed too), point ``PROMETHEUS_MULTIPROC_DIR`` at it before
any worker is forked, forget a dead worker's live gauges, read the totals, and delete it at exit.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess, values

ENV = "PROMETHEUS_MULTIPROC_DIR"
#: ``status-<pid>.json``: what each serving process publishes for ``/status.json`` (admin/worker_state.py).
STATUS_PREFIX = "status-"


def status_file(directory: Path, pid: int) -> Path:
    return directory / f"{STATUS_PREFIX}{pid}.json"


#: A worker that just started may have created its metric file but not yet sized it; the
#: reader then fails with struct.error (a 500 on /metrics). Read again after a moment.
READ_ATTEMPTS = 5
READ_RETRY_SECONDS = 0.02


class RetryingCollector:
    """prometheus-client's MultiProcessCollector, read again when a file is being created."""

    def __init__(self, path: Path) -> None:
        self.collector = multiprocess.MultiProcessCollector(None, path=str(path))

    def collect(self) -> list:
        for _ in range(READ_ATTEMPTS - 1):
            try:
                return list(self.collector.collect())
            except struct.error:
                time.sleep(READ_RETRY_SECONDS)
        return list(self.collector.collect())


class MultiprocessDirectory:
    """A fresh directory, enabled for prometheus-client in this process and its forked children."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self.path = Path(tempfile.mkdtemp(prefix="passthru-metrics-"))
            self.owned = True
        else:
            self.path = Path(path)
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in [*self.path.glob("*.db"), *self.path.glob(f"{STATUS_PREFIX}*.json")]:
                stale.unlink()
            self.owned = False
        self._previous_env = os.environ.get(ENV)
        self._previous_value_class = values.ValueClass
        os.environ[ENV] = str(self.path)
        # prometheus-client picks its value class when it is first imported; Passthru may have
        # been imported before this directory existed, so switch it explicitly (fork-safe: a
        # child notices its new pid and opens its own files).
        values.ValueClass = values.MultiProcessValue()

    def registry(self) -> CollectorRegistry:
        """A registry that, when collected, sums every process's files."""
        registry = CollectorRegistry()
        registry.register(RetryingCollector(self.path))
        return registry

    def gauge_total(self, name: str) -> float:
        """The aggregated value of one unlabelled gauge (0 when no process has written it)."""
        for family in RetryingCollector(self.path).collect():
            if family.name == name:
                return sum(sample.value for sample in family.samples)
        return 0.0

    def process_exited(self, pid: int) -> None:
        """Drop a dead process's live gauges and status file; its counters stay, so totals never go back."""
        multiprocess.mark_process_dead(pid, path=str(self.path))
        status_file(self.path, pid).unlink(missing_ok=True)

    def close(self) -> None:
        """Close this process's files, restore the environment and delete a directory we made."""
        close_files = getattr(values, "close_all_multiprocess_files", None)  # not in older releases
        if close_files is not None:
            close_files()
        values.ValueClass = self._previous_value_class
        if self._previous_env is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = self._previous_env
        if self.owned:
            shutil.rmtree(self.path, ignore_errors=True)
