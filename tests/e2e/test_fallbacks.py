"""What happens to connections no rule takes: silent clients, unmatched bytes, dead backends."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import subprocess
import threading
import time

import pytest

from tests.support.backends import TagServer, ThreadedServer
from tests.support.net import exchange, free_port, recv_all

SSH_ROUTE = """  - name: ssh
    match: {{protocol: ssh}}
    to: {address}
"""


def test_silent_client_goes_to_on_timeout(passthru) -> None:
    with TagServer("ssh-server-speaks-first") as banner, TagServer("ssh") as ssh:
        proc = passthru(
            "routes:\n" + SSH_ROUTE.format(address=ssh.address) + f"on_timeout: {banner.address}\ndefault: reject\n",
            identify_timeout="300ms",
        )
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            started = time.monotonic()
            assert sock.recv(100) == b"[ssh-server-speaks-first]"
            waited = time.monotonic() - started
            sock.sendall(b"hello after banner")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"hello after banner"
        assert 0.25 <= waited < 2.0
        assert "route=on_timeout" in proc.wait_for_log("route=on_timeout")


def test_on_timeout_may_name_a_route(passthru) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru(
            "routes:\n" + SSH_ROUTE.format(address=ssh.address) + "on_timeout: ssh\n", identify_timeout="200ms"
        )
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            assert sock.recv(100) == b"[ssh]"


def test_unmatched_goes_to_default_address(passthru) -> None:
    with TagServer("ssh") as ssh, TagServer("fallback") as fallback:
        proc = passthru("routes:\n" + SSH_ROUTE.format(address=ssh.address) + f"default: {fallback.address}\n")
        payload = b"\x00\x01garbage that no identifier takes\r\n"
        assert exchange(proc.port, payload) == b"[fallback]" + payload
        assert ssh.connections == 0


def test_unmatched_is_rejected_cleanly_with_nothing_sent(passthru) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru("routes:\n" + SSH_ROUTE.format(address=ssh.address) + "default: reject\n")
        # an orderly close (FIN, so recv returns b"") with not one byte sent back
        assert exchange(proc.port, b"HELO mail.example.com\r\n") == b""
        assert exchange(proc.port, b"GET / HTTP/1.1\r\nHost: nobody\r\n\r\n") == b""
        assert ssh.connections == 0
        assert "end=rejected" in proc.wait_for_log("end=rejected")


def test_refused_upstream_closes_client_and_server_keeps_serving(passthru) -> None:
    dead = free_port()
    with TagServer("ssh") as ssh:
        proc = passthru(
            f"""routes:
  - name: dead
    match: {{protocol: http}}
    to: 127.0.0.1:{dead}
"""
            + SSH_ROUTE.format(address=ssh.address)
        )
        assert exchange(proc.port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") == b""
        log = proc.wait_for_log("end=upstream_unavailable")
        assert f"127.0.0.1:{dead}: Connection refused" in log
        banner = b"SSH-2.0-OpenSSH_9.2p1\r\n"
        assert exchange(proc.port, banner) == b"[ssh]" + banner


def test_pool_falls_back_to_the_next_backend(passthru) -> None:
    dead = free_port()
    with TagServer("alive") as alive:
        proc = passthru(
            f"""routes:
  - name: pool
    match: {{protocol: ssh}}
    to: [127.0.0.1:{dead}, {alive.address}]
    balance: first
