"""SIGTERM and SIGINT: Passthru stops accepting, lets open connections finish for up to the
drain time (5 s, README "Running it"), ends the ones still open then with ``end=shutdown`` in
their log line, and exits with code 0 by itself (``PassthruProcess.stop`` checks the exit code
and that the log holds no traceback)."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pytest

from passthru.server.service import DRAIN_SECONDS
from tests.hardening.helpers import wait_serving
from tests.support.backends import TagServer
from tests.support.net import exchange, expect, free_port, recv_all
from tests.support.passthru_process import PassthruProcess
from tests.support.slow_start import slow_start
from tests.support.waiting import wait_until

BANNER = b"SSH-2.0-shutdown\r\n"


def config(port: int, backend: str, workers: int, identify: str = "1s") -> str:
    return (
        f"listen: [127.0.0.1:{port}]\nworkers: {workers}\n"
        f"timeouts: {{identify: {identify}, connect: 2s, idle: 60s}}\n"
        f"routes:\n  - {{name: ssh, match: {{protocol: ssh}}, to: {backend}}}\n"
    )


def relayed(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(BANNER)
    expect(sock, b"[ssh]" + BANNER)
    return sock


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def connection_line(log: str, conn_end: str) -> list[str]:
    return [line for line in log.splitlines() if "passthru.connection:" in line and f"end={conn_end}" in line]


@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGTERM, 1), (signal.SIGINT, 2)], ids=["TERM", "INT-2"])
def test_the_drain_lets_connections_finish_then_ends_the_rest_with_end_shutdown(
    tmp_path: Path, sig: signal.Signals, workers: int
) -> None:
    port = free_port()
    with TagServer("ssh") as backend:
        proc = PassthruProcess(tmp_path, config(port, backend.address, workers), [("127.0.0.1", port)]).start()
        wait_serving(proc, workers)
        finishing, lingering = relayed(port), relayed(port)
        signalled = time.monotonic()
        proc.process.send_signal(sig)
        proc.wait_for_log(f"{sig.name} received: stopping")
        wait_until(lambda: refused(port))  # no new connection once the drain began
        # a connection open when the signal came still carries bytes both ways, and ends normally
        finishing.sendall(b"last words")
        finishing.shutdown(socket.SHUT_WR)
        assert recv_all(finishing) == b"last words"
        finishing.close()
        # one that stays open is ended at the drain deadline: the client sees the end of the stream
        lingering.settimeout(DRAIN_SECONDS + 30)
        assert recv_all(lingering) == b""
        ended_after = time.monotonic() - signalled
        lingering.close()
        assert proc.stop(sig) == 0  # exits by itself, with code 0 (and no traceback in the log)
    log = proc.logs()
    assert ended_after >= DRAIN_SECONDS - 0.5, f"ended {ended_after:.1f}s after {sig.name}, before the drain time"
    [closed] = connection_line(log, "closed")
    assert f"up={len(BANNER + b'last words')} down={len(b'[ssh]' + BANNER + b'last words')}" in closed
    [shutdown] = connection_line(log, "shutdown")
    assert f"up={len(BANNER)} down={len(b'[ssh]' + BANNER)}" in shutdown
    assert re.search(r"closing 1 connections still open after \d", log), log
    if workers > 1:
        assert "all workers stopped" in log


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_stops_an_idle_server_cleanly(tmp_path: Path, workers: int) -> None:
    """Ctrl-C on a foreground ``passthru run``: exit code 0, no traceback, no drain wait."""
    port = free_port()
    with TagServer("ssh") as backend:
        proc = PassthruProcess(tmp_path, config(port, backend.address, workers), [("127.0.0.1", port)]).start()
        wait_serving(proc, workers)
        assert exchange(port, BANNER) == b"[ssh]" + BANNER
        assert proc.stop(signal.SIGINT) == 0
    assert "SIGINT received: stopping" in proc.logs()


def test_a_connection_still_identifying_at_the_drain_deadline_ends_with_end_shutdown(tmp_path: Path) -> None:
    """Not only relays: a connection still waiting for enough bytes to be identified is ended at
    the drain deadline too, with its log line."""
    port = free_port()
    with TagServer("ssh") as backend:
        proc = PassthruProcess(tmp_path, config(port, backend.address, 1, identify="60s"), [("127.0.0.1", port)])
        proc.start()
        wait_serving(proc, 1)
        with socket.create_connection(("127.0.0.1", port), timeout=DRAIN_SECONDS + 30) as undecided:
            undecided.sendall(b"SSH-")  # could still be SSH: identification waits for more
            proc.wait_for_log("conn=0-1 ")  # the start-up probe's line: ours is the second
            proc.process.send_signal(signal.SIGTERM)
            assert recv_all(undecided) == b""
        assert proc.stop() == 0
    [shutdown] = connection_line(proc.logs(), "shutdown")
    assert "protocol=- route=- upstream=-" in shutdown, shutdown


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_stop_signal_during_start_up_is_a_clean_stop(tmp_path: Path, sig: signal.Signals) -> None:
    """The listeners are bound (so a client or an orchestrator may already see Passthru up) but
    start-up has not finished: a stop signal then must stop it cleanly, not kill it."""
    port = free_port()
    proc = PassthruProcess(tmp_path, config(port, "127.0.0.1:9", 1), [], launcher=slow_start("sync_listeners"))
    proc.start()
    proc.wait_for_log("paused")
    assert proc.stop(sig) == 0  # exit code 0, no traceback
    assert f"{sig.name} received: stopping" in proc.logs()
