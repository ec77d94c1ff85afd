"""Real TCP backends for end-to-end tests, each in its own thread on 127.0.0.1.

* ``TagServer``: answers every connection with its tag at once (so it also
  stands in for servers that speak first, like SMTP or MySQL), then echoes what it receives until the
  client half-closes — tells a test which backend a connection reached and checks bytes both ways.
* ``HashServer``: reads until EOF, answers with the sha256 of what it got, then streams a
  requested number of deterministic bytes — for large transfers with checksums on both ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import socketserver
import threading

from tests.support.net import BACKLOG, recv_all


class ThreadedServer(socketserver.ThreadingTCPServer):
    """A thread per connection, with a real listen backlog."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG  # socketserver's default of 5 drops SYNs when connects come in bursts


class _Backend:
    handler: type[socketserver.BaseRequestHandler]

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        server_class = ThreadedServer
        if ":" in host:
            server_class = type("ThreadedServer6", (ThreadedServer,), {"address_family": socket.AF_INET6})
        self.server = server_class((host, port), self.handler)
        self.server.backend = self  # type: ignore[attr-defined]
        self.host = host
        self.port = self.server.server_address[1]
        self.connections = 0
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _TagHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        backend = self.server.backend  # type: ignore[attr-defined]
        backend.connections += 1
        self.request.sendall(backend.tag)
        got = []
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                break
            got.append(chunk)
            self.request.sendall(chunk)
        backend.received.append(b"".join(got))


class TagServer(_Backend):
    handler = _TagHandler

    def __init__(self, tag: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.tag = f"[{tag}]".encode()
        super().__init__(host, port)


class _HashHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        backend = self.server.backend  # type: ignore[attr-defined]
        data = recv_all(self.request)
        self.request.sendall(hashlib.sha256(data).digest())
        for block in deterministic_stream(backend.reply_size):
            self.request.sendall(block)
        self.request.shutdown(socket.SHUT_WR)


class HashServer(_Backend):
    handler = _HashHandler

    def __init__(self, reply_size: int, host: str = "127.0.0.1") -> None:
        self.reply_size = reply_size
        super().__init__(host)


def deterministic_stream(size: int, block: int = 1 << 20, seed: int = 7):
    """``size`` pseudo-random bytes that both ends can regenerate from the seed."""
    rng = random.Random(seed)
    sent = 0
    while sent < size:
        n = min(block, size - sent)
        yield rng.randbytes(n)
        sent += n


class Blackhole:
    """A loopback port whose SYNs go unanswered: a ``listen(0)`` socket that never accepts, its
    queue filled, so the kernel drops further SYNs and connects time out."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.fillers: list[socket.socket] = []
        for _ in range(2):  # the queue holds backlog + 1
            with contextlib.suppress(OSError):
                self.fillers.append(socket.create_connection(("127.0.0.1", self.port), timeout=0.3))

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc: object) -> None:
        for sock in self.fillers:
            sock.close()
        self.listener.close()
