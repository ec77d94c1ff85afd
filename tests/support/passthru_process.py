"""Run ``passthru run`` as a real subprocess on a config written for the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.net import wait_listening

REPO = Path(__file__).resolve().parents[2]


def passthru_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "passthru.cli", *args]


def run_cli(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess:
    return subprocess.run(
        passthru_command(*args), input=stdin, capture_output=True, cwd=cwd or REPO, timeout=timeout, check=False
    )


class PassthruProcess:
    """``passthru run -c <dir>/config.yaml`` with its stderr captured to ``<dir>/passthru.log``."""

    def __init__(
        self,
        directory: Path,
        config_text: str,
        listen: list[tuple[str, int]],
        extra_args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.config_path = directory / "config.yaml"
        self.config_path.write_text(config_text)
        self.log_path = directory / "passthru.log"
        self.listen = listen
        self.extra_args = extra_args
        self.wrapper = wrapper  # e.g. ("prlimit", "--nofile=64:64", "--"): it must exec Passthru
        self.process: subprocess.Popen | None = None

    def start(self) -> PassthruProcess:
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [*self.wrapper, *passthru_command("run", "-c", str(self.config_path), *self.extra_args)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
            env=env,
        )
        try:
            for host, port in self.listen:
                wait_listening(host, port)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"passthru did not start:\n{self.logs()}") from None
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> str:
        """Wait until ``needle`` appears in the log (the per-connection line comes at close)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.logs()
            if needle in text:
                return text
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in passthru log:\n{self.logs()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> PassthruProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
