"""Misbehaving clients: a reset in the middle of a transfer (either way), a half-close before a
long answer, and a client that never reads while its backend sends 200 MB."""

from __future__ import annotations

import hashlib
import socket
import socketserver
import struct
import threading
import time
from pathlib import Path

from tests.hardening.figures import figure
from tests.hardening.helpers import Sink, fd_kinds, rss_kib, start_passthru, wait_lines
from tests.support.backends import HashServer, _Backend, deterministic_stream
from tests.support.passthru_process import tracebacks

BANNER = b"SSH-2.0-hardening\r\n"
LINGER_RESET = struct.pack("ii", 1, 0)
MB = 1 << 20


def ssh_to(address: str) -> str:
    return f"routes:\n  - {{name: ssh, match: {{protocol: ssh}}, to: {address}}}\n"


class _FirehoseHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        backend = self.server.backend  # type: ignore[attr-defined]
        self.request.settimeout(30)
        self.request.recv(len(BANNER))
        block = bytes(range(256)) * 256  # 64 KiB
        try:
            while backend.sent < backend.size:
                backend.sent += self.request.send(block)
            backend.outcome = "all sent"
        except OSError as exc:
            backend.outcome = type(exc).__name__
        finally:
            backend.done.set()


class Firehose(_Backend):
    """Sends ``size`` bytes as fast as the connection takes them; ``sent`` counts them."""

    handler = _FirehoseHandler

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.sent = 0
        self.outcome = ""
        self.done = threading.Event()


def sockets_and_pipes(pid: int) -> tuple[int, int]:
    kinds = fd_kinds(pid)
    return kinds["socket"], kinds["pipe"]


