"""Run ``passthru run`` as a real subprocess on a config written for the test.

Stopping it checks what a test cannot see from its sockets: that the process exits by itself on
SIGTERM or SIGINT with code 0 (a hang or a crash at shutdown fails the test; it is killed only
to clean up), and that its log holds no Python traceback (the README promises none)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.net import wait_listening
from tests.support.waiting import PATIENCE, wait_until

REPO = Path(__file__).resolve().parents[2]


LAUNCHER = (sys.executable, "-m", "passthru.cli")


def passthru_command(*args: str) -> list[str]:
    return [*LAUNCHER, *args]


def run_cli(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess:
    return subprocess.run(
        passthru_command(*args), input=stdin, capture_output=True, cwd=cwd or REPO, timeout=timeout, check=False
    )


#: How long a stop signal may take: the drain (5 s) plus a margin for a busy machine.
STOP_SECONDS = 30.0
TRACEBACK = "Traceback (most recent call last)"


def tracebacks(log: str) -> int:
    return log.count(TRACEBACK)


class PassthruProcess:
    """``passthru run -c <dir>/config.yaml`` with its stderr captured to ``<dir>/passthru.log``.

    ``allowed_tracebacks``: how many tracebacks the log may hold (a test that provokes one on
    purpose says so); every other test's log must hold none."""

    def __init__(
        self,
        directory: Path,
        config_text: str,
        listen: list[tuple[str, int]],
        extra_args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
        allowed_tracebacks: int = 0,
        env: dict[str, str] | None = None,
        launcher: tuple[str, ...] = LAUNCHER,
    ) -> None:
        self.directory = directory
        self.config_path = directory / "config.yaml"
        self.config_path.write_text(config_text)
        self.log_path = directory / "passthru.log"
        self.listen = listen
        self.extra_args = extra_args
        self.wrapper = wrapper  # e.g. ("prlimit", "--nofile=64:64", "--"): it must exec Passthru
        self.env = env or {}  # added to this process's environment
        self.launcher = launcher  # what runs `passthru` (tests.support.slow_start: with a pause)
        self.allowed_tracebacks = allowed_tracebacks
        self.process: subprocess.Popen | None = None
        self.stopped_with: str | None = None  # the first stop's outcome, checked once

    def start(self) -> PassthruProcess:
        """Start (or start again, after ``stop``: the new process is stopped and judged anew,
        so a restarted process is never left running after its test)."""
        self.stopped_with = None
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.process = subprocess.Popen(
            [*self.wrapper, *self.launcher, "run", "-c", str(self.config_path), *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=env,
        )
        try:
            for host, port in self.listen:
                wait_listening(host, port, timeout=PATIENCE)
        except TimeoutError:
            self.terminate()
            raise AssertionError(f"passthru did not start:\n{self.logs()}") from None
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = PATIENCE) -> str:
        """Wait until ``needle`` appears in the log (the per-connection line comes at close)."""
        try:
            wait_until(lambda: needle in self.logs(), timeout)
        except AssertionError:
            raise AssertionError(f"{needle!r} not in passthru log after {timeout} s:\n{self.logs()}") from None
        return self.logs()

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> str:
        """Send ``sig`` and wait for the exit; kill it if it does not exit in ``timeout``. What
        happened, as a sentence: "exited with code 0" is the only clean outcome."""
        assert self.process is not None
        if self.process.poll() is None:  # else the test stopped it already: its exit is judged the same
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                return f"did not exit within {timeout:.0f} s of {signal.Signals(sig).name} (killed)"
        code = self.process.returncode
        return f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_SECONDS) -> int:
        """Stop it with ``sig`` and check the shutdown: exit code 0 without being killed, and no
        traceback in the log. Later calls only return the exit code."""
        assert self.process is not None
        if self.stopped_with is None:
            self.stopped_with = self.terminate(sig, timeout)
            log = self.logs()
            assert self.stopped_with == "exited with code 0", f"passthru {self.stopped_with}; log:\n{log[-4000:]}"
            found = tracebacks(log)
            assert found <= self.allowed_tracebacks, (
                f"{found} traceback(s) in the passthru log (allowed {self.allowed_tracebacks}):\n{log[-8000:]}"
            )
        return self.process.returncode

    def __enter__(self) -> PassthruProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
