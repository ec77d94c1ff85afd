"""The accept loop of one listener: gevent's ``StreamServer`` with two changes.

* A client socket handed to a relay stays open when its handler greenlet returns (gevent
  closes it by default): the relay closes it when the connection ends.
* ``max_connections``: at the global or this listener's limit it stops accepting (the kernel
  backlog holds new clients) and resumes when a connection closes.

Handlers run in raw greenlets (lighter than ``Greenlet``); the handler catches everything.
"""

from __future__ import annotations

import gevent
from gevent import socket as gsocket
from gevent.server import StreamServer

from passthru.server.handler import ConnectionHandler


class PassthruServer(StreamServer):
    def __init__(
        self, sock: gsocket.socket, handler: ConnectionHandler, listener_key: tuple, max_connections: int | None = None
    ) -> None:
        super().__init__(sock, self._handle_here, spawn=gevent.spawn_raw)
        self.handler = handler
        self.listener_key = listener_key  # finds this listener's options in the current config
        self.address_text = ""  # the listen address as the config names it (set by the service)
        self.max_connections = max_connections
        self.open = 0  # connections accepted here and not yet closed
        self.paused = False

    def _handle_here(self, client, address) -> None:  # type: ignore[no-untyped-def]
        self.handler(client, address, self)

    def do_close(self, sock, *args) -> None:  # type: ignore[no-untyped-def]
        if sock not in self.handler.handed_over:
            sock.close()

    def full(self) -> bool:  # called by gevent before each accept
        limit = self.handler.runtime().config.limits.max_connections
        full = (limit is not None and len(self.handler.connections) >= limit) or (
            self.max_connections is not None and self.open >= self.max_connections
        )
        self.paused = full
        return full

    def resume(self) -> None:
        self.paused = False
        self._start_accepting_if_started()