def wait_sockets(pid: int, expected: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while (now := fd_kinds(pid)["socket"]) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return now


def test_client_reset_mid_upload(tmp_path: Path) -> None:
    with Sink() as sink:
        proc = start_passthru(tmp_path, ssh_to(sink.address))
        try:
            pid = proc.process.pid
            time.sleep(0.3)
            sockets_before, _ = sockets_and_pipes(pid)
            with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
                sock.sendall(BANNER)
                sent = 0
                for block in deterministic_stream(10 * MB, block=64 * 1024):
                    sock.sendall(block)
                    sent += len(block)
                    if sent >= 5 * MB:  # about halfway, with bytes still in flight
                        break
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            received = sink.wait_received(1)
            line = wait_lines(proc, 2)[-1]
            sockets_after = wait_sockets(pid, sockets_before)
            log = proc.logs()
        finally:
            proc.stop()
    figure(
        "client reset up",
        f"client RST after {int(line['up']) / MB:.1f} MiB of 10 MiB up: end={line['end']}, backend saw "
        f"{sink.errors or ['EOF']} after {len(received[0]) / MB:.1f} MiB; worker sockets {sockets_before} -> "
        f"{sockets_after}",
    )
    assert line["end"] == "client_reset"
    assert sink.errors == ["ConnectionResetError"], "the reset is passed on to the backend"
    assert sockets_after == sockets_before
    assert tracebacks(log) == 0


def test_client_reset_mid_download(tmp_path: Path) -> None:
    with Firehose(100 * MB) as backend:
        proc = start_passthru(tmp_path, ssh_to(backend.address))
        try:
            pid = proc.process.pid
            time.sleep(0.3)
            sockets_before, _ = sockets_and_pipes(pid)
            got = 0
            with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
                sock.sendall(BANNER)
                while got < 3 * MB:
                    got += len(sock.recv(65536))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            assert backend.done.wait(10)
            line = wait_lines(proc, 2)[-1]
            sockets_after = wait_sockets(pid, sockets_before)
            log = proc.logs()
        finally:
            proc.stop()
    figure(
        "client reset down",
        f"client RST after reading {got / MB:.1f} MiB of 100 MiB: end={line['end']} "
        f"down={int(line['down']) / MB:.1f}MiB, "
        f"backend: {backend.outcome} after {backend.sent / MB:.1f} MiB; worker sockets {sockets_before} -> "
        f"{sockets_after}",
    )
    assert line["end"] == "client_reset"
    assert backend.outcome in ("ConnectionResetError", "BrokenPipeError"), backend.outcome
    assert sockets_after == sockets_before
    assert tracebacks(log) == 0


def test_half_close_first_then_long_answer(tmp_path: Path) -> None:
    size = 50 * MB
    with HashServer(reply_size=size) as backend:
        proc = start_passthru(tmp_path, ssh_to(backend.address))
        try:
            with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
                sock.sendall(BANNER)
                sock.shutdown(socket.SHUT_WR)  # before the backend said anything
                time.sleep(0.5)  # the answer starts well after our FIN
                digest, received, total = b"", hashlib.sha256(), 0
                while chunk := sock.recv(1 << 20):
                    if len(digest) < 32:
                        take = 32 - len(digest)
                        digest, chunk = digest + chunk[:take], chunk[take:]
                    received.update(chunk)
                    total += len(chunk)
            line = wait_lines(proc, 2)[-1]
        finally:
            proc.stop()
    expected = hashlib.sha256()
    for block in deterministic_stream(size):
        expected.update(block)
    figure(
        "early half-close",
        f"client FIN after {len(BANNER)} bytes, then read {total / MB:.0f} MiB: sha256 "
        f"{'equal' if received.digest() == expected.digest() else 'DIFFERENT'}, end={line['end']}",
    )
    assert digest == hashlib.sha256(BANNER).digest()
    assert total == size and received.digest() == expected.digest()
    assert line["end"] == "closed" and int(line["down"]) == 32 + size


def test_client_that_never_reads_costs_kernel_buffers_only(tmp_path: Path) -> None:
    with Firehose(200 * MB) as backend:
        proc = start_passthru(tmp_path, ssh_to(backend.address), idle="3s")
        try:
            pid = proc.process.pid
            time.sleep(0.3)
            sockets_before, _ = sockets_and_pipes(pid)
            rss_before = rss_kib(pid)
            peak = rss_before
            with socket.create_connection(("127.0.0.1", proc.port), timeout=30) as sock:
                sock.sendall(BANNER)  # and never read
                last, still_since = -1, time.monotonic()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not backend.done.is_set():
                    peak = max(peak, rss_kib(pid))
                    if backend.sent != last:
                        last, still_since = backend.sent, time.monotonic()
                    elif time.monotonic() - still_since > 1.0:
                        break  # stalled: every buffer on the way is full
                    time.sleep(0.05)
                stalled_at = still_since  # when the last byte moved
                stalled_bytes = backend.sent
                assert backend.done.wait(10), "the idle timeout closes the connection"
                closed_after = time.monotonic() - stalled_at
                line = wait_lines(proc, 2)[-1]
            sockets_after = wait_sockets(pid, sockets_before)
            log = proc.logs()
        finally:
            proc.stop()
    growth = (peak - rss_before) / 1024
    figure(
        "never reads",
        f"backend offered 200 MiB, {stalled_bytes / MB:.1f} MiB left it before the stall (all in kernel "
        f"socket buffers); Passthru RSS +{growth:.2f} MiB at peak; idle timeout (3s) closed it "
        f"{closed_after:.1f}s after the stall: end={line['end']} "
        f"down={int(line['down']) / MB:.1f}MiB; worker sockets {sockets_before} -> {sockets_after}",
    )
    assert stalled_bytes < 64 * MB, "the backend was held back (backpressure)"
    assert growth < 4, f"Passthru buffered in user space: +{growth:.1f} MiB"
    assert line["end"] == "idle_timeout"
    assert 2.5 < closed_after < 6
    assert sockets_after == sockets_before
    assert tracebacks(log) == 0
