"""``make soak-faults``: the soak through a lossy, slow, reordering network (opt-in).

The clients of ``tests/hardening/soak.py`` (five protocols, sha256 of every byte at both ends)
run in one network namespace; Passthru (two workers) and the backends in another; between them
the fault relay of ``netem.py``: 20 ms ± 10 ms delay, 2 % loss, 5 % reorder, 1 % duplicate and a
5 Mbit/s bottleneck, each way. TCP must repair all of it: every connection ends with its bytes
intact and reaches the right backend, none is reset, none lost; Passthru's log has one line per
connection, all ``end=closed``, and counts exactly the bytes sent.

Not part of ``make test`` (this file does not match ``test_*.py``): a few minutes of traffic
through a 5 Mbit/s link. ``PASSTHRU_FAULTS_CONNECTIONS`` (default 800) and
``PASSTHRU_FAULTS_CONCURRENCY`` (default 40) scale it. The figures are printed at the end.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import Counter
from pathlib import Path

from tests.faults.link import CLIENT, SERVER, FaultyLink, inside
from tests.faults.netem import Faults
from tests.hardening.figures import figure
from tests.hardening.helpers import connection_lines, wait_lines, wait_serving
from tests.hardening.soak import IDENTIFIER, KINDS, Tally, one_client, routes, serve_backend
from tests.support.net import BACKLOG
from tests.support.passthru_process import PassthruProcess, tracebacks

CONNECTIONS = int(os.environ.get("PASSTHRU_FAULTS_CONNECTIONS", "800"))
CONCURRENCY = int(os.environ.get("PASSTHRU_FAULTS_CONCURRENCY", "40"))
BOUND_SECONDS = 600  # a bound on the run, not a target
WORKERS = 2
PORT = 8443


async def load(listeners: dict[str, socket.socket], tally: Tally) -> float:
    """The backends on their listening sockets, and every client, ``CONCURRENCY`` at a time."""
    backends = [await serve_backend(kind, sock) for kind, sock in listeners.items()]
    gate = asyncio.Semaphore(CONCURRENCY)

    async def gated(index: int) -> None:
        async with gate:
            await one_client(PORT, index, 3, tally, host=SERVER, sources=[CLIENT])

    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(gated(i) for i in range(CONNECTIONS))), BOUND_SECONDS)
    finally:
        for server in backends:
            server.close()
    return time.monotonic() - started


def test_soak_through_a_lossy_slow_reordering_network(tmp_path: Path) -> None:
    (tmp_path / "identifiers").mkdir()
    (tmp_path / "identifiers" / "soakproto.py").write_text(IDENTIFIER)
    tally = Tally()
    with FaultyLink() as link:
        with inside(link.server):  # the backends listen in the server namespace
            listeners = {kind: socket.create_server(("127.0.0.1", 0), backlog=BACKLOG) for kind in KINDS}
        ports = {kind: sock.getsockname()[1] for kind, sock in listeners.items()}
        config = (
            f"listen: [{SERVER}:{PORT}]\nworkers: {WORKERS}\n"
            f"timeouts: {{identify: 30s, connect: 10s, idle: 120s}}\n{routes(ports)}"
        )
        proc = PassthruProcess(tmp_path, config, [], wrapper=link.exec_prefix(link.server))
        with proc:
            wait_serving(proc, WORKERS)
            with inside(link.client):  # every client socket is created in the client namespace
                seconds = asyncio.run(load(listeners, tally))
            wait_lines(proc, CONNECTIONS, 60)
        log = proc.logs()
    lines = connection_lines(log)
    ends = Counter(line["end"] for line in lines)
    done = tally.ok + tally.corrupted + tally.lost + tally.reset
    figure(
        "soak-faults",
        f"{Faults().describe()}, each way; {done} connections ({CONCURRENCY} concurrent, 5 protocols, "
        f"{WORKERS} workers) in {seconds:.1f}s: up {tally.bytes_up / 2**20:.1f} MiB, down "
        f"{tally.bytes_down / 2**20:.1f} MiB ({(tally.bytes_up + tally.bytes_down) * 8 / seconds / 1e6:.2f} Mbit/s); "
        f"intact {tally.ok}, corrupted {tally.corrupted}, lost {tally.lost}, reset {tally.reset}; "
        f"log ends {dict(ends)}",
    )
    figure("soak-faults", f"link: {link.describe()}")
    assert tally.corrupted == 0 and tally.lost == 0 and tally.reset == 0, "\n".join(tally.failures[:20])
    assert tally.ok == CONNECTIONS
    assert len(lines) == CONNECTIONS and set(ends) == {"closed"}, ends
    assert sum(int(line["up"]) for line in lines) == tally.bytes_up, "the log counts every byte sent"
    assert sum(int(line["down"]) for line in lines) == tally.bytes_down
    assert tracebacks(log) == 0
    # the faults really happened, in both directions
    for counts in link.report.values():
        assert counts["lost"] > 0 and counts["reordered"] > 0 and counts["duplicated"] > 0, link.report
