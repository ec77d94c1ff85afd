"""Backends for pool tests on 127.0.0.1: one that answers health checks, one that never accepts."""

from __future__ import annotations

import socket
import socketserver
import threading

from tests.support.backends import _Backend

PING = b"PING\r\n"


class _CheckedHandler(socketserver.BaseRequestHandler):
    """A health check (``PING``) gets ``backend.reply``; anything else is tagged and echoed."""

    def handle(self) -> None:
        backend = self.server.backend  # type: ignore[attr-defined]
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # tag and echo: no Nagle wait
        first = self.request.recv(65536)
        if first.startswith(PING):
            backend.checks += 1
            self.request.sendall(backend.reply)
            return
        backend.connections += 1
        self.request.sendall(backend.tag)
        got = [first]
        chunk = first
        while chunk:
            self.request.sendall(chunk)
            chunk = self.request.recv(65536)
            got.append(chunk)
        backend.received.append(b"".join(got))


class CheckedServer(_Backend):
    """Like ``TagServer`` for clients (which must speak first), and answers ``PING`` checks with
    ``reply`` (change it to make the backend look broken or healthy)."""

    handler = _CheckedHandler

    def __init__(self, tag: str, reply: bytes = b"+PONG\r\n", port: int = 0) -> None:
        self.tag = f"[{tag}]".encode()
        self.reply = reply
        self.checks = 0
        super().__init__()
        if port:  # rebind to a chosen port (a backend that comes back where it was)
            self.server.server_close()
            self.server = type(self.server)(("127.0.0.1", port), self.handler)
            self.server.backend = self  # type: ignore[attr-defined]
            self.port = port
            self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


class Silent:
    """Accepts connections and never sends a byte (a check with ``expect`` times out)."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()
