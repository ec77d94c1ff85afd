"""Microbenchmark: the CPU one connection's identification costs, with no sockets (issue 11).

Times what the server does per connection once the first read is in: a fresh ``Identification``
over the prepared built-ins, fed that read. Each case runs ``--rounds`` rounds of ``--number``
connections and prints the median CPU time per connection, and with ``--by-identifier`` what each
candidate left by the prefilter costs on its own (a fresh session fed the same bytes).

    .venv/bin/python bench/identify_micro.py [--rounds 7] [--number 20000] [--by-identifier]

Not a test: timings depend on the machine; compare runs on one machine only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from passthru.identify import BUILTINS
from passthru.identify.engine import Identification, Prepared, Preparing

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus"

#: What wrk sends in ``make bench`` (connrate), and the brief's TLS opening: a record header,
#: a ClientHello's header and version, then zeros (the record is 4 bytes short: still waiting).
CASES: dict[str, bytes] = {
    "http request (wrk)": b"GET / HTTP/1.1\r\nHost: bench.local\r\nConnection: close\r\n\r\n",
    "tls hello start": bytes.fromhex("16030100c8010000c40303") + bytes(190),
    "tls hello (curl)": (CORPUS / "tls" / "curl-https.bin").read_bytes(),
    "ssh banner": (CORPUS / "ssh" / "openssh.bin").read_bytes(),
}


def per_call(function: Callable[[], object], number: int, rounds: int) -> float:
    """The median over rounds of the CPU time one call takes, in microseconds (CPU time, not wall
    time: other work on the machine then slows the figure less than it delays it)."""
    samples = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(number):
            function()
        samples.append((time.thread_time() - start) / number * 1e6)
    return statistics.median(samples)


def connection(prepared: Prepared, data: bytes) -> Callable[[], object]:
    return lambda: Identification((), prepared=prepared).feed(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=20000, help="connections per round")
    parser.add_argument("--by-identifier", action="store_true", help="also time each identifier asked")
    args = parser.parse_args()
    prepared = Preparing()(BUILTINS)
    for name, data in CASES.items():
        decision = Identification((), prepared=prepared).feed(data)
        outcome = decision.protocol or f"waits for {decision.bytes_needed} bytes"
        cost = per_call(connection(prepared, data), args.number, args.rounds)
        print(f"{name:20s} {cost:6.2f} us  {outcome}")
        if args.by_identifier:
            after_match = False
            for identifier in prepared.prefilter.candidates(data):
                alone = per_call(lambda i=identifier, d=data: i.start()(d), args.number, args.rounds)
                note = "  (after the match: not asked)" if after_match else ""
                print(f"    {identifier.name:16s} {alone:6.2f} us{note}")
                after_match = after_match or identifier is decision.identifier


if __name__ == "__main__":
    main()
