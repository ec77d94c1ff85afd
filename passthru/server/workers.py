"""Several gevent worker processes sharing each listen port with SO_REUSEPORT.

The supervisor is deliberately plain (no gevent): it validates the config, forks the workers,
forwards SIGHUP/SIGTERM/SIGINT to them, and restarts a worker that dies unexpectedly (after a
short back-off, so a worker that cannot start does not spin). Each worker binds its own sockets;
the kernel spreads new connections across them, so every core accepts and relays.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable

from passthru import metrics
from passthru.server import notify

log = logging.getLogger("passthru.workers")

RESTART_BACKOFF = 1.0
POLL_SECONDS = 0.2


class Supervisor:
    """Forks ``count`` workers, each running ``work(index)`` and exiting with its return code."""

    def __init__(self, count: int, work: Callable[[int], int]) -> None:
        self.count = count
        self.work = work
        self.children: dict[int, int] = {}  # pid -> worker index
        self.stopping = False
        self.pending: list[int] = []
        self.channel = notify.WorkerChannel()  # workers' sd_notify messages come here
        self.readiness = notify.Aggregator(count)

    def spawn(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            code = 1
            try:
                self.channel.in_worker()
                code = self.work(index)
            finally:
                os._exit(code)
        self.children[pid] = index
        log.info("worker %d started (pid %d)", index, pid)

    def forward(self, signum: int, _frame: object = None) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
            self.readiness.stopping()
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        if signum == signal.SIGHUP:
            self.readiness.begin_reload(set(self.children))

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.forward)
        for index in range(self.count):
            self.spawn(index)
        restart_at: dict[int, float] = {}
        while self.children or (restart_at and not self.stopping):
            self.reap(restart_at)
            now = time.monotonic()
            for index, when in list(restart_at.items()):
                if self.stopping:
                    restart_at.clear()
                elif when <= now:
                    del restart_at[index]
                    self.spawn(index)
            self.relay_notifications(POLL_SECONDS)
        self.channel.close()
        log.info("all workers stopped")
        return 0

    def relay_notifications(self, timeout: float) -> None:
        """Wait up to ``timeout`` for workers' sd_notify messages and pass on what systemd needs."""
        with contextlib.suppress(InterruptedError):
            select.select([self.channel.supervisor_end], [], [], timeout)
        for pid, states in self.channel.messages():
            self.readiness.received(pid, states)

    def reap(self, restart_at: dict[int, float]) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            index = self.children.pop(pid, None)
            if index is None:
                continue
            metrics.worker_exited(pid)
            self.readiness.exited(pid)
            how = describe_status(status)
            if self.stopping:
                log.info("worker %d (pid %d) %s", index, pid, how)
            else:
                log.warning("worker %d (pid %d) %s; restarting in %.0fs", index, pid, how, RESTART_BACKOFF)
                restart_at[index] = time.monotonic() + RESTART_BACKOFF


def describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
