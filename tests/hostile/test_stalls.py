"""Issue 14: no client keeps a worker. Hostile clients trickle bytes one per packet; honest
clients of the same (single) worker must still be served promptly, and each hostile connection
ends with its reason in the log. Margins are generous: these are not benchmarks (bench/ has the
figures), they catch a worker that stalls for seconds."""

from __future__ import annotations

import re
import statistics
import time

import pytest

from tests.hostile.clients import Trickler, endless_header, huge_tls_record, many_short_headers, time_to_first_byte
from tests.support.backends import TagServer
from tests.support.net import free_port
from tests.support.passthru_process import PassthruProcess

CASES = {
    "many short headers": many_short_headers,
    "one endless header": endless_header,
    "huge TLS record": huge_tls_record,
}
#: Honest time to first byte allowed under attack (the target in bench is 100 ms at p99).
HONEST_P99_LIMIT = 0.5
MAX_BLOCKING_SECONDS = 0.1
BLOCKED = "appears to be blocked"  # what gevent's monitor writes to stderr


def config(port: int, backend: str) -> str:
    return f"""
listen: [127.0.0.1:{port}]
workers: 1
timeouts: {{identify: 4s}}
routes:
  - name: web
    match: {{protocol: http, host: honest.test}}
    to: {backend}
default: reject
"""


@pytest.mark.parametrize("hostile", [1, 20], ids=["one", "twenty"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_trickle_does_not_stall_honest_clients(tmp_path, monkeypatch, case, hostile):
    # gevent's monitor thread reports any greenlet that keeps the hub for longer than this.
    monkeypatch.setenv("GEVENT_MONITOR_THREAD_ENABLE", "true")
    monkeypatch.setenv("GEVENT_MAX_BLOCKING_TIME", str(MAX_BLOCKING_SECONDS))
    port = free_port()
    with (
        TagServer("web") as backend,
        PassthruProcess(tmp_path, config(port, backend.address), [("127.0.0.1", port)]) as px,
    ):
        address = ("127.0.0.1", port)
        start_up = len(px.logs())  # loading the config may block the hub: it serves nobody yet
        attackers = [Trickler(address, CASES[case]()) for _ in range(hostile)]
        for attacker in attackers:
            attacker.thread.start()
        samples = []
        while any(a.thread.is_alive() for a in attackers) and len(samples) < 400:
            samples.append(time_to_first_byte(address, "honest.test"))
        for attacker in attackers:
            attacker.thread.join(timeout=30)
        samples.sort()
        p99 = samples[int(len(samples) * 0.99) - 1] if len(samples) >= 10 else max(samples)
        assert p99 < HONEST_P99_LIMIT, (
            f"{case} x{hostile}: honest p50={statistics.median(samples) * 1000:.1f}ms p99={p99 * 1000:.1f}ms "
            f"over {len(samples)} requests"
        )
        hostile_ends = wait_for_ends(px, hostile)
        assert set(hostile_ends) <= HOSTILE_ENDS, f"{case}: hostile connections ended {hostile_ends}"
        under_attack = px.logs()[start_up:]
        if BLOCKED in under_attack:
            report = under_attack[under_attack.index(BLOCKED) :].split("Info:")[0]
            pytest.fail(f"{case} x{hostile}: the hub was blocked: {report}")
        assert "Traceback" not in px.logs()


#: How a hostile connection may end: closed once its CPU budget is spent, or refused by
#: ``default: reject`` once the identifiers decided (byte limit, header cap).
HOSTILE_ENDS = {"identify_budget", "rejected"}


def wait_for_ends(px: PassthruProcess, count: int) -> list[str]:
    """The end reasons of the connections that were not routed, but for the start-up probe (the hostile ones;
    the start-up probe sends nothing)."""
    deadline = time.monotonic() + 15
    while True:
        ends = re.findall(r"route=- \S+ up=\d+ down=\d+ duration=\S+ end=(?!client_closed)(\w+)", px.logs())
        if len(ends) >= count or time.monotonic() > deadline:
            assert len(ends) == count, f"expected {count} hostile log lines, got {ends}:\n{px.logs()[-3000:]}"
            return ends
        time.sleep(0.1)
