"""A faulty network link in user space: a packet relay between two TUN devices.

This kernel has no ``sch_netem``, so the faults ``tc qdisc add ... netem`` would add are applied
here, to every IP packet that crosses between the two devices (one in each network namespace
the test creates), in both directions independently:

* a bottleneck: packets leave at ``rate`` bits per second, one after the other (a queue of at
  most ``queue`` seconds of backlog; a packet that would wait longer is dropped at the tail, as
  a router does);
* delay: ``delay`` ± ``jitter`` seconds, uniform, per packet (so packets also overtake each
  other, as with netem's jitter);
* reorder: a ``reorder`` share of packets skip the delay and overtake the ones queued before;
* loss: a ``loss`` share are dropped; duplicate: a ``duplicate`` share are delivered twice.

``FaultModel`` decides (pure: a seeded random generator and the clock passed in); ``run`` moves
the packets. Run as ``python -m tests.faults.netem --client-ns A --client-if tunA --server-ns B
--server-if tunB``: it creates both TUN devices (gone when it exits), prints ``ready``, relays
until SIGTERM, then prints its counters as one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import heapq
import itertools
import json
import os
import random
import select
import signal
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
MTU = 1500


@dataclass(frozen=True)
class Faults:
    """The issue's network: 20 ms ± 10 ms, 2 % loss, 5 % reorder, 1 % duplicate, 5 Mbit/s."""

    delay: float = 0.020
    jitter: float = 0.010
    loss: float = 0.02
    reorder: float = 0.05
    duplicate: float = 0.01
    rate: float = 5e6
    queue: float = 0.25

    def describe(self) -> str:
        return (
            f"delay {self.delay * 1000:.0f} ms ± {self.jitter * 1000:.0f} ms, loss {self.loss:.0%}, "
            f"reorder {self.reorder:.0%}, duplicate {self.duplicate:.0%}, {self.rate / 1e6:g} Mbit/s"
        )


@dataclass
class FaultModel:
    """One direction of the link: when (if ever) each packet arrives. ``counts`` keeps what it did."""

    faults: Faults
    rng: random.Random
    free_at: float = 0.0  # when the bottleneck has sent everything queued so far
    counts: Counter[str] = field(default_factory=Counter)

    def arrivals(self, now: float, size: int) -> list[float]:
        """The times at which a packet of ``size`` bytes entering at ``now`` comes out (none: lost)."""
        f = self.faults
        self.counts["packets"] += 1
        self.counts["bytes"] += size
        if self.rng.random() < f.loss:
            self.counts["lost"] += 1
            return []
        start = max(now, self.free_at)
        if start - now > f.queue:
            self.counts["queue_full"] += 1
            return []
        self.free_at = start + size * 8 / f.rate
        if self.rng.random() < f.reorder:
            self.counts["reordered"] += 1
            delay = 0.0
        else:
            delay = f.delay + self.rng.uniform(-f.jitter, f.jitter)
        arrival = self.free_at + delay
        if self.rng.random() < f.duplicate:
            self.counts["duplicated"] += 1
            return [arrival, arrival]
        return [arrival]


# -- the devices ---------------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd`` refers to."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def inside(namespace: str) -> Iterator[None]:
    """Run the block with this thread in network namespace ``namespace`` (``ip netns`` name):
    sockets created there belong to it for their whole life, wherever they are used later."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        setns(target)
        yield
    finally:
        setns(home)
        os.close(target)
        os.close(home)


def open_tun(name: str) -> int:
    """A new TUN device ``name`` (IP packets, no extra header); it lives as long as the fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


# -- the relay ------------------------------------------------------------------------------------
def run(a: int, b: int, models: dict[int, FaultModel], stop: list[bool]) -> None:
    """Relay packets between TUN fds ``a`` and ``b`` until ``stop[0]``; ``models[fd]`` decides the
    fate of packets read from ``fd``."""
    peer = {a: b, b: a}
    due: list[tuple[float, int, int, bytes]] = []  # (arrival, sequence, output fd, packet)
    sequence = itertools.count()
    poller = select.poll()
    for fd in (a, b):
        poller.register(fd, select.POLLIN)
    while not stop[0]:
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, out, packet = heapq.heappop(due)
            with contextlib.suppress(OSError):  # the device went down, or its queue is full
                os.write(out, packet)
        timeout = max(0.0, due[0][0] - time.monotonic()) * 1000 if due else 100
        for fd, _ in poller.poll(timeout):
            for _ in range(64):  # a burst, without starving the other device
                try:
                    packet = os.read(fd, MTU + 64)
                except BlockingIOError:
                    break
                for arrival in models[fd].arrivals(time.monotonic(), len(packet)):
                    heapq.heappush(due, (arrival, next(sequence), peer[fd], packet))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client-ns", required=True)
    parser.add_argument("--client-if", required=True)
    parser.add_argument("--server-ns", required=True)
    parser.add_argument("--server-if", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with inside(args.client_ns):
        client = open_tun(args.client_if)
    with inside(args.server_ns):
        server = open_tun(args.server_if)
    rng = random.Random(args.seed)
    models = {client: FaultModel(Faults(), rng), server: FaultModel(Faults(), rng)}
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    print("ready", flush=True)
    with contextlib.suppress(InterruptedError):
        run(client, server, models, stop)
    report = {"to_server": dict(models[client].counts), "to_client": dict(models[server].counts)}
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
