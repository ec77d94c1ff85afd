"""A pool of pipes (for splice), lent only while bytes are in flight so that idle connections
hold none. A process relays one chunk at a time per connection, so a small pool serves
thousands of connections."""

from __future__ import annotations

import contextlib
import fcntl
import os

#: Free pipes kept for reuse; more than this are closed when given back.
KEEP = 256
PIPE_SIZE = 256 * 1024


class PipePool:
    def __init__(self) -> None:
        self.free: list[tuple[int, int]] = []
        self.lent = 0

    def take(self) -> tuple[int, int]:
        """A pipe; OSError (EMFILE, ...) when none is free and no new one can be made."""
        if self.free:
            self.lent += 1
            return self.free.pop()
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.lent += 1
        with contextlib.suppress(OSError):  # the default size works too
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        return read_end, write_end

    def give_back(self, pipe: tuple[int, int]) -> None:
        """Return an EMPTY pipe for reuse."""
        self.lent -= 1
        if len(self.free) < KEEP:
            self.free.append(pipe)
        else:
            self._close(pipe)

    def close(self, pipe: tuple[int, int]) -> None:
        """Drop a pipe that may still hold bytes (its connection failed)."""
        self.lent -= 1
        self._close(pipe)

    @staticmethod
    def _close(pipe: tuple[int, int]) -> None:
        os.close(pipe[0])
        os.close(pipe[1])
