"""Fault injection for the hardening tests: Python imports this at start-up when this directory
is on ``PYTHONPATH``; it does nothing unless the variable below is set.

``PASSTHRU_TEST_CONNECT_DELAY=PORT:SECONDS`` makes every gevent ``connect`` to a port PORT return
SECONDS late — what a busy hub does to a connection whose backend answered the handshake. It lets
a test put a backend's reset deterministically between Passthru's connect and its first write.
"""

from __future__ import annotations

import os

_SPEC = os.environ.get("PASSTHRU_TEST_CONNECT_DELAY")

if _SPEC:
    import gevent
    import gevent.socket

    _port, _seconds = int(_SPEC.split(":")[0]), float(_SPEC.split(":")[1])
    _connect = gevent.socket.socket.connect

    def _late_connect(self, address):  # type: ignore[no-untyped-def]
        _connect(self, address)
        if isinstance(address, tuple) and len(address) >= 2 and address[1] == _port:
            gevent.sleep(_seconds)

    gevent.socket.socket.connect = _late_connect
