"""The accept loop of one listener, on the hub's watcher of the listening socket.

* Each wake-up accepts up to ``ACCEPT_BATCH`` clients and starts each connection at once, in
  the same callback: no greenlet per connection (see ``connection.py``).
* ``max_connections``: at the global or this listener's limit it stops watching the socket (the
  kernel backlog holds new clients) and resumes when a connection closes.
* Out of file descriptors (EMFILE and kin) at accept: it pauses, retries after a back-off (0.1 s
  doubling to 1 s, or at once when a connection closes), and logs one warning per episode.
  Relayed connections are unaffected.
* ``TCP_NODELAY`` is set once on the listening socket, and accepted sockets inherit it.
"""

from __future__ import annotations

import _socket
import errno
import logging
import socket
from collections.abc import Callable

from passthru.config import Limits
from passthru.server.counting import Counting
from passthru.server.watchers import READ, dispose, io, timer

log = logging.getLogger("passthru.server")

OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
BACKOFF_MIN, BACKOFF_MAX = 0.1, 1.0
#: Clients accepted per wake-up before other callbacks get their turn.
ACCEPT_BATCH = 64

#: What the acceptor hands each new client to: (socket, address, listener key, listen address).
Accept = Callable[[socket.socket, tuple, tuple, str], None]


class Acceptor:
    def __init__(
        self,
        sock: socket.socket,
        accept: Accept,
        counting: Counting,
        limits: Callable[[], Limits],
        listener_key: tuple,
        address_text: str,
        max_connections: int | None = None,
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.family = int(sock.family)
        self.accept = accept
        self.counting = counting
        self.limits = limits
        self.listener_key = listener_key  # finds this listener's options in the current config
        self.address_text = address_text  # the listen address as the config names it
        self.max_connections = max_connections
        self.paused = False
        self.starved = False  # accept failed for lack of descriptors; retrying
        self.backoff = BACKOFF_MIN
        self._watcher = io(sock.fileno(), READ)
        self._retry = None
        self.closed = False

    def start(self) -> None:
        self._watcher.start(self._accept_some)

    def _accept_some(self) -> None:
        limits = self.limits()  # once per wake-up: it is the same config for the whole batch
        for _ in range(ACCEPT_BATCH):
            if self.counting.full(limits, self.listener_key, self.max_connections):
                self.pause()
                return
            try:
                # The socket module's accept() wraps the descriptor in a Python-level object and
                # converts its family and type to enums: a tenth of a connection's own Python.
                fd, address = self.sock._accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self._starving(exc)
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                    log.warning("accept on %s failed: %s", self.address_text, exc.strerror or exc)
                return
            if self.starved:
                self.starved = False
                self.backoff = BACKOFF_MIN
                log.warning("accepting on %s again", self.address_text)
            client = _socket.socket(self.family, socket.SOCK_STREAM, 0, fd)
            client.setblocking(False)
            self.accept(client, address, self.listener_key, self.address_text)

    def _starving(self, exc: OSError) -> None:
        if not self.starved:
            self.starved = True
            log.warning(
                "cannot accept on %s: %s; pausing accepts until descriptors free up",
                self.address_text,
                exc.strerror or exc,
            )
        self.pause()
        self._retry = timer(self.backoff)
        self._retry.start(self._retry_now)
        self.backoff = min(BACKOFF_MAX, self.backoff * 2)

    def _retry_now(self) -> None:
        self._stop_retry()
        self.resume()

    def _stop_retry(self) -> None:
        dispose(self._retry)
        self._retry = None

    def full(self) -> bool:
        return self.counting.full(self.limits(), self.listener_key, self.max_connections)

    def pause(self) -> None:
        self.paused = True
        self._watcher.stop()

    def resume(self) -> None:
        """Watch the socket again (after a limit or a shortage); a no-op once closed."""
        if self.closed:
            return
        self._stop_retry()
        self.paused = False
        if not self._watcher.active:
            self._watcher.start(self._accept_some)

    def close(self) -> None:
        self.closed = True
        self._stop_retry()
        self._watcher.stop()  # closed, not disposed of for reuse: this acceptor keeps its reference
        self._watcher.close()
        self.sock.close()