"""
        )
        banner = b"SSH-2.0-test\r\n"
        assert exchange(proc.port, banner) == b"[alive]" + banner


def test_client_that_closes_at_once_is_logged_not_fatal(passthru) -> None:
    with TagServer("ssh") as ssh:
        proc = passthru("routes:\n" + SSH_ROUTE.format(address=ssh.address))
        for _ in range(20):
            socket.create_connection(("127.0.0.1", proc.port)).close()
        rst = socket.create_connection(("127.0.0.1", proc.port))
        rst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        rst.sendall(b"SSH-2.0-")
        rst.close()
        banner = b"SSH-2.0-still-alive\r\n"
        assert exchange(proc.port, banner) == b"[ssh]" + banner
        proc.wait_for_log("end=client_closed")


def test_catch_all_first_route_dials_at_once_without_waiting_for_bytes(passthru) -> None:
    with TagServer("everything") as backend:
        proc = passthru(f"routes:\n  - name: all\n    to: {backend.address}\n", identify_timeout="5s")
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            started = time.monotonic()
            assert sock.recv(100) == b"[everything]"  # the backend spoke first: we did not wait 5 s
            assert time.monotonic() - started < 2
        assert "route=all" in proc.wait_for_log("route=all")


class _MiniSMTP(socketserver.StreamRequestHandler):
    """Just enough SMTP for curl to send one message: the server speaks first (220)."""

    def handle(self) -> None:
        self.wfile.write(b"220 mini ESMTP\r\n")
        in_data = False
        while line := self.rfile.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    self.wfile.write(b"250 queued\r\n")
                else:
                    self.server.message.append(line)  # type: ignore[attr-defined]
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                in_data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_server_speaks_first_protocol_is_served_through_on_timeout(passthru, tmp_path) -> None:
    """SMTP (like MySQL, IMAP, POP3, FTP, VNC) cannot be identified from client bytes: the client
    waits for the server's greeting. ``on_timeout`` sends such silent clients to their server."""
    smtp = ThreadedServer(("127.0.0.1", 0), _MiniSMTP)
    smtp.message = []  # type: ignore[attr-defined]
    threading.Thread(target=smtp.serve_forever, daemon=True).start()
    try:
        with TagServer("ssh") as ssh:
            proc = passthru(
                "routes:\n"
                + SSH_ROUTE.format(address=ssh.address)
                + f"on_timeout: 127.0.0.1:{smtp.server_address[1]}\n",
                identify_timeout="300ms",
            )
            mail = tmp_path / "mail.txt"
            mail.write_text("Subject: via passthru\r\n\r\nhello\r\n")
            result = subprocess.run(
                [
                    "curl",
                    "-sS",
                    "--max-time",
                    "10",
                    f"smtp://127.0.0.1:{proc.port}",
                    "--mail-from",
                    "a@example.com",
                    "--mail-rcpt",
                    "b@example.com",
                    "--upload-file",
                    str(mail),
                ],
                capture_output=True,
                timeout=20,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            assert b"hello\r\n" in smtp.message  # type: ignore[attr-defined]
            assert "route=on_timeout" in proc.wait_for_log("route=on_timeout")
    finally:
        smtp.shutdown()
        smtp.server_close()


def test_declarative_identifiers_from_the_config_route_like_builtins(passthru) -> None:
    with TagServer("game") as game, TagServer("regex") as regex:
        proc = passthru(
            f"""identifiers:
  - name: game
    prefix: {{hex: "fe fd 09"}}
  - name: hello
    regex: '^HELLO (?P<who>[a-z]+)\\r\\n'
    min_length: 8
routes:
  - name: game
    match: {{protocol: game}}
    to: {game.address}
  - name: hello-bob
    match: {{protocol: hello, who: bob}}
    to: {regex.address}
"""
        )
        assert exchange(proc.port, b"\xfe\xfd\x09rest") == b"[game]\xfe\xfd\x09rest"
        assert exchange(proc.port, b"HELLO bob\r\n") == b"[regex]HELLO bob\r\n"
        assert exchange(proc.port, b"HELLO eve\r\n") == b""  # matched, but no route: rejected
        log = proc.wait_for_log('fields={"who":"eve"}')
        assert "protocol=hello" in log


class _Slammer:
    """A backend that accepts and fails before sending a byte: ``reset`` reads a little, then
    resets (RST); otherwise it closes in order: FIN at once, then it reads to the end before it
    lets go of the socket (closing with unread bytes would make the kernel send a reset instead)."""

    def __init__(self, reset: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self.reset = reset
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._fail, args=(conn,), daemon=True).start()

    def _fail(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            if self.reset:
                conn.recv(10)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return
            conn.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                recv_all(conn)


@pytest.mark.parametrize("reset", [False, True], ids=["closes", "resets"])
def test_backend_failing_before_answering_is_replaced_by_the_next(passthru, reset: bool) -> None:
    """Accept-then-close/reset before a byte came back: the prefix is replayed to the next
    backend of the pool and the client notices nothing."""
    bad = _Slammer(reset)
    with TagServer("good") as good:
        proc = passthru(
            f"""routes:
  - name: pool
    match: {{protocol: ssh}}
    to: [{bad.address}, {good.address}]
    balance: first
"""
        )
        banner = b"SSH-2.0-early-failure\r\n"
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.sendall(banner)  # and waits for the server's answer, as an SSH client does
            reply = b""
            while len(reply) < 6 + len(banner) and (chunk := sock.recv(100)):
                reply += chunk
            assert reply == b"[good]" + banner
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b""
        assert bad.accepted == 1
        assert good.received == [banner]
        log = proc.wait_for_log(f"upstream={good.address}")
        assert f"backend {bad.address}" in log and "trying the next one" in log
        # marked down: the next connection goes straight to the good one
        assert exchange(proc.port, banner) == b"[good]" + banner
        assert bad.accepted == 1
    bad.sock.close()


def test_single_backend_failing_early_ends_the_connection_cleanly(passthru) -> None:
    bad = _Slammer(reset=False)
    proc = passthru(f"routes:\n  - name: one\n    match: {{protocol: ssh}}\n    to: {bad.address}\n")
    assert exchange(proc.port, b"SSH-2.0-x\r\n") == b""
    assert "end=closed" in proc.wait_for_log("route=one")
    bad.sock.close()
