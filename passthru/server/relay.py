"""Copy bytes both ways until both directions are done, honouring half-close.

The relay runs on the hub's io watcher callbacks, not in a greenlet: once a connection is
identified and dialed, its handler greenlet ends and an idle relayed connection holds no
greenlet, no stack, no buffer and no pipe — just two sockets and this small object. Bytes
are read into one scratch buffer of the process and written out in the same callback (a copy of
what the destination did not take is kept); once a read fills that buffer the direction is bulk
and moves with ``os.splice`` through a pipe taken from a pool only while bytes are in flight
(zero-copy on Linux; ``PASSTHRU_RELAY=copy`` or a shortage of descriptors keep copying). Most
connections move a few KiB, for which a read and a write cost no more than two splices and no
pipe. On end-of-file
from one side the other side's write half is shut down (half-close) and the opposite direction
keeps going. A reset on one side is passed on as a reset to the other (SO_LINGER 0, applied by
the connection, which owns and closes both sockets), so a truncated transfer never looks like a
clean end. Idle timeouts are enforced by a periodic sweep (``passthru.server.counting``) rather
than a timer per connection.

The relay also writes the connection's first bytes to the upstream (the PROXY header and the
prefix read while identifying): its ``preamble``, sent before anything else, so a backend that
is slow to take them never blocks the worker and one that resets while they go out is an early
failure like any other.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gevent import get_hub

from passthru.server.lifecycle import End
from passthru.server.pools import PipePool
from passthru.server.watchers import READ, WRITE, dispose, io

CHUNK = 256 * 1024
#: Bytes one direction may move per wake-up before letting other connections run (fairness).
TURN_BUDGET = 1024 * 1024
LINGER_RESET = struct.pack("ii", 1, 0)
EOF_HELD = 3  # the source ended, and the direction was asked to hold that back (see Relay)
SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
#: ``PASSTHRU_RELAY=copy`` forces the portable copy path (tests run the relay both ways).
USE_SPLICE = hasattr(os, "splice") and os.environ.get("PASSTHRU_RELAY", "splice") != "copy"
WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK)

PIPES = PipePool()
#: What every connection of the process reads into, and writes from, within one callback.
SCRATCH_SIZE = 64 * 1024
SCRATCH_BUFFER = bytearray(SCRATCH_SIZE)
SCRATCH = memoryview(SCRATCH_BUFFER)


class PeerReset(Exception):
    """The side named ``side`` reset the connection or failed hard while we used it."""

    def __init__(self, side: str, reason: str) -> None:
        super().__init__(f"{side}: {reason}")
        self.side = side
        self.reason = reason


@dataclass(slots=True)
class Direction:
    """One direction: source -> (the scratch buffer, or a pipe once it is bulk) -> destination."""

    source: socket.socket
    destination: socket.socket
    source_side: str
    destination_side: str
    use_splice: bool  # may go bulk (splice through a pipe) when a read fills the scratch buffer
    moved: int = 0
    done: bool = False
    eof: bool = False
    hold_eof: bool = False  # report the source's end instead of half-closing the destination
    bulk: bool = False  # a read filled the scratch buffer: splice from now on
    pipe: tuple[int, int] | None = None
    in_pipe: int = 0
    #: Bytes read and not yet written: a view of the scratch buffer within one ``step``, else
    #: bytes of their own (``keep``).
    pending: memoryview | None = field(default=None, repr=False)
    read_watcher: object = field(default=None, repr=False)
    write_watcher: object = field(default=None, repr=False)
    #: Bytes to write before anything read from the source (not counted in ``moved``).
    preamble: memoryview | None = field(default=None, repr=False)
    #: True once the other direction is over: ending this one then needs no half-close (the
    #: connection closes both sockets at once, which sends the FIN).
    last: bool = False

    def step(self) -> int:
        """Move what can move now. Returns READ or WRITE (what to wait for), or 0 (done, or
        out of budget for this turn: call again after yielding)."""
        if self.preamble is not None:
            # The client sent what it had (the prefix): wait for more rather than read nothing.
            return READ if self.write_preamble() else WRITE
        budget = TURN_BUDGET
        drained = False
        while budget > 0:
            if self.has_pending():
                written = self.write_pending()
                if written is None:
                    self.keep()
                    return WRITE
                self.moved += written
                budget -= written
                continue
            if self.eof:
                if self.hold_eof:
                    return EOF_HELD
                self.finish()
                return 0
            if drained:
                # The last read took less than it could: the source had nothing more, so wait
                # for it (level-triggered, so bytes or an end that came since wake us at once)
                # rather than spend a system call to learn so (HAProxy does the same).
                return READ
            got = self.read_some()
            if got is None:
                return READ
            if got == 0:
                self.eof = True
            drained = got < (CHUNK if self.pipe is not None else SCRATCH_SIZE)
        self.keep()
        return 0

    # -- waiting --------------------------------------------------------------------------
    def wait(self, need: int, pump: Callable[[Direction], None]) -> None:
        """Wait for what this direction needs next: its source readable (READ) or its
        destination writable (WRITE); 0 waits for nothing. Watchers are made when first needed
        (most connections never wait to write)."""
        if need != READ and self.read_watcher is not None:
            self.read_watcher.stop()
        if need != WRITE and self.write_watcher is not None:
            self.write_watcher.stop()
        if need == READ:
            if self.read_watcher is None:
                self.read_watcher = io(self.source.fileno(), READ)
            if not self.read_watcher.active:
                self.read_watcher.start(pump, self)
        elif need == WRITE:
            if self.write_watcher is None:
                self.write_watcher = io(self.destination.fileno(), WRITE)
            if not self.write_watcher.active:
                self.write_watcher.start(pump, self)

    def close_watchers(self) -> None:
        dispose(self.read_watcher)
        dispose(self.write_watcher)
        self.read_watcher = self.write_watcher = None

    # -- primitives -------------------------------------------------------------------------
    def write_preamble(self) -> bool:
        """Write the preamble: True once all of it is out, False if the destination is full."""
        assert self.preamble is not None
        try:
            n = self.destination.send(self.preamble)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise PeerReset(self.destination_side, describe(exc)) from exc
        self.preamble = self.preamble[n:] if n < len(self.preamble) else None
        return self.preamble is None

    def has_pending(self) -> bool:
        return self.in_pipe > 0 or self.pending is not None

    def read_some(self) -> int | None:
        """Read from the source: bytes read, 0 at EOF, None if none yet. Into the process's
        scratch buffer (what most connections move is a few KiB, and a read and a write cost
        no more than two splices), or, once a read has filled it, into a pipe (zero-copy)."""
        if self.bulk and self.pipe is None:
            try:
                self.pipe = PIPES.take()
            except OSError:  # no descriptors left for a pipe (EMFILE): this direction copies
                self.bulk = False
        try:
            if self.pipe is not None:
                n = os.splice(self.source.fileno(), self.pipe[1], CHUNK, flags=SPLICE_FLAGS)
                self.in_pipe = n
            else:
                n = self.source.recv_into(SCRATCH)
                if n:
                    self.pending = SCRATCH[:n]
                    if n == SCRATCH_SIZE and self.use_splice:
                        self.bulk = True
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
        try:
            if self.in_pipe:
                assert self.pipe is not None
                n = os.splice(self.pipe[0], self.destination.fileno(), self.in_pipe, flags=SPLICE_FLAGS)
                self.in_pipe -= n
                if self.in_pipe == 0:
                    self.release()
            else:
                assert self.pending is not None
                n = self.destination.send(self.pending)
                self.pending = self.pending[n:] if n < len(self.pending) else None
        except OSError as exc:
            if exc.errno in WOULD_BLOCK:
                return None
            raise PeerReset(self.destination_side, describe(exc)) from exc
        return n

    def keep(self) -> None:
        """Bytes still held when this step returns leave the scratch buffer (which the next
        read of any connection overwrites) for a copy of their own."""
        pending = self.pending
        if pending is not None and pending.obj is SCRATCH_BUFFER:
            self.pending = memoryview(bytes(pending))

    def release(self) -> None:
        """Give the pipe back once it holds nothing (an idle direction holds none)."""
        if self.pipe is not None and self.in_pipe == 0:
            PIPES.give_back(self.pipe)
            self.pipe = None

    def discard(self) -> None:
        """At the end of a failed relay: close a pipe that may still hold bytes."""
        if self.pipe is not None:
            if self.in_pipe:
                PIPES.close(self.pipe)
            else:
                PIPES.give_back(self.pipe)
            self.pipe = None
        self.pending = None

    def finish(self) -> None:
        if not self.last:
            shutdown_write(self.destination)
        self.done = True


@dataclass(slots=True)
class RelayResult:
    bytes_up: int  # from the client, beyond the preamble
    bytes_down: int
    ended: End  # CLOSED, IDLE_TIMEOUT, CLIENT_RESET, UPSTREAM_RESET, SHUTDOWN or ERROR
    reset: str | None = None  # "client" or "upstream": the side to close with a reset
    error: str | None = None  # what went wrong, when ``ended`` is ERROR


class Relay:
    """Both directions of one connection, driven by io watcher callbacks in the hub.

    Each direction owns two watchers: its source's READ and its destination's WRITE (the
    gevent sockets' own watchers, unused by anything else while the relay runs). It waits on
    exactly one of them at a time, so a slow reader stops its writer from reading more:
    backpressure, never buffering without bound.
    """

    __slots__ = ("client", "down", "ended", "idle", "last_activity", "on_done", "on_early_failure", "up", "upstream")

    def __init__(
        self,
        client: socket.socket,
        upstream: socket.socket,
        idle: float,
        on_done: Callable[[Relay, RelayResult], None],
        on_early_failure: Callable[[Relay, str], bool] | None = None,
        preamble: bytes = b"",
        upstream_watcher: object = None,
        client_watcher: object = None,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.idle = idle
        self.on_done = on_done
        self.up = Direction(client, upstream, "client", "upstream", USE_SPLICE)
        self.down = Direction(upstream, client, "upstream", "client", USE_SPLICE)
        if preamble:
            self.up.preamble = memoryview(preamble)
        if upstream_watcher is not None:  # an idle io watcher of the upstream's (its connect's): reused
            upstream_watcher.events = READ  # type: ignore[attr-defined]
            self.down.read_watcher = upstream_watcher
        if client_watcher is not None:  # the stopped READ watcher the client was identified with
            self.up.read_watcher = client_watcher
        self.last_activity = time.monotonic()
        self.ended: str | None = None
        #: Asked when the upstream fails before answering anything and before the client sent
        #: more than the prefix; returning True means the caller takes the client elsewhere.
        self.on_early_failure = on_early_failure
        self.down.hold_eof = on_early_failure is not None

    def start(self) -> None:
        """The client has just sent what it had (the prefix): its direction writes the preamble
        and then waits for more, rather than trying a read that would find nothing; the
        upstream, just connected, has said nothing yet either."""
        if self.up.preamble is not None:
            self.pump(self.up)
        else:
            self.up.wait(READ, self.pump)
        if self.ended is None:  # the upstream has only just connected: wait for its answer
            self.down.wait(READ, self.pump)

    def pump(self, direction: Direction) -> None:
        """Move what can move in one direction, then wait for what it needs next."""
        if self.ended is not None:
            return
        before = direction.moved
        try:
            need = direction.step()
        except PeerReset as failure:
            if failure.side == "upstream" and self.hand_back(f"reset the connection ({failure.reason})"):
                return
            if failure.side == "client":
                self.finish(End.CLIENT_RESET, reset="upstream")
            else:
                self.finish(End.UPSTREAM_RESET, reset="client")
            return
        except Exception as exc:  # never let a callback error escape into the hub
            self.finish(End.ERROR, error=f"{type(exc).__name__}: {exc}")
            return
        if direction.moved != before:
            self.last_activity = time.monotonic()
        if need == EOF_HELD:
            direction.hold_eof = False
            if self.hand_back("closed the connection before answering"):
                return
            direction.finish()
            need = 0
        direction.wait(need, self.pump)
        if need not in (READ, WRITE):
            if not direction.done:  # used this turn's budget: continue after others had theirs
                get_hub().loop.run_callback(self.pump, direction)
            elif self.up.done and self.down.done:
                self.finish(End.CLOSED)
            else:
                (self.down if direction is self.up else self.up).last = True

    def hand_back(self, reason: str) -> bool:
        """The upstream failed early: if nothing came back and the client sent nothing beyond
        the prefix, offer the client to ``on_early_failure`` (which may try another backend:
        the client would notice nothing). True when it was taken: this relay is then over."""
        if self.on_early_failure is None or self.down.moved or self.up.moved or self.up.has_pending():
            return False
        if self.up.eof:  # the backend had the whole request (the client's end too): its close is its answer
            return False
        if not self.on_early_failure(self, reason):
            return False
        self.stop("handed_back")
        return True

    def finish(self, ended: End, reset: str | None = None, error: str | None = None) -> None:
        """End the relay (idempotent): stop watching, free pipes, report to ``on_done``."""
        if self.ended is not None:
            return
        self.stop(ended)
        self.on_done(self, RelayResult(self.up.moved, self.down.moved, ended, reset, error))

    def stop(self, ended: str) -> None:
        """Stop and release the watchers, free pipes and buffers; the sockets stay open (the
        connection owns and closes them)."""
        self.ended = ended
        for direction in (self.up, self.down):
            direction.close_watchers()
            direction.discard()


def shutdown_write(sock: socket.socket) -> None:
    """Half-close: tell the peer no more bytes come, keep reading its answer."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        if exc.errno not in (errno.ENOTCONN, errno.EBADF, errno.EPIPE):
            raise


def reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN, so the peer sees the transfer was cut short."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    sock.close()


def describe(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0)
    return name.lower() if name else str(exc)
