"""``passthru run`` with ``admin:`` and ``workers: 2``: real connections through it, then a real
scrape. Counts are summed over both workers; ``/readyz`` follows start and drain; a SIGHUP is
counted per worker; ``--log-format json`` lines parse."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.observability.scrape import Scrape, get, scrape
from tests.support.backends import TagServer
from tests.support.net import exchange, free_port
from tests.support.passthru_process import PassthruProcess
from tests.support.waiting import PATIENCE

BANNER = b"SSH-2.0-x\r\n"
CONNECTIONS = 40


def wait_for(condition: Callable[[], object], what: str, timeout: float = PATIENCE) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OSError:  # not listening yet, or gone already
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def connection_lines(log: str) -> list[dict]:
    return [
        json.loads(line.split("passthru.connection: ", 1)[1])
        for line in log.splitlines()
        if "passthru.connection: " in line
    ]


def test_counts_from_two_workers_add_up(tmp_path: Path) -> None:
    port, admin_port, dead_port = free_port(), free_port(), free_port()
    admin_address = ("127.0.0.1", admin_port)
    with TagServer("ssh") as ssh:
        config = f"""listen: [127.0.0.1:{port}]
timeouts: {{identify: 1s, connect: 2s, idle: 30s}}
workers: 2
admin: 127.0.0.1:{admin_port}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {ssh.address}
  - name: dead
    match: {{protocol: http}}
    to: 127.0.0.1:{dead_port}
default: reject
"""
        proc = PassthruProcess(tmp_path, config, [("127.0.0.1", port)], ("--log-format", "json"))
        with proc:
            wait_for(lambda: get(admin_address, "/readyz")[0] == 200, "/readyz 200 after start")
            assert get(admin_address, "/healthz")[0] == 200
            # Ready as soon as one worker listens; the other follows within moments.
            wait_for(lambda: scrape(admin_address).value("passthru_serving_processes") == 2, "both workers serving")

            for _ in range(CONNECTIONS):
                assert exchange(port, BANNER) == b"[ssh]" + BANNER
            for _ in range(3):
                assert exchange(port, b"\x00\x01garbage\r\n") == b""
            assert exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == b""
            with socket.create_connection(("127.0.0.1", port)) as silent:
                silent.settimeout(5)
                assert silent.recv(1) == b"", "rejected after the identify timeout"

            ssh_closed = {"route": "ssh", "protocol": "ssh", "ended": "closed"}

            def settled() -> Scrape | None:
                view = scrape(admin_address)
                counted = (
                    view.value("passthru_connections_total", **ssh_closed),
                    view.value("passthru_connections_total", ended="rejected"),
                    view.value("passthru_connections_total", ended="upstream_unavailable"),
                )
                return view if counted == (CONNECTIONS, 4, 1) else None

            view = wait_for(settled, "every connection counted")
            assert isinstance(view, Scrape)
            assert view.value("passthru_bytes_total", route="ssh", direction="up") == CONNECTIONS * len(BANNER)
            assert view.value("passthru_bytes_total", route="ssh", direction="down") == CONNECTIONS * len(
                b"[ssh]" + BANNER
            )
            assert view.value("passthru_unmatched_total", protocol="unknown") == 3
            assert view.value("passthru_connections_total", route="none", ended="rejected") == 4
            assert view.value("passthru_identify_timeouts_total", prefix="empty") == 1
            failures = "passthru_upstream_connect_failures_total"
            assert view.value(failures, route="dead", backend=f"127.0.0.1:{dead_port}", reason="refused") == 1
            assert view.value("passthru_connections_total", route="dead", ended="upstream_unavailable") == 1
            assert view.value("passthru_identify_seconds_count") >= CONNECTIONS + 3 + 1
            assert view.value("passthru_connections_active") == 0
            served_by = {line["id"].split("-")[0] for line in connection_lines(proc.logs())}
            assert served_by == {"0", "1"}, "both workers served, so the totals above are sums"

            proc.process.send_signal(signal.SIGHUP)
            wait_for(lambda: scrape(admin_address).value("passthru_reloads_total", result="ok") == 2, "2 reloads")
            assert scrape(admin_address).value("passthru_config_last_reload_successful") == 1

            # Drain: a relaying connection keeps the workers alive for up to 5 s after SIGTERM;
            # meanwhile /readyz says 503 and /metrics still answers.
            held = socket.create_connection(("127.0.0.1", port))
            held.sendall(BANNER)
            assert held.recv(100).startswith(b"[ssh]")
            wait_for(lambda: scrape(admin_address).value("passthru_connections_active") == 1, "1 active")
            proc.process.send_signal(signal.SIGTERM)
            wait_for(lambda: get(admin_address, "/readyz")[0] == 503, "/readyz 503 while draining")
            assert get(admin_address, "/healthz")[0] == 200
            held.close()
        assert proc.process.returncode == 0
        with pytest.raises(OSError):
            get(admin_address, "/healthz")

    lines = connection_lines(proc.logs())
    assert {"id", "client", "route", "protocol", "bytes_up", "bytes_down", "ended"} <= set(lines[0])


def test_a_single_process_serves_its_own_admin_endpoint(tmp_path: Path) -> None:
    """``workers: 1``: no supervisor; the admin thread runs beside the gevent hub. A connection
    refused by a per-source limit is counted by the limit's name."""
    port, admin_port = free_port(), free_port()
    admin_address = ("127.0.0.1", admin_port)
    with TagServer("ssh") as ssh:
        config = f"""listen: [127.0.0.1:{port}]
admin: 127.0.0.1:{admin_port}
limits: {{max_connections_per_source: 1}}
routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: {ssh.address}
"""
        with PassthruProcess(tmp_path, config, [("127.0.0.1", port)]) as proc:
            wait_for(lambda: get(admin_address, "/readyz")[0] == 200, "/readyz 200 after start")
            for _ in range(5):
                assert exchange(port, BANNER) == b"[ssh]" + BANNER
            ssh_closed = {"route": "ssh", "protocol": "ssh", "ended": "closed"}
            wait_for(lambda: scrape(admin_address).value("passthru_connections_total", **ssh_closed) == 5, "5 counted")
            with socket.create_connection(("127.0.0.1", port)) as held:
                held.sendall(BANNER)
                assert held.recv(100).startswith(b"[ssh]")
                with socket.create_connection(("127.0.0.1", port)) as refused:  # over the limit
                    refused.settimeout(5)
                    assert refused.recv(100) == b"", "closed at once, sending nothing"
                view = wait_for(  # counted when refused, and again (by how it ended) once closed
                    lambda: (
                        (v := scrape(admin_address)).value("passthru_connections_total", ended="limit_per_source") and v
                    ),
                    "the refused connection counted",
                )
                assert isinstance(view, Scrape)
                assert view.value("passthru_limit_rejections_total", kind="limit_per_source") == 1
                assert view.value("passthru_connections_total", ended="limit_per_source") == 1
                assert view.value("passthru_connections_active") == 1
            assert scrape(admin_address).value("passthru_serving_processes") == 1
        assert proc.process.returncode == 0
