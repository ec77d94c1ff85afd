"""The relay: every byte forwarded exactly, in order, both ways, with half-close honoured,
on both relay paths (splice and copy)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time

import pytest

from tests.support.backends import HashServer, TagServer, deterministic_stream
from tests.support.net import expect, recv_all

pytestmark = pytest.mark.usefixtures("relay_mode")

SIZE = 100 * 1024 * 1024
HTTP_PREFIX = b"POST /upload HTTP/1.1\r\nHost: bulk.example\r\nContent-Length: 104857600\r\n\r\n"


def route_all_http_to(address: str) -> str:
    return f"""routes:
  - name: bulk
    match: {{protocol: http, host: bulk.example}}
    to: {address}
"""


def test_100_megabytes_each_way_with_matching_sha256(passthru) -> None:
    with HashServer(reply_size=SIZE) as backend:
        proc = passthru(route_all_http_to(backend.address))
        sent = hashlib.sha256(HTTP_PREFIX)
        with socket.create_connection(("127.0.0.1", proc.port), timeout=60) as sock:
            received = hashlib.sha256()
            total = 0

            def read_everything() -> None:
                nonlocal total
                while chunk := sock.recv(1 << 20):
                    received.update(chunk)
                    total += len(chunk)

            reader = threading.Thread(target=read_everything)
            reader.start()
            sock.sendall(HTTP_PREFIX)
            for block in deterministic_stream(SIZE):
                sock.sendall(block)
                sent.update(block)
            sock.shutdown(socket.SHUT_WR)  # half-close: the reply still has to come back whole
            reader.join(timeout=120)
        expected = hashlib.sha256(sent.digest())
        for block in deterministic_stream(SIZE):
            expected.update(block)
        assert total == 32 + SIZE
        assert received.hexdigest() == expected.hexdigest()
        log = proc.wait_for_log("route=bulk")
        assert f"up={len(HTTP_PREFIX) + SIZE} down={32 + SIZE}" in log
        assert "end=closed" in log


def test_half_close_client_still_gets_whole_response(passthru) -> None:
    with TagServer("echo") as backend:
        proc = passthru(route_all_http_to(backend.address))
        request = b"GET / HTTP/1.1\r\nHost: bulk.example\r\n\r\n" + b"x" * 300_000
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            reply = recv_all(sock)
        # the backend echoes until our FIN reached it, then closes: all of it must be here
        assert reply == b"[echo]" + request
        assert backend.received == [request]


def test_prefix_split_over_many_reads_is_forwarded_in_order(passthru) -> None:
    with TagServer("echo") as backend:
        proc = passthru(route_all_http_to(backend.address))
        request = b"GET /slow HTTP/1.1\r\nHost: bulk.example\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\nBODY"
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(0, len(request), 7):
                sock.sendall(request[i : i + 7])
                time.sleep(0.01)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"[echo]" + request


def test_backend_reset_is_passed_on_as_reset(passthru) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_then_reset() -> None:
        conn, _ = listener.accept()
        conn.recv(100)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    threading.Thread(target=accept_then_reset, daemon=True).start()
    proc = passthru(route_all_http_to(f"127.0.0.1:{port}"))
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: bulk.example\r\n\r\n")
        try:
            data = recv_all(sock)
        except ConnectionResetError:
            data = None
    assert data is None, "a backend reset must reach the client as a reset, not a clean end"
    assert "end=upstream_reset" in proc.wait_for_log("route=bulk")
    listener.close()


def test_idle_connection_is_closed_after_idle_timeout(passthru) -> None:
    with TagServer("echo") as backend:
        proc = passthru(route_all_http_to(backend.address), idle_timeout="400ms")
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            request = b"GET / HTTP/1.1\r\nHost: bulk.example\r\n\r\n"
            sock.sendall(request)
            started = time.monotonic()
            assert recv_all(sock) == b"[echo]" + request  # ends when Passthru closes the idle relay
            assert 0.3 < time.monotonic() - started < 3
        assert "end=idle_timeout" in proc.wait_for_log("end=idle_timeout")


def test_traffic_keeps_a_connection_alive_past_idle_timeout(passthru) -> None:
    with TagServer("echo") as backend:
        proc = passthru(route_all_http_to(backend.address), idle_timeout="400ms")
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            request = b"GET / HTTP/1.1\r\nHost: bulk.example\r\n\r\n"
            sock.sendall(request)
            expect(sock, b"[echo]" + request)
            for i in range(8):  # 1.2 s in total, never 400 ms apart
                time.sleep(0.15)
                sock.sendall(b"ping%d" % i)
                expect(sock, b"ping%d" % i)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b""
        assert "end=closed" in proc.wait_for_log("route=bulk")
