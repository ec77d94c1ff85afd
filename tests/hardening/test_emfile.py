"""EMFILE: Passthru under ``prlimit --nofile=64:64``. At the limit the accept loop backs off (no
busy loop), connections already relaying keep working, and once fds free up new clients
(including those that waited in the kernel's backlog) are served again."""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.hardening.figures import figure
from tests.hardening.helpers import connection_lines, cpu_seconds, fd_count, fd_kinds, wait_lines
from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess, tracebacks

LIMIT = 64
BANNER = b"SSH-2.0-emfile\r\n"


def open_relayed(port: int) -> tuple[socket.socket, str]:
    """Connect and send a banner: ``served`` (the tag came back), ``refused`` (closed without a
    byte) or ``waiting`` (no answer within 1 s: not accepted)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(BANNER)
    sock.settimeout(1.0)
    try:
        first = sock.recv(5)
    except TimeoutError:
        return sock, "waiting"
    except ConnectionResetError:
        return sock, "refused"
    return sock, "served" if first == b"[ssh]" else "refused"


def echo_works(sock: socket.socket, first: bytes = b"", size: int = 256 * 1024) -> bool:
    """A relayed connection still carries bytes both ways (the backend echoes; ``first``: an
    earlier echo still to come before ours)."""
    payload = bytes(range(256)) * (size // 256)
    sock.settimeout(10)
    sock.sendall(payload)
    got = b""
    while len(got) < len(first) + size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got == first + payload


class AtTheLimit:
    """Passthru (one process) under ``prlimit --nofile=64:64`` relaying to an echo backend: one
    connection relayed and used before the limit (``first``), then connections opened until one
    is left waiting in the backlog (``opened``: socket and state)."""

    def __init__(self, tmp_path: Path) -> None:
        prlimit = shutil.which("prlimit")
        if prlimit is None:
            pytest.skip("prlimit (util-linux) is not installed")
        self.port = free_port()
        self.backend = TagServer("ssh").__enter__()
        config = (
            f"listen: [127.0.0.1:{self.port}]\ntimeouts: {{identify: 5s, connect: 2s, idle: 60s}}\n"
            f"routes:\n  - {{name: ssh, match: {{protocol: ssh}}, to: {self.backend.address}}}\n"
        )
        self.proc = PassthruProcess(
            tmp_path, config, [("127.0.0.1", self.port)], wrapper=(prlimit, f"--nofile={LIMIT}:{LIMIT}", "--")
        )
        self.opened: list[tuple[socket.socket, str]] = []
        self.first: socket.socket | None = None

    def __enter__(self) -> AtTheLimit:
        self.proc.start()
        self.pid = self.proc.process.pid
        self.first, state = open_relayed(self.port)
        assert state == "served"
        assert echo_works(self.first, BANNER), "a relayed connection before the limit"
        self.fds_idle = fd_count(self.pid)
        for _ in range(LIMIT):  # bounded: the limit cannot admit more than this
            sock, state = open_relayed(self.port)
            self.opened.append((sock, state))
            if state == "waiting":
                break
        self.states = [state for _, state in self.opened]
        assert self.states[-1] == "waiting", f"never reached the limit: {self.states}"
        self.fds_full = fd_count(self.pid)
        return self

    @property
    def served(self) -> list[socket.socket]:
        return [sock for sock, state in self.opened if state == "served"]

    def __exit__(self, *exc: object) -> None:
        for sock in [self.first, *(sock for sock, _ in self.opened)]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        wait_lines(self.proc, 2 + len(self.opened), 5)
        self.proc.stop()
        self.backend.__exit__()


def test_at_the_open_files_limit(tmp_path: Path) -> None:
    with AtTheLimit(tmp_path) as limit:
        proc, pid, states = limit.proc, limit.pid, limit.states
        # at the limit: not spinning
        cpu_before, log_before = cpu_seconds(pid), len(proc.logs())
        time.sleep(2.0)
        cpu_at_limit = cpu_seconds(pid) - cpu_before
        log_growth = len(proc.logs()) - log_before
        tracebacks_at_limit = tracebacks(proc.logs()[log_before:])
        still_relaying = echo_works(limit.first)
        # free some fds: the waiting client is accepted by itself, and new ones are served
        for sock in limit.served[:5]:
            sock.shutdown(socket.SHUT_WR)
            recv_all(sock)
            sock.close()
        waiting = limit.opened[-1][0]
        waiting.settimeout(5)
        started = time.monotonic()
        recovered = waiting.recv(5)
        recovered_after = time.monotonic() - started
        after, after_state = open_relayed(limit.port)
        limit.opened.append((after, after_state))
    log = proc.logs()
    lines = connection_lines(log)
    ends = [line["end"] for line in lines]
    errors = {line["error"] for line in lines if line["error"]}
    figure(
        "emfile",
        f"nofile={LIMIT}: {states.count('served')} relayed (+1 before), {states.count('refused')} closed at dial "
        f"{sorted(errors)}, then accept failed at {limit.fds_full} fds (idle {limit.fds_idle}); "
        f"CPU {cpu_at_limit:.2f}s over 2s at the limit, log +{log_growth} bytes ({tracebacks_at_limit} "
        f"tracebacks) in 2s; existing relay {'works' if still_relaying else 'BROKEN'}; after closing 5, "
        f"the client waiting in the backlog was served in {recovered_after:.2f}s and a new one was {after_state}",
    )
    assert cpu_at_limit < 0.3, f"busy loop at EMFILE: {cpu_at_limit:.2f}s of CPU in 2s"
    assert still_relaying, "a connection relaying before the limit still works"
    assert recovered == b"[ssh]", "the client that waited in the backlog is served once fds free up"
    assert after_state == "served"
    assert "end=error" not in log
    assert tracebacks(log) == 0, f"no traceback at the open-files limit (README), got:\n{log}"
    # the rest were closed by the test with unread bytes (client_reset) or had their dial refused
    assert set(ends) <= {"client_closed", "closed", "client_reset", "upstream_unavailable"}, set(ends)


@pytest.mark.parametrize(
    "relay",
    [
        "splice",
        "copy",
    ],
)
def test_busy_relays_at_the_open_files_limit(tmp_path: Path, relay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the limit, ten relayed connections push 4 MiB each to the echo backend while their
    clients do not read yet: their relays hold bytes in flight. Then the clients read: every
    byte must come back. (On the splice path each direction with bytes in flight holds a pipe:
    two more fds, which the limit may not have.)"""
    monkeypatch.setenv("PASSTHRU_RELAY", relay)
    size = 4 << 20
    with AtTheLimit(tmp_path) as limit:
        busy = limit.served[:10]
        for sock in busy:
            sock.settimeout(10)
            assert sock.recv(len(BANNER)) == BANNER
        pushers = [threading.Thread(target=push, args=(sock, size), daemon=True) for sock in busy]
        for thread in pushers:
            thread.start()
        time.sleep(1.5)  # every buffer on the way fills up
        pipes_in_flight = fd_kinds(limit.pid)["pipe"]
        results: list[str] = []
        readers = [threading.Thread(target=read_back, args=(sock, size, results)) for sock in busy]
        for thread in readers:
            thread.start()
        for thread in readers + pushers:
            thread.join(timeout=30)
    lines = [line for line in connection_lines(limit.proc.logs()) if int(line["up"]) > len(BANNER)]  # the busy ones
    broken = [f"{line['conn']} {line['end']}" for line in lines if line["end"] in ("client_reset", "upstream_reset")]
    figure(
        f"emfile {relay}",
        f"10 relays moving 4 MiB each at nofile={LIMIT} ({pipes_in_flight} pipe fds in flight): "
        f"{results.count('ok')} intact, {len(results) - results.count('ok')} broken {sorted(set(results) - {'ok'})}; "
        f"logged as {broken[:4]}",
    )
    assert results == ["ok"] * len(busy), "connections relaying at the open-files limit were cut"


def push(sock: socket.socket, size: int) -> None:
    with contextlib.suppress(OSError):
        sock.sendall(bytes(size))


def read_back(sock: socket.socket, size: int, results: list[str]) -> None:
    got = 0
    try:
        while got < size:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        results.append("ok" if got == size else "EOF early")
    except OSError as exc:
        results.append(type(exc).__name__)
