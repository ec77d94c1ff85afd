"""Copy bytes both ways until both directions are done, honouring half-close.

Each direction is a pump greenlet: read, write all of it, repeat; on end-of-file it shuts
down the write side of the other socket (half-close) and stops. The caller's greenlet
watches both and enforces the idle timeout: when neither direction has moved a byte for
``idle`` seconds the pumps are killed, which also frees a pump stuck writing to a peer that
never reads. A reset on one side is passed on as a reset to the other (SO_LINGER 0), so a
truncated transfer never looks like a clean end.
"""

from __future__ import annotations

import errno
import socket
import struct
import time
from dataclasses import dataclass

import gevent
from gevent import socket as gsocket

BUFFER_SIZE = 64 * 1024
LINGER_RESET = struct.pack("ii", 1, 0)


class PeerReset(Exception):
    """The side named ``side`` reset the connection or failed hard while we used it."""

    def __init__(self, side: str, reason: str) -> None:
        super().__init__(f"{side}: {reason}")
        self.side = side
        self.reason = reason


@dataclass
class Pump:
    """One direction of the relay. ``moved`` counts bytes written to the destination."""

    source: gsocket.socket
    destination: gsocket.socket
    source_side: str
    destination_side: str
    activity: list[float]
    moved: int = 0
    failure: PeerReset | None = None

    def run(self) -> None:
        """Pump until end-of-file; a failure is kept in ``failure`` (not raised into the hub)."""
        try:
            self._copy()
        except PeerReset as exc:
            self.failure = exc

    def _copy(self) -> None:
        buffer = bytearray(BUFFER_SIZE)
        view = memoryview(buffer)
        while True:
            try:
                n = self.source.recv_into(buffer)
            except OSError as exc:
                raise PeerReset(self.source_side, describe(exc)) from exc
            if n == 0:
                shutdown_write(self.destination)
                return
            try:
                self.destination.sendall(view[:n])
            except OSError as exc:
                raise PeerReset(self.destination_side, describe(exc)) from exc
            self.moved += n
            self.activity[0] = time.monotonic()


@dataclass
class RelayResult:
    bytes_up: int
    bytes_down: int
    ended: str  # "closed", "idle_timeout", "client_reset", "upstream_reset"


def relay(client: gsocket.socket, upstream: gsocket.socket, idle: float) -> RelayResult:
    """Relay until both directions end, one side resets, or nothing moves for ``idle`` s."""
    client.settimeout(None)
    upstream.settimeout(None)
    activity = [time.monotonic()]
    up = Pump(client, upstream, "client", "upstream", activity)
    down = Pump(upstream, client, "upstream", "client", activity)
    greenlets = [gevent.spawn(up.run), gevent.spawn(down.run)]
    ended = "closed"
    try:
        while True:
            failure = up.failure or down.failure
            if failure is not None:
                ended = f"{failure.side}_reset"
                reset(upstream if failure.side == "client" else client)
                break
            alive = [g for g in greenlets if not g.dead]
            if not alive:
                break
            remaining = activity[0] + idle - time.monotonic()
            if remaining <= 0:
                ended = "idle_timeout"
                break
            gevent.wait(alive, timeout=remaining, count=1)
    finally:
        gevent.killall([g for g in greenlets if not g.dead], block=True)
    return RelayResult(up.moved, down.moved, ended)


def shutdown_write(sock: gsocket.socket) -> None:
    """Half-close: tell the peer no more bytes come, keep reading its answer."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        if exc.errno not in (errno.ENOTCONN, errno.EBADF, errno.EPIPE):
            raise


def reset(sock: gsocket.socket) -> None:
    """Close with RST rather than FIN, so the peer sees the transfer was cut short."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass
    sock.close()


def describe(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__).lower() if exc.errno else str(exc)
