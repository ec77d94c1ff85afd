"""Slow-loris: clients that trickle a byte a second and never finish identification must not
delay well-behaved clients; the caps on connections in identification hold and are logged."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

from tests.hardening.figures import figure
from tests.hardening.helpers import connection_lines, cpu_seconds, percentile, rss_kib, start_passthru, wait_lines
from tests.support.backends import TagServer
from tests.support.hello import client_hello
from tests.support.net import recv_all

SLOW_CLIENTS = 1500
SLOW_SOURCES = [f"127.0.0.{i}" for i in range(2, 17)]  # 15 addresses, 100 slow clients each
FAST_SOURCE = "127.0.0.200"
REQUESTS = 300
REQUEST = b"GET /ping HTTP/1.1\r\nHost: fast.example\r\nUser-Agent: hardening\r\n\r\n"

#: What the slow clients trickle, one byte at a time; none of these ever completes.
SCRIPTS = [
    b"GET /" + b"a" * 10_000,  # a request line without its end
    client_hello("slow.example")[:-1],  # a real ClientHello, but its last byte never comes
    b"SSH-2.0-" + b"x" * 200,  # a banner without its CRLF
]


def time_to_first_byte(port: int, count: int) -> list[float]:
    """``count`` sequential HTTP requests by Host: seconds from connect to the first reply byte."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(FAST_SOURCE, 0)) as sock:
            sock.sendall(REQUEST)
            first = sock.recv(1)
            times.append(time.perf_counter() - started)
            assert first == b"["
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"fast]" + REQUEST
    return times


class Trickle:
    """Sends the next byte of each slow client's script about once a second (bounded: stops
    after ``seconds`` or when told)."""

    def __init__(self, sockets: list[socket.socket], seconds: float) -> None:
        self.sockets = sockets
        self.seconds = seconds
        self.stop = threading.Event()
        self.sent = 0
        self.failed = 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        position = 1  # byte 0 was sent at connect
        while not self.stop.wait(1.0) and time.monotonic() < deadline:
            for index, sock in enumerate(self.sockets):
                script = SCRIPTS[index % len(SCRIPTS)]
                try:
                    sock.send(script[position : position + 1])
                    self.sent += 1
                except OSError:
                    self.failed += 1
            position += 1

    def __enter__(self) -> Trickle:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def still_open(sock: socket.socket) -> bool:
    """True when Passthru has neither closed nor reset the connection."""
    sock.setblocking(False)
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_slow_clients_do_not_delay_the_others(tmp_path: Path) -> None:
    with TagServer("fast") as fast:
        routes = f"routes:\n  - {{name: fast, match: {{protocol: http, host: fast.example}}, to: {fast.address}}}\n"
        proc = start_passthru(tmp_path, routes, identify="60s")
        try:
            pid = proc.process.pid
            time_to_first_byte(proc.port, 20)  # warm up (imports, first dial)
            baseline = time_to_first_byte(proc.port, REQUESTS)
            rss_before = rss_kib(pid)

            slow: list[socket.socket] = []
            try:
                for index in range(SLOW_CLIENTS):
                    sock = socket.create_connection(
                        ("127.0.0.1", proc.port), timeout=10, source_address=(SLOW_SOURCES[index % 15], 0)
                    )
                    slow.append(sock)
                    sock.send(SCRIPTS[index % len(SCRIPTS)][:1])
                with Trickle(slow, seconds=60) as trickle:
                    time.sleep(2.0)  # every slow client is in identification and has trickled
                    cpu_start = cpu_seconds(pid)
                    loaded = time_to_first_byte(proc.port, REQUESTS)
                    rss_loaded = rss_kib(pid)
                    time.sleep(max(0.0, 3.0 - sum(loaded)))  # at least 3 trickle rounds during the run
                    cpu_used = cpu_seconds(pid) - cpu_start
                    open_after = sum(still_open(sock) for sock in slow)
                trickled = trickle.sent
            finally:
                for sock in slow:
                    sock.close()
            logged_slow = wait_lines(
                proc, SLOW_CLIENTS, 20, where=lambda line: not line["client"].startswith(FAST_SOURCE)
            )
            log = proc.logs()
        finally:
            proc.stop()

    b50, b99 = percentile(baseline, 50) * 1000, percentile(baseline, 99) * 1000
    l50, l99 = percentile(loaded, 50) * 1000, percentile(loaded, 99) * 1000
    per_conn = (rss_loaded - rss_before) / SLOW_CLIENTS
    figure(
        "slow-loris",
        f"time to first byte over {REQUESTS} requests: alone p50={b50:.2f}ms p99={b99:.2f}ms; "
        f"with {SLOW_CLIENTS} slow clients from {len(SLOW_SOURCES)} addresses (1 B/s each, "
        f"{trickled} bytes trickled) p50={l50:.2f}ms p99={l99:.2f}ms; "
        f"RSS +{(rss_loaded - rss_before) / 1024:.1f}MiB ({per_conn:.1f}KiB per slow client), "
        f"CPU {cpu_used:.2f}s over {max(3.0, sum(loaded)):.1f}s",
    )
    assert open_after == SLOW_CLIENTS, "the slow clients stayed in identification during the measurement"
    ends = {line["end"] for line in logged_slow}
    assert ends <= {"rejected", "client_closed", "client_reset"}, ends
    assert l50 < max(5 * b50, 20), "slow clients delayed the median client"
    assert l99 < max(5 * b99, 100), "slow clients delayed the slowest clients"
    assert "Traceback" not in log


