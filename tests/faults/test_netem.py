"""The fault relay itself: its model (exact, from a seeded generator) and a short run through the
two namespaces it joins (bytes arrive intact, in order, both ways, whatever the link did)."""

from __future__ import annotations

import hashlib
import itertools
import random
import socket
import threading

import pytest

from tests.faults.link import CLIENT, SERVER, FaultyLink, Unavailable, inside
from tests.faults.netem import FaultModel, Faults
from tests.support.net import recv_all


def test_the_model_applies_each_fault_at_its_rate() -> None:
    faults = Faults()
    model = FaultModel(faults, random.Random(7))
    size, gap = 1000, 0.004  # 2 Mbit/s offered: under the bottleneck, so nothing queues up
    delivered: list[tuple[float, float]] = []  # (sent, arrived)
    for i in range(20_000):
        delivered += [(i * gap, arrival) for arrival in model.arrivals(i * gap, size)]
    counts = model.counts
    assert counts["packets"] == 20_000 and counts["queue_full"] == 0
    assert 0.015 < counts["lost"] / 20_000 < 0.025, counts
    assert 0.007 < counts["duplicated"] / 20_000 < 0.013, counts
    assert 0.04 < counts["reordered"] / 20_000 < 0.06, counts
    assert len(delivered) == 20_000 - counts["lost"] + counts["duplicated"]
    serialisation = size * 8 / faults.rate
    delays = sorted(arrived - sent - serialisation for sent, arrived in delivered)
    undelayed = [d for d in delays if d < 1e-9]
    assert len(undelayed) >= counts["reordered"] - counts["lost"]  # reordered ones skip the delay
    delayed = delays[len(undelayed) :]
    assert delayed[0] >= faults.delay - faults.jitter - 1e-9 and delayed[-1] <= faults.delay + faults.jitter + 1e-9
    overtaken = sum(1 for (_, a), (_, b) in itertools.pairwise(delivered) if b < a)
    assert overtaken > 0.05 * len(delivered), "jitter and reordering make packets overtake each other"


def test_the_bottleneck_paces_packets_and_drops_at_the_tail() -> None:
    faults = Faults(loss=0, reorder=0, duplicate=0, jitter=0, queue=0.0201)  # room for 10 waiting
    model = FaultModel(faults, random.Random(1))
    size = 1250  # 2 ms each at 5 Mbit/s
    arrivals = [model.arrivals(0.0, size) for _ in range(200)]  # a burst, all at once
    kept = [a[0] for a in arrivals if a]
    assert all(abs((b - a) - 0.002) < 1e-9 for a, b in itertools.pairwise(kept)), "one every 2 ms"
    assert len(kept) == 11, "the first at once, 10 more wait up to `queue` seconds; the rest is dropped"
    assert model.counts["queue_full"] == 200 - len(kept)


def test_bytes_cross_the_faulty_link_intact_both_ways() -> None:
    """256 KiB up and the sha256 and 256 KiB down, through the relay between two namespaces."""
    try:
        link = FaultyLink().__enter__()
    except Unavailable as exc:
        pytest.skip(str(exc))
    up = random.Random(1).randbytes(256 * 1024)
    try:
        with inside(link.server):
            listener = socket.create_server((SERVER, 0))
        with inside(link.client):
            client = socket.socket()
        received: list[bytes] = []

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(60)
                received.append(recv_all(conn))
                conn.sendall(hashlib.sha256(received[0]).digest() + received[0][::-1])

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        with client:
            client.settimeout(60)
            client.connect((SERVER, listener.getsockname()[1]))
            assert client.getsockname()[0] == CLIENT
            client.sendall(up)
            client.shutdown(socket.SHUT_WR)
            back = recv_all(client)
        server.join(timeout=60)
        listener.close()
    finally:
        link.close()
    assert received == [up]
    assert back == hashlib.sha256(up).digest() + up[::-1]
    for direction, counts in link.report.items():
        assert counts["packets"] > 100, (direction, counts)  # it did carry the transfer
