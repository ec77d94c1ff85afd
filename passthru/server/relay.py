"""Copy bytes both ways until both directions are done, honouring half-close.

One greenlet (the connection's own) drives both directions on the raw non-blocking file
descriptors, waking on the hub's io watchers; an idle connection therefore holds no extra
greenlet, no buffer and no pipe. Bytes move with ``os.splice`` through a pipe taken from a pool
only while they are in flight (zero-copy on Linux), or through a pooled buffer where splice is
not available. On end-of-file from one side the other side's write half is shut down
(half-close) and the opposite direction keeps going. When neither direction moves a byte for
``idle`` seconds the relay ends. A reset on one side is passed on as a reset to the other
(SO_LINGER 0), so a truncated transfer never looks like a clean end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import time
from dataclasses import dataclass, field

import gevent
from gevent import get_hub
from gevent import socket as gsocket
from gevent.hub import Waiter

from passthru.server.pools import BufferPool, PipePool

CHUNK = 64 * 1024
#: Bytes one direction may move per wake-up before letting other connections run (fairness).
TURN_BUDGET = 1024 * 1024
LINGER_RESET = struct.pack("ii", 1, 0)
READ, WRITE = 1, 2
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
#: ``PASSTHRU_RELAY=copy`` forces the portable copy path (tests run the relay both ways).
USE_SPLICE = hasattr(os, "splice") and os.environ.get("PASSTHRU_RELAY", "splice") != "copy"
WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK)

PIPES = PipePool()
BUFFERS = BufferPool(CHUNK)


class PeerReset(Exception):
    """The side named ``side`` reset the connection or failed hard while we used it."""

    def __init__(self, side: str, reason: str) -> None:
        super().__init__(f"{side}: {reason}")
        self.side = side
        self.reason = reason


@dataclass
class Direction:
    """One direction: source fd -> (pipe or buffer) -> destination fd."""

    source: gsocket.socket
    destination: gsocket.socket
    source_side: str
    destination_side: str
    use_splice: bool
    moved: int = 0
    done: bool = False
    eof: bool = False
    pipe: tuple[int, int] | None = None
    in_pipe: int = 0
    buffer: bytearray | None = None
    pending: memoryview | None = field(default=None, repr=False)

    def step(self) -> int:
        """Move what can move now. Returns READ or WRITE (what to wait for), or 0 (done, or
        out of budget for this turn: call again after yielding)."""
        budget = TURN_BUDGET
        while budget > 0:
            if self.has_pending():
                written = self.write_pending()
                if written is None:
                    return WRITE
                self.moved += written
                budget -= written
                continue
            if self.eof:
                self.finish()
                return 0
            got = self.read_some()
            if got is None:
                return READ
            if got == 0:
                self.eof = True
        return 0

    # -- splice or buffer primitives --------------------------------------------------------
    def has_pending(self) -> bool:
        return self.in_pipe > 0 if self.use_splice else self.pending is not None

    def read_some(self) -> int | None:
        """Read from the source into the pipe/buffer: bytes read, 0 at EOF, None if none yet."""
        src = self.source.fileno()
        try:
            if self.use_splice:
                if self.pipe is None:
                    self.pipe = PIPES.take()
                n = os.splice(src, self.pipe[1], CHUNK, flags=SPLICE_FLAGS)
                self.in_pipe = n
            else:
                if self.buffer is None:
                    self.buffer = BUFFERS.take()
                n = os.readv(src, [self.buffer])
                self.pending = memoryview(self.buffer)[:n] if n else None
        except OSError as exc:
            if exc.errno in WOULD_BLOCK:
                self.release()
                return None
            raise PeerReset(self.source_side, describe(exc)) from exc
        if n == 0:
            self.release()
        return n

    def write_pending(self) -> int | None:
        """Write what is held to the destination: bytes written, or None if it would block."""
        dst = self.destination.fileno()
        try:
            if self.use_splice:
                assert self.pipe is not None
                n = os.splice(self.pipe[0], dst, self.in_pipe, flags=SPLICE_FLAGS)
                self.in_pipe -= n
                if self.in_pipe == 0:
                    self.release()
            else:
                assert self.pending is not None
                n = os.write(dst, self.pending)
                self.pending = self.pending[n:] if n < len(self.pending) else None
                if self.pending is None:
                    self.release()
        except OSError as exc:
            if exc.errno in WOULD_BLOCK:
                return None
            raise PeerReset(self.destination_side, describe(exc)) from exc
        return n

    def release(self) -> None:
        """Give the pipe or buffer back once it holds nothing (an idle direction holds none)."""
        if self.pipe is not None and self.in_pipe == 0:
            PIPES.give_back(self.pipe)
            self.pipe = None
        if self.buffer is not None and self.pending is None:
            BUFFERS.give_back(self.buffer)
            self.buffer = None

    def discard(self) -> None:
        """At the end of a failed relay: close a pipe that may still hold bytes."""
        if self.pipe is not None:
            if self.in_pipe:
                PIPES.close(self.pipe)
            else:
                PIPES.give_back(self.pipe)
            self.pipe = None
        if self.buffer is not None:
            BUFFERS.give_back(self.buffer)
            self.buffer = None
            self.pending = None

    def finish(self) -> None:
        shutdown_write(self.destination)
        self.done = True


@dataclass
class RelayResult:
    bytes_up: int
    bytes_down: int
    ended: str  # "closed", "idle_timeout", "client_reset", "upstream_reset"


class Watchers:
    """The hub io watchers of one connection, made once and started only while waiting."""

    def __init__(self, client: gsocket.socket, upstream: gsocket.socket) -> None:
        loop = get_hub().loop
        self.loop = loop
        self.io = {
            (id(client), READ): loop.io(client.fileno(), READ),
            (id(client), WRITE): loop.io(client.fileno(), WRITE),
            (id(upstream), READ): loop.io(upstream.fileno(), READ),
            (id(upstream), WRITE): loop.io(upstream.fileno(), WRITE),
        }

    def wait(self, wanted: list[tuple[gsocket.socket, int]], timeout: float) -> bool:
        """Block this greenlet until one wanted event or the timeout; False on timeout."""
        waiter = Waiter()
        started = [self.io[(id(sock), event)] for sock, event in wanted]
        timer = self.loop.timer(timeout)
        try:
            for watcher in started:
                watcher.start(waiter.switch, True)
            timer.start(waiter.switch, False)
            return waiter.get()
        finally:
            for watcher in started:
                watcher.stop()
            timer.close()

    def close(self) -> None:
        for watcher in self.io.values():
            watcher.close()


def relay(client: gsocket.socket, upstream: gsocket.socket, idle: float) -> RelayResult:
    """Relay until both directions end, one side resets, or nothing moves for ``idle`` s."""
    use_splice = USE_SPLICE
    up = Direction(client, upstream, "client", "upstream", use_splice)
    down = Direction(upstream, client, "upstream", "client", use_splice)
    watchers = Watchers(client, upstream)
    last_activity = time.monotonic()
    ended = "closed"
    try:
        while not (up.done and down.done):
            before = up.moved + down.moved
            wanted: list[tuple[gsocket.socket, int]] = []
            busy = False
            for direction in (up, down):
                if direction.done:
                    continue
                need = direction.step()
                if need == READ:
                    wanted.append((direction.source, READ))
                elif need == WRITE:
                    wanted.append((direction.destination, WRITE))
                elif not direction.done:
                    busy = True  # used its turn's budget: let others run, then continue
            now = time.monotonic()
            if up.moved + down.moved != before:
                last_activity = now
            if busy:
                gevent.sleep(0)
                continue
            if not wanted:
                continue
            remaining = last_activity + idle - now
            woke = remaining > 0 and watchers.wait(wanted, remaining)
            if not woke and time.monotonic() - last_activity >= idle:
                ended = "idle_timeout"
                break
    except PeerReset as failure:
        ended = f"{failure.side}_reset"
        reset(upstream if failure.side == "client" else client)
    finally:
        watchers.close()
        up.discard()
        down.discard()
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
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


def describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    return name.lower() if name else str(exc)
