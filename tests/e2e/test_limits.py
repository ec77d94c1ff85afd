"""Connection limits: what happens at each one, on real sockets."""

from __future__ import annotations

import errno
import re
import socket
import time

from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess
from tests.support.slow_start import slow_start

BANNER = b"SSH-2.0-limits\r\n"


def ssh_routes(address: str) -> str:
    return f"routes:\n  - name: ssh\n    match: {{protocol: ssh}}\n    to: {address}\n"


def relayed(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.sendall(BANNER)
    assert sock.recv(100).startswith(b"[ssh]")
    return sock


def served(port: int, source: str = "127.0.0.5") -> bool:
    """A refused connection is closed at once; with our bytes unread, that can be a reset, seen
    by whichever of our calls comes next (send, shutdown: ENOTCONN, or recv).
    (From its own address: the start-up probe of the test harness used a token of 127.0.0.1.)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
            sock.sendall(BANNER)
            sock.shutdown(socket.SHUT_WR)
            return recv_all(sock).startswith(b"[ssh]")
    except (ConnectionResetError, BrokenPipeError):
        return False
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            return False
        raise


def refused_at_once(port: int, source: str = "127.0.0.1") -> bool:
    """Accepted, then closed without a byte: recv returns b"" (or a reset) at once."""
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as sock:
        started = time.monotonic()
        try:
            sock.sendall(BANNER)
            data = sock.recv(100)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        return data == b"" and time.monotonic() - started < 1


def test_max_connections_per_source(passthru) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru("limits: {max_connections_per_source: 2}\n" + ssh_routes(ssh.address))
        first, second = relayed(proc.port), relayed(proc.port)
        assert refused_at_once(proc.port)
        relayed(proc.port, source="127.0.0.2").close()  # another address is not affected
        first.close()
        time.sleep(0.2)
        relayed(proc.port).close()  # a slot is free again
        second.close()
        assert "end=limit_per_source" in proc.wait_for_log("end=limit_per_source")


def test_connection_rate_per_source(passthru) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru("limits: {connection_rate_per_source: 3/s}\n" + ssh_routes(ssh.address))
        results = [served(proc.port) for _ in range(5)]
        assert results == [True, True, True, False, False]
        time.sleep(0.7)  # 3/s refills one token every 1/3 s
        assert served(proc.port)
        proc.wait_for_log("end=rate_per_source")


def slow_client(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A client that sends the first byte of its protocol and then nothing: still identifying.
    (A client that sends nothing at all is held by the kernel when no route needs silent
    clients: see ``test_silent_clients_are_held_by_the_kernel``.)"""
    sock = socket.create_connection(("127.0.0.1", port), source_address=(source, 0))
    sock.sendall(BANNER[:1])
    return sock


def test_max_identifying_per_source_bounds_slow_clients(passthru) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru(
            "limits: {max_identifying_per_source: 2, max_identifying: 3}\n" + ssh_routes(ssh.address),
            identify_timeout="10s",
        )
        silent = [slow_client(proc.port) for _ in range(2)]
        time.sleep(0.2)
        assert refused_at_once(proc.port)
        third = slow_client(proc.port, source="127.0.0.2")
        time.sleep(0.2)
        assert refused_at_once(proc.port, source="127.0.0.3")  # 3 identifying in all
        for sock in [*silent, third]:
            sock.close()
        time.sleep(0.3)
        relayed(proc.port).close()
        proc.wait_for_log("end=limit_identifying\n")
        ends = re.findall(r"end=(\S+)$", proc.wait_for_log("end=limit_identifying_per_source"), re.MULTILINE)
        assert {"limit_identifying_per_source", "limit_identifying"} <= set(ends)


def test_silent_clients_are_held_by_the_kernel(passthru) -> None:
    """With no ``on_timeout`` route, a client that sends nothing can only be refused: the
    listener then asks the kernel (TCP_DEFER_ACCEPT) to hand clients over once they send bytes,
    so silent ones cost Passthru nothing, not even a slot of ``max_identifying``."""
    with TagServer("ssh") as ssh:
        proc = passthru("limits: {max_identifying: 2}\n" + ssh_routes(ssh.address), identify_timeout="10s")
        silent = [socket.create_connection(("127.0.0.1", proc.port)) for _ in range(5)]
        time.sleep(0.3)
        relayed(proc.port).close()  # not refused: the silent ones were never accepted
        for sock in silent:
            sock.close()
        assert "end=limit_identifying" not in proc.logs()


def test_silent_clients_are_held_from_the_first_moment_the_port_listens(tmp_path) -> None:
    """The same, for clients that connect while Passthru is still starting (paused right after
    its listener started accepting): TCP_DEFER_ACCEPT is on before the socket listens."""
    port = free_port()
    with TagServer("ssh") as ssh:
        config = f"listen: [127.0.0.1:{port}]\ntimeouts: {{identify: 10s}}\nlimits: {{max_identifying: 2}}\n"
        proc = PassthruProcess(
            tmp_path, config + ssh_routes(ssh.address), [("127.0.0.1", port)], launcher=slow_start("Acceptor.start")
        )
        with proc:
            proc.wait_for_log("paused")
            silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
            proc.wait_for_log("identifiers:")  # start-up went on
            relayed(port).close()
            for sock in silent:
                sock.close()
        assert "end=limit_identifying" not in proc.logs()


def test_max_connections_pauses_accepting_until_one_closes(passthru) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru("limits: {max_connections: 2}\n" + ssh_routes(ssh.address))
        first, second = relayed(proc.port), relayed(proc.port)
        waiting = socket.create_connection(("127.0.0.1", proc.port), timeout=5)  # the kernel accepts it
        waiting.sendall(BANNER)
        waiting.settimeout(0.5)
        try:
            early = waiting.recv(100)
        except TimeoutError:
            early = None
        assert early is None, "served while at max_connections"
        first.close()
        waiting.settimeout(5)
        assert waiting.recv(100).startswith(b"[ssh]")
        waiting.close()
        second.close()


def test_listener_max_connections(passthru, tmp_path) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru(ssh_routes(ssh.address))
        proc.stop()
        text = proc.config_path.read_text().replace(
            f"  - 127.0.0.1:{proc.port}\n", f"  - {{address: 127.0.0.1:{proc.port}, max_connections: 1}}\n"
        )
        proc.config_path.write_text(text)
        proc.start()
        first = relayed(proc.port)
        waiting = socket.create_connection(("127.0.0.1", proc.port), timeout=5)
        waiting.sendall(BANNER)
        waiting.settimeout(0.5)
        try:
            early = waiting.recv(100)
        except TimeoutError:
            early = None
        assert early is None
        first.close()
        waiting.settimeout(5)
        assert waiting.recv(100).startswith(b"[ssh]")
        waiting.close()


SLOWPOKE = """
import time

import pytest

NAME = "slowpoke"


def identify(data):
    time.sleep(0.02)  # 20 ms of wall-clock time and no CPU: what a busy machine's scheduler does
    if len(data) < 8:
        return len(data) + 1 if b"SLOWPOKE".startswith(data) else None  # one more byte, each time
    return {} if data.startswith(b"SLOWPOKE") else None
"""


def test_the_identification_budget_counts_cpu_not_wall_clock_time(passthru, tmp_path) -> None:
    """Three undecided feeds of 20 ms each without CPU (60 ms > the 50 ms budget in wall-clock
    time, about 0 in CPU): the connection must still be identified and routed."""
    (tmp_path / "identifiers").mkdir()
    (tmp_path / "identifiers" / "slowpoke.py").write_text(SLOWPOKE)
    with TagServer("slowpoke") as backend:
        proc = passthru(f"routes:\n  - {{name: slow, match: {{protocol: slowpoke}}, to: {backend.address}}}\n")
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            for piece in (b"S", b"L", b"O", b"WPOKE"):
                sock.sendall(piece)
                time.sleep(0.15)  # each piece is its own read, and its own feed
            sock.shutdown(socket.SHUT_WR)
            received = recv_all(sock)
        log = proc.wait_for_log("passthru.connection: conn=0-2 ")
    assert received == b"[slowpoke]SLOWPOKE", (received, log)
