"""``passthru run`` under a ``Type=notify`` service manager: a real AF_UNIX datagram socket as
``$NOTIFY_SOCKET`` receives READY=1 once every listener is bound, RELOADING=1/READY=1 around a
SIGHUP reload, and STOPPING=1 on SIGTERM, in that order (one process, and a supervisor with two
workers, whose messages it folds into the same sequence)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from passthru.server.notify import Aggregator
from tests.support.net import free_port
from tests.support.passthru_process import PassthruProcess

CONFIG = """\
listen: [127.0.0.1:{port}]
workers: {workers}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: 127.0.0.1:{backend}
"""


class NotifySocket:
    """What systemd does: a bound datagram socket; each message is a set of KEY=VALUE lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))

    def next(self, timeout: float = 15.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines() if line)

    def nothing_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def states(message: dict[str, str]) -> set[str]:
    return {key for key in ("READY", "RELOADING", "STOPPING") if message.get(key) == "1"}


@pytest.mark.parametrize("workers", [1, 2])
def test_notifications_arrive_in_order(tmp_path: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = NotifySocket(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    port = free_port()
    proc = PassthruProcess(tmp_path, CONFIG.format(port=port, workers=workers, backend=free_port()), [])
    try:
        proc.start()
        ready = listener.next()
        assert states(ready) == {"READY"}
        # READY=1 means bound: connecting must work now, with no waiting
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert listener.nothing_within(1.0), "READY=1 must be sent once, not once per worker"

        assert proc.process is not None
        proc.process.send_signal(signal.SIGHUP)
        reloading = listener.next()
        assert states(reloading) == {"RELOADING"}
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert states(listener.next()) == {"READY"}
        proc.wait_for_log("reloaded")
        assert listener.nothing_within(0.5)

        proc.process.send_signal(signal.SIGTERM)
        assert states(listener.next()) == {"STOPPING"}
        assert proc.process.wait(timeout=15) == 0
    finally:
        proc.stop()
        listener.close()


def test_abstract_socket_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``@name`` is Linux's abstract namespace, as systemd may hand out."""
    name = f"passthru-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        code = "from passthru.server.notify import notify; import sys; sys.exit(0 if notify('READY=1') else 1)"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
        sock.settimeout(5)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_without_notify_socket_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from passthru.server.notify import notify

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_aggregator_folds_workers() -> None:
    sent: list[str] = []
    agg = Aggregator(2, sent.append)
    agg.received(11, {"READY=1"})
    assert sent == []  # one of two workers is not ready
    agg.received(12, {"READY=1"})
    assert sent == ["READY=1"]
    agg.received(11, {"RELOADING=1"})
    agg.received(12, {"RELOADING=1"})
    agg.received(11, {"READY=1"})
    assert sent == ["READY=1", "RELOADING=1"]  # worker 12 is still reloading
    agg.exited(12)  # ... and died: the round is over
    assert sent == ["READY=1", "RELOADING=1", "READY=1"]
    agg.received(13, {"READY=1"})  # the restarted worker: no second start-up READY
    agg.stopping()
    agg.received(13, {"RELOADING=1"})
    assert sent == ["READY=1", "RELOADING=1", "READY=1", "STOPPING=1"]
