"""systemd's readiness protocol (``sd_notify``): datagrams to ``$NOTIFY_SOCKET``, standard library only.

``Type=notify`` units learn from us when the service is ready (``READY=1``: every listener is
bound), reloading (``RELOADING=1`` ... ``READY=1``) and stopping (``STOPPING=1``). Without
``$NOTIFY_SOCKET`` (not started by systemd) every call is a no-op.

With several workers only the supervisor is systemd's main process, and readiness means *every*
worker is serving. So the supervisor opens a :class:`WorkerChannel` before forking: a worker's
:func:`notify` goes to the supervisor over that channel instead of to systemd, and
:class:`Aggregator` turns the workers' messages into one ``READY=1`` at start (once all are
ready) and one ``RELOADING=1``/``READY=1`` pair per reload round. Sending never raises and never
blocks: a lost notification must not stop the proxy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

log = logging.getLogger("passthru.notify")

ENV = "NOTIFY_SOCKET"

READY = "READY=1"
RELOADING = "RELOADING=1"
STOPPING = "STOPPING=1"

#: In a worker: the supervisor's end (set after fork); None: talk to systemd directly.
_channel: socket.socket | None = None
_warned = False


def notify(*states: str) -> bool:
    """Send ``states`` (e.g. ``READY=1``) as one message; False when nobody listens or it failed."""
    message = "\n".join(states)
    if RELOADING in states:  # systemd >= 253 wants the time of the reload request with it
        message += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
    if _channel is not None:
        return _send(_channel, message.encode(), None)
    address = os.environ.get(ENV)
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        return _send(sock, message.encode(), address)


def _send(sock: socket.socket, data: bytes, address: str | None) -> bool:
    global _warned
    try:
        sock.setblocking(False)
        if address is None:
            sock.send(data)
        else:
            sock.sendto(data, address)
        return True
    except OSError as exc:
        if not _warned:
            _warned = True
            log.warning("cannot notify systemd (%s): %s; further failures are not logged", ENV, exc)
        return False


class WorkerChannel:
    """A datagram socket pair: workers write their notifications, the supervisor reads them."""

    def __init__(self) -> None:
        self.supervisor_end, self.worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.supervisor_end.setblocking(False)
        self.supervisor_end.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def in_worker(self) -> None:
        """Call in a forked worker: its ``notify()`` now goes to the supervisor."""
        global _channel
        self.supervisor_end.close()
        _channel = self.worker_end

    def messages(self) -> list[tuple[int, set[str]]]:
        """The (worker pid, states) received since the last call (SCM_CREDENTIALS names the pid)."""
        received = []
        while True:
            try:
                data, ancdata, _flags, _addr = self.supervisor_end.recvmsg(4096, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return received
            pid = _sender_pid(ancdata)
            received.append((pid, set(data.decode("utf-8", "replace").split("\n"))))

    def close(self) -> None:
        for sock in (self.supervisor_end, self.worker_end):
            with contextlib.suppress(OSError):
                sock.close()


def _sender_pid(ancdata: list) -> int:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 4:
            return int.from_bytes(data[:4], "little")
    return 0


class Aggregator:
    """The supervisor's view: N workers' notifications become what systemd should hear.

    * ``READY=1`` once, when every expected worker has said ``READY=1`` at least once;
    * a reload round starts at the first ``RELOADING=1`` (from a worker, or the supervisor's own
      SIGHUP) and ends with ``READY=1`` once every worker in the round has said ``READY=1``
      again (or exited);
    * ``STOPPING=1`` comes from the supervisor itself (:meth:`stopping`).
    """

    def __init__(self, expected: int, send=notify) -> None:  # type: ignore[no-untyped-def]
        self.expected = expected
        self.send = send
        self.started: set[int] = set()
        self.announced = False
        self.reloading: set[int] | None = None  # workers the current round waits for
        self.stopped = False

    def received(self, pid: int, states: set[str]) -> None:
        if self.stopped:
            return
        if RELOADING in states:
            self.begin_reload({pid})
        if READY in states:
            self.started.add(pid)
            if self.reloading is not None and pid in self.reloading:
                self.reloading.discard(pid)
                self._maybe_reloaded()
            elif not self.announced and len(self.started) >= self.expected:
                self.announced = True
                self.send(READY)

    def begin_reload(self, pids: set[int]) -> None:
        """A reload began for ``pids`` (SIGHUP: every live worker)."""
        if not self.announced or self.stopped:
            return
        if self.reloading is None:
            self.reloading = set()
            self.send(RELOADING)
        self.reloading |= pids

    def exited(self, pid: int) -> None:
        self.started.discard(pid)
        if self.reloading is not None:
            self.reloading.discard(pid)
            self._maybe_reloaded()

    def stopping(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.send(STOPPING)

    def _maybe_reloaded(self) -> None:
        if self.reloading is not None and not self.reloading:
            self.reloading = None
            self.send(READY)
