"""A small threaded HTTP server for the admin app, in a daemon OS thread.

Plain threads work in both places the admin runs: the supervisor has no gevent at all, and the
single serving process does not monkey-patch, so this thread blocks in real ``select``/``accept``
without touching the hub. Probes and scrapes stay answered even while the hub is busy.

Fork: the supervisor forks workers while this thread runs. A worker must not keep the admin's
listening socket (or a half-served probe) open, so a fork handler closes them in the child.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
import weakref
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from passthru.admin.app import WSGIApp

log = logging.getLogger("passthru.admin")

#: A client that sends its request slower than this is dropped (one thread per request).
REQUEST_TIMEOUT = 10.0

_live: weakref.WeakSet[AdminHTTPServer] = weakref.WeakSet()


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr: probes every few seconds would drown the connection log."""

    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class AdminHTTPServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, family: int, sockaddr: tuple, app: WSGIApp) -> None:
        self.address_family = family
        self.open_requests: set[socket.socket] = set()
        super().__init__(sockaddr, QuietHandler)
        self.set_app(app)
        _live.add(self)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the FQDN of the bind address (a DNS query).
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]
        self.setup_environ()

    def process_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        self.open_requests.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        self.open_requests.discard(request)
        super().shutdown_request(request)

    def close_inherited(self) -> None:
        """In a forked child: close our copies of the sockets (the parent's stay open)."""
        for sock in [self.socket, *self.open_requests]:
            sock.close()
        self.open_requests.clear()


def _after_fork_in_child() -> None:
    for server in list(_live):
        server.close_inherited()
    _live.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def serve_in_thread(server: AdminHTTPServer) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="passthru-admin", daemon=True
    )
    thread.start()
    return thread
