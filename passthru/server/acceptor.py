"""The accept loop of one listener: gevent's ``StreamServer`` with two changes.

* A client socket handed to a relay stays open when its handler greenlet returns (gevent
  closes it by default): the relay closes it when the connection ends.
* ``max_connections``: at the global or this listener's limit it stops accepting (the kernel
  backlog holds new clients) and resumes when a connection closes.
* Out of file descriptors (EMFILE and kin) at accept: it pauses accepting, retries after a
  back-off (0.1 s doubling to 1 s, or at once when a connection closes), and logs one warning
  per episode instead of gevent's traceback per attempt. Relayed connections are unaffected.

Handlers run in raw greenlets (lighter than ``Greenlet``); the handler catches everything.
"""

from __future__ import annotations

import errno
import logging

import gevent
from gevent import socket as gsocket
from gevent.server import StreamServer

from passthru.server.handler import ConnectionHandler

log = logging.getLogger("passthru.server")

OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
BACKOFF_MIN, BACKOFF_MAX = 0.1, 1.0


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
        self.starved = False  # accept failed for lack of descriptors; retrying
        self.backoff = BACKOFF_MIN

    def do_read(self):  # type: ignore[no-untyped-def]
        try:
            accepted = super().do_read()
        except OSError as exc:
            if exc.errno not in OUT_OF_RESOURCES:
                raise
            self._starving(exc)
            return None
        if self.starved and accepted:
            self.starved = False
            self.backoff = BACKOFF_MIN
            log.warning("accepting on %s again", self.address_text)
        return accepted

    def _starving(self, exc: OSError) -> None:
        if not self.starved:
            self.starved = True
            log.warning(
                "cannot accept on %s: %s; pausing accepts until descriptors free up",
                self.address_text,
                exc.strerror or exc,
            )
        self.stop_accepting()
        self.paused = True
        gevent.spawn_later(self.backoff, self.resume)
        self.backoff = min(BACKOFF_MAX, self.backoff * 2)

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
