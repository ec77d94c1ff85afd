"""Backend faults: refusing, resetting at once, closing without a byte, stalling, and never
completing the TCP handshake. Each is logged with the connection id and the reason, the client
is closed without a hang, a pool (``balance: first``) moves on to its good backend when nothing
was sent back yet, and the worker's sockets return to their baseline."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from tests.hardening.figures import figure
from tests.hardening.helpers import Sink, connection_lines, fd_kinds, start_passthru, wait_lines
from tests.observability.scrape import scrape
from tests.support.backends import Blackhole, TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import tracebacks

LINGER_RESET = struct.pack("ii", 1, 0)


class Faulty:
    """A listener that misbehaves once it accepts: ``reset`` (RST at once), ``later-reset`` (RST
    0.1 s later, reading nothing), ``read-reset`` (reads the request, then RST), ``close`` (FIN
    at once, nothing sent), ``stall`` (reads, never answers, keeps the socket), ``partial``
    (sends a few bytes, then RST)."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.accepted = 0
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.behaviour == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                conn.close()
            elif self.behaviour == "later-reset":
                time.sleep(0.1)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                conn.close()
            elif self.behaviour == "read-reset":
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                conn.close()
            elif self.behaviour == "close":
                conn.shutdown(socket.SHUT_WR)  # FIN first, whatever arrives after
                threading.Thread(target=self._drain_and_close, args=(conn,), daemon=True).start()
            elif self.behaviour == "partial":
                conn.sendall(b"[partial")
                time.sleep(0.2)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                conn.close()
            else:  # stall
                self.held.append(conn)

    @staticmethod
    def _drain_and_close(conn: socket.socket) -> None:
        conn.settimeout(2)
        with contextlib.suppress(OSError):
            recv_all(conn)
        conn.close()

    def __enter__(self) -> Faulty:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        for conn in self.held:
            conn.close()
        self.sock.close()


def client(port: int, software: str, wait_first: bool = False) -> tuple[bytes, str, float]:
    """An SSH-looking client routed by its software name: send, half-close, read to the end.
    ``wait_first``: read the first reply before half-closing (an SSH client waits for the
    server's banner), so the backend has not seen the client's end when it fails."""
    banner = f"SSH-2.0-{software}\r\n".encode()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(banner)
        got = b""
        if wait_first:
            try:
                got = sock.recv(65536)
            except ConnectionResetError:
                return got, "reset", time.monotonic() - started
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError as exc:  # reset before our half-close (a busy machine lets Passthru be first)
            if exc.errno != errno.ENOTCONN:
                raise
            return got, "reset", time.monotonic() - started
        try:
            while chunk := sock.recv(65536):
                got += chunk
            how = "eof"
        except ConnectionResetError:
            how = "reset"
    return got, how, time.monotonic() - started


FAULTS = ("refuse", "timeout", "reset", "close", "stall")


@pytest.fixture
def faulty_backends():
    refused_port = free_port()  # nothing listens there
    with (
        Faulty("reset") as reset,
        Faulty("read-reset") as read_reset,
        Faulty("close") as close,
        Faulty("stall") as stall,
        Faulty("partial") as partial,
        Blackhole() as blackhole,
        TagServer("good") as good,
    ):
        yield {
            "refuse": f"127.0.0.1:{refused_port}",
            "timeout": blackhole.address,
            "reset": reset.address,
            "read-reset": read_reset.address,
            "close": close.address,
            "stall": stall.address,
            "partial": partial.address,
            "good": good.address,
        }


def routes(backends: dict[str, str]) -> str:
    lines = ["routes:"]
    for fault in FAULTS:
        lines.append(f"  - {{name: {fault}, match: {{protocol: ssh, software: {fault}}}, to: {backends[fault]}}}")
    for fault in ("refuse", "timeout", "read-reset", "close", "partial"):
        lines.append(
            f"  - {{name: pool-{fault}, match: {{protocol: ssh, software: pool-{fault}}}, "
            f"to: [{backends[fault]}, {backends['good']}], balance: first}}"
        )
    return "\n".join(lines) + "\n"


def failure_counts(admin_port: int, prefix: str = "") -> dict[str, dict[str, float]]:
    """route -> reason -> count, from ``passthru_upstream_connect_failures_total``."""
    metrics = scrape(("127.0.0.1", admin_port))
    counts: dict[str, dict[str, float]] = {}
    for sample in metrics.samples:
        if sample.name == "passthru_upstream_connect_failures_total" and sample.labels["route"].startswith(prefix):
            counts.setdefault(sample.labels["route"], {})[sample.labels["reason"]] = sample.value
    return counts