def test_identification_caps_per_source_and_in_total(tmp_path: Path) -> None:
    per_source, total = 20, 100
    with TagServer("ssh") as ssh:
        body = (
            f"limits: {{max_identifying_per_source: {per_source}, max_identifying: {total}}}\n"
            f"routes:\n  - {{name: ssh, match: {{protocol: ssh}}, to: {ssh.address}}}\n"
        )
        proc = start_passthru(tmp_path, body, identify="20s")
        try:
            time.sleep(0.3)  # the start-up probe's connection is over
            opened: list[tuple[str, socket.socket]] = []
            try:
                # Slow clients send the first byte of an SSH banner, then nothing. (Silent ones
                # would be held by the kernel: no route needs them, see TCP_DEFER_ACCEPT.)
                # One address: 50 connections, of which the cap holds 20.
                for _ in range(50):
                    sock = socket.create_connection(("127.0.0.1", proc.port), source_address=("127.0.0.50", 0))
                    sock.sendall(b"S")
                    opened.append(("127.0.0.50", sock))
                # 10 more addresses, 10 each (under the per-source cap): the total cap holds 80 more
                for source in (f"127.0.0.{i}" for i in range(51, 61)):
                    for _ in range(10):
                        sock = socket.create_connection(("127.0.0.1", proc.port), source_address=(source, 0))
                        sock.sendall(b"S")
                        opened.append((source, sock))
                time.sleep(0.5)
                started = time.monotonic()
                held = [(source, sock) for source, sock in opened if still_open(sock)]
                looked = time.monotonic() - started
                held_first_source = sum(1 for source, _ in held if source == "127.0.0.50")
                # a client from yet another address while the total cap is reached: closed at once
                with socket.create_connection(("127.0.0.1", proc.port), source_address=("127.0.0.70", 0)) as extra:
                    extra.sendall(b"S")
                    extra.settimeout(1)
                    with contextlib.suppress(ConnectionResetError):
                        assert extra.recv(1) == b""
            finally:
                for _, sock in opened:
                    sock.close()
            time.sleep(0.3)
            reply = b""
            with socket.create_connection(("127.0.0.1", proc.port), timeout=5, source_address=("127.0.0.50", 0)) as s:
                s.sendall(b"SSH-2.0-after\r\n")
                s.shutdown(socket.SHUT_WR)
                reply = recv_all(s)
            lines = wait_lines(proc, 1 + 150 + 1 + 1, 10)
            log = proc.logs()
        finally:
            proc.stop()
    ends = [line["end"] for line in connection_lines(log)]
    capped_source, capped_total = ends.count("limit_identifying_per_source"), ends.count("limit_identifying")
    figure(
        "identify caps",
        f"max_identifying_per_source={per_source}, max_identifying={total}: 50 from one address -> "
        f"{held_first_source} held, {capped_source} closed at once (end=limit_identifying_per_source); "
        f"+100 from 10 addresses -> {len(held) - held_first_source} held, {capped_total - 1} closed "
        f"(end=limit_identifying), +1 more closed; {len(lines)} log lines",
    )
    assert reply == b"[ssh]SSH-2.0-after\r\n", "served again once the slots freed"
    assert held_first_source == per_source
    assert len(held) == total
    assert capped_source == 50 - per_source
    assert capped_total == 100 - (total - per_source) + 1
    assert looked < 1
    assert "Traceback" not in log


def test_trickling_does_not_extend_the_identify_timeout(tmp_path: Path) -> None:
    """The identify timeout runs from the accept, not from the last byte: clients that keep
    trickling are decided on what they sent when it runs out (here: `default: reject`)."""
    with TagServer("fast") as fast:
        routes = f"routes:\n  - {{name: fast, match: {{protocol: http, host: fast.example}}, to: {fast.address}}}\n"
        proc = start_passthru(tmp_path, routes, identify="2s")
        try:
            time.sleep(0.3)
            slow = [socket.create_connection(("127.0.0.1", proc.port), timeout=10) for _ in range(30)]
            started = time.monotonic()
            closed_at: dict[int, float] = {}
            try:
                for sock in slow:
                    sock.setblocking(False)
                position = 0
                while len(closed_at) < len(slow) and time.monotonic() - started < 6:  # bounded
                    for index, sock in enumerate(slow):
                        if index in closed_at:
                            continue
                        script = SCRIPTS[index % len(SCRIPTS)]
                        try:
                            sock.send(script[position : position + 1])
                            if sock.recv(1) == b"":
                                closed_at[index] = time.monotonic() - started
                        except BlockingIOError:
                            pass
                        except OSError:
                            closed_at[index] = time.monotonic() - started
                    position += 1
                    time.sleep(0.25)  # 4 bytes a second each
            finally:
                for sock in slow:
                    sock.close()
            lines = wait_lines(proc, 1 + len(slow))
        finally:
            proc.stop()
    ends = {line["end"] for line in lines[1:]}
    figure(
        "identify timeout",
        f"{len(slow)} clients trickling 4 B/s, identify 2s: closed after {min(closed_at.values()):.2f}-"
        f"{max(closed_at.values()):.2f}s, ends {sorted(ends)}",
    )
    assert len(closed_at) == len(slow)
    assert min(closed_at.values()) > 1.9 and max(closed_at.values()) < 3.5
    assert ends == {"rejected"}
