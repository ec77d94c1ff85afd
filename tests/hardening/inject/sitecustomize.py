"""Fault injection for the hardening tests: Python imports this at start-up when this directory
is on ``PYTHONPATH``; it does nothing unless the variable below is set.

``PASSTHRU_TEST_CONNECT_DELAY=PORT:SECONDS`` makes Passthru notice a completed connect to port
PORT SECONDS late — what a busy hub does to a connection whose backend answered the handshake
(and turns off, for that port, the write made right after ``connect()``, which would otherwise
notice the connect at once).
It lets a test put a backend's reset deterministically between Passthru's connect and its first
write.
"""

from __future__ import annotations

import os

_SPEC = os.environ.get("PASSTHRU_TEST_CONNECT_DELAY")

if _SPEC:
    import gevent

    from passthru.server.connection import Connection

    _port, _seconds = int(_SPEC.split(":")[0]), float(_SPEC.split(":")[1])
    _connect_done = Connection._connect_done
    _made_late: set[int] = set()  # connections already made late (by id)

    def _late_connect_done(self: Connection) -> None:
        if self.endpoint is not None and self.endpoint.port == _port and id(self) not in _made_late:
            _made_late.add(id(self))
            self._upstream_watcher.stop()  # the connect completed: look at it again later
            gevent.spawn_later(_seconds, self._guarded, lambda: _connect_done(self))
            return
        _connect_done(self)

    _sent_at_once = Connection._sent_at_once

    def _wait_for_the_connect(self: Connection) -> bool:
        """The delayed port's connect is noticed by its watcher (``_connect_done``), not by a
        write made right after ``connect()``: that is the path being made late."""
        if self.endpoint is not None and self.endpoint.port == _port and id(self) not in _made_late:
            return False
        return _sent_at_once(self)

    Connection._connect_done = _late_connect_done  # type: ignore[method-assign]
    Connection._sent_at_once = _wait_for_the_connect  # type: ignore[method-assign]