def test_single_backend_faults(tmp_path: Path, faulty_backends) -> None:
    admin_port = free_port()
    body = routes(faulty_backends) + f"admin: 127.0.0.1:{admin_port}\n"
    proc = start_passthru(tmp_path, body, connect="500ms", idle="2s")
    try:
        pid = proc.process.pid
        time.sleep(0.3)
        sockets_before = fd_kinds(pid)["socket"]
        outcomes = {}
        threads = [
            threading.Thread(target=lambda f=fault: outcomes.__setitem__(f, client(proc.port, f))) for fault in FAULTS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        lines = {line["route"]: line for line in wait_lines(proc, 1 + len(FAULTS))}
        time.sleep(0.2)
        sockets_after = fd_kinds(pid)["socket"]
        failures = failure_counts(admin_port)
        log = proc.logs()
    finally:
        proc.stop()
    summary = "; ".join(
        f"{fault}: end={lines[fault]['end']}"
        + (f" ({lines[fault]['error']})" if lines[fault]["error"] else "")
        + f", client {outcomes[fault][1]} after {outcomes[fault][2]:.2f}s"
        for fault in FAULTS
    )
    figure(
        "backend faults",
        f"{summary}; passthru_upstream_connect_failures_total {failures}; worker sockets {sockets_before} -> "
        f"{sockets_after} (the admin listener included)",
    )
    assert failures.get("refuse") == {"refused": 1.0} and failures.get("timeout") == {"timeout": 1.0}, failures
    assert lines["refuse"]["end"] == "upstream_unavailable" and "refused" in lines["refuse"]["error"]
    assert lines["timeout"]["end"] == "upstream_unavailable" and "timed out" in lines["timeout"]["error"]
    assert lines["reset"]["end"] in ("upstream_reset", "upstream_unavailable")
    assert lines["close"]["end"] in ("closed", "upstream_unavailable")
    assert lines["stall"]["end"] == "idle_timeout"
    for fault in ("refuse", "timeout"):
        conn = lines[fault]["conn"]
        assert f"conn={conn} route={fault} no backend reachable" in log, "a warning names the connection"
    for fault in FAULTS:
        got, how, _ = outcomes[fault]
        assert got == b"", f"{fault}: the client got {got!r}"
        if fault != "reset":  # a backend's reset is passed on as a reset (README)
            assert how == "eof", f"{fault}: the client saw a {how}"
    assert outcomes["timeout"][2] < 2.0 and outcomes["stall"][2] < 4.0
    assert sockets_after == sockets_before
    assert tracebacks(log) == 0


def run_pool(tmp_path: Path, backends: dict[str, str], faults: tuple[str, ...], wait_first: bool = False):
    admin_port = free_port()
    body = routes(backends) + f"admin: 127.0.0.1:{admin_port}\n"
    proc = start_passthru(tmp_path, body, connect="500ms", idle="2s")
    try:
        pid = proc.process.pid
        time.sleep(0.3)
        sockets_before = fd_kinds(pid)["socket"]
        outcomes = {fault: client(proc.port, f"pool-{fault}", wait_first) for fault in faults}
        lines = {line["route"]: line for line in wait_lines(proc, 1 + len(faults))}
        time.sleep(0.2)
        sockets_after = fd_kinds(pid)["socket"]
        failures = failure_counts(admin_port, "pool-")
        log = proc.logs()
    finally:
        proc.stop()
    return outcomes, lines, sockets_before, sockets_after, log, failures


def test_pool_moves_on_when_the_connect_fails(tmp_path: Path, faulty_backends) -> None:
    faults = ("refuse", "timeout")
    outcomes, lines, before, after, log, failures = run_pool(tmp_path, faulty_backends, faults)
    figure(
        "pool connect",
        "; ".join(
            f"[{fault}, good]: client got {outcomes[fault][0][:6].decode()!r}.. after {outcomes[fault][2]:.2f}s, "
            f"end={lines[f'pool-{fault}']['end']} upstream={lines[f'pool-{fault}']['upstream']}"
            for fault in faults
        )
        + f"; failures counted {failures}; worker sockets {before} -> {after}",
    )
    assert failures == {"pool-refuse": {"refused": 1.0}, "pool-timeout": {"timeout": 1.0}}, failures
    for fault in faults:
        banner = f"SSH-2.0-pool-{fault}\r\n".encode()
        assert outcomes[fault][:2] == (b"[good]" + banner, "eof"), "the client notices nothing"
        assert lines[f"pool-{fault}"]["upstream"] == faulty_backends["good"]
        assert lines[f"pool-{fault}"]["end"] == "closed"
    assert after == before
    assert tracebacks(log) == 0


def test_pool_moves_on_when_the_backend_fails_before_answering(tmp_path: Path, faulty_backends) -> None:
    """Accepted, then reset or closed before sending a byte: the client has seen nothing, so the
    connection can still go to the next backend (early-failure retry). The reset comes after the
    backend read the prefix (a reset racing Passthru's first write is the next test)."""
    faults = ("read-reset", "close", "partial")
    outcomes, lines, before, after, log, failures = run_pool(tmp_path, faulty_backends, faults, wait_first=True)
    figure(
        "pool early fail",
        "; ".join(
            f"[{fault}, good]: client got {outcomes[fault][0][:8]!r}.. ({outcomes[fault][1]}), "
            f"end={lines[f'pool-{fault}']['end']} upstream={lines[f'pool-{fault}']['upstream']}"
            for fault in faults
        )
        + f"; failures counted {failures}; worker sockets {before} -> {after}",
    )
    assert failures["pool-read-reset"] == {"reset": 1.0}, failures
    assert sum(failures["pool-close"].values()) == 1, failures
    assert "pool-partial" not in failures, failures
    # bytes came back before the reset: too late to move on, the client sees the reset
    assert outcomes["partial"][0] == b"[partial" and outcomes["partial"][1] == "reset"
    assert lines["pool-partial"]["end"] == "upstream_reset"
    assert after == before
    assert tracebacks(log) == 0
    for fault in ("read-reset", "close"):
        banner = f"SSH-2.0-pool-{fault}\r\n".encode()
        assert outcomes[fault][:2] == (b"[good]" + banner, "eof"), f"{fault}: {outcomes[fault]}"
        assert lines[f"pool-{fault}"]["upstream"] == faulty_backends["good"]


def test_log_lines_carry_the_connection_id(tmp_path: Path, faulty_backends) -> None:
    """Every fault's line and warning name the same ``conn=W-N``."""
    proc = start_passthru(tmp_path, routes(faulty_backends), connect="500ms", idle="2s")
    try:
        client(proc.port, "refuse")
        lines = wait_lines(proc, 2)
        log = proc.logs()
    finally:
        proc.stop()
    ids = [line["conn"] for line in connection_lines(log)]
    assert len(ids) == len(set(ids)) == len(lines)
    assert f"conn={lines[-1]['conn']} route=refuse no backend reachable: {faulty_backends['refuse']}" in log


def test_pool_moves_on_when_the_backend_resets_before_taking_the_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backend resets after the handshake, before Passthru writes the prefix (on a busy hub
    the greenlet resumes after the RST arrived; injected here: the backend resets 0.1 s after
    accepting, Passthru's connect returns 0.4 s late, see inject/sitecustomize.py). Nothing was
    sent back, so the next backend must get the client."""
    admin_port = free_port()
    message = b"SSH-2.0-race\r\n"
    with Faulty("later-reset") as bad, TagServer("good") as good:
        monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent / "inject"))
        monkeypatch.setenv("PASSTHRU_TEST_CONNECT_DELAY", f"{bad.port}:0.4")
        body = (
            f"routes:\n  - {{name: race, match: {{protocol: ssh}}, to: [{bad.address}, {good.address}], "
            f"balance: first}}\nadmin: 127.0.0.1:{admin_port}\n"
        )
        proc = start_passthru(tmp_path, body)
        try:
            reply, how, _ = client(proc.port, "race")
            line = wait_lines(proc, 2)[-1]
            failures = failure_counts(admin_port)
        finally:
            proc.stop()
    figure(
        "pool reset race",
        f"backend RST between Passthru's connect and its first write: client got {reply[:6]!r}.. ({how}), "
        f"end={line['end']} error={line['error']} upstream={'good' if line['upstream'] == good.address else 'bad'}; "
        f"failures counted {failures}",
    )
    assert bad.accepted == 1
    assert (reply, how) == (b"[good]" + message, "eof")
    assert failures == {"race": {"reset": 1.0}}


def test_pool_does_not_replay_a_complete_request(tmp_path: Path) -> None:
    """A one-way client: its whole message is in the prefix, then it half-closes. The first
    backend reads it all and closes without answering — a normal end, not a failure. The message
    must be delivered once, and that backend must stay up."""
    message = b"SSH-2.0-oneway\r\n"
    with Sink() as first, Sink() as second:
        route = f"  - {{name: logs, match: {{protocol: ssh}}, to: [{first.address}, {second.address}], balance: first}}"
        proc = start_passthru(tmp_path, f"routes:\n{route}\n")
        try:
            reply, how, _ = client(proc.port, "oneway")
            line = wait_lines(proc, 2)[-1]
            time.sleep(0.3)
            log = proc.logs()
        finally:
            proc.stop()
    delivered = first.received + second.received
    figure(
        "pool one-way",
        f"complete request then FIN, first backend closes without answering: delivered {len(delivered)} time(s), "
        f"end={line['end']} upstream={'first' if line['upstream'] == first.address else 'second'}, first backend "
        f"{'marked DOWN' if 'is DOWN' in log else 'still up'}",
    )
    assert (reply, how) == (b"", "eof")
    assert delivered == [message], f"delivered {len(delivered)} times"
    assert "is DOWN" not in log
