"""Hooks called in separate forked processes (as workers do) are summed by ``/metrics``.

The parent plays the supervisor: it enables metrics and starts the admin server, then forks two
children that record, report, wait to be told to exit, and exit; the parent reaps them and
calls ``worker_exited``. Everything is read back over HTTP with prometheus-client's parser.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from passthru import metrics
from passthru.admin import AdminServer
from passthru.connlog import ConnectionRecord
from tests.observability.scrape import get, scrape


class Child:
    """A forked process running ``work()``; it stays alive until ``release()``."""

    def __init__(self, work: Callable[[], None], admin: AdminServer) -> None:
        self.reports_r, reports_w = os.pipe()
        release_r, self.release_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never return into pytest
            code = 1
            try:
                work()
                inherited = admin.server.socket.fileno() != -1
                os.write(reports_w, b"open" if inherited else b"done")
                os.read(release_r, 1)
                code = 0
            finally:
                os._exit(code)
        os.close(reports_w)
        os.close(release_r)
        self.released = False

    def report(self) -> bytes:
        return os.read(self.reports_r, 4)

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        os.write(self.release_w, b"x")
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        metrics.worker_exited(self.pid)


def serve_connections(count: int, *, up: int, down: int, still_open: int) -> Callable[[], None]:
    def work() -> None:
        metrics.started()
        for index in range(count + still_open):
            metrics.connection_opened()
            metrics.identified(0.0004)
            if index < count:
                record = ConnectionRecord(
                    id=f"w-{index}",
                    client="127.0.0.1:1",
                    listener="127.0.0.1:2",
                    protocol="ssh",
                    route="ssh",
                    upstream="127.0.0.1:22",
                    bytes_up=up,
                    bytes_down=down,
                )
                metrics.connection_closed(record)
        metrics.identify_timeout(0)
        metrics.unmatched("tls")
        metrics.upstream_failed("ssh", "127.0.0.1:22", "refused")
        metrics.upstream_failed("ssh", "127.0.0.1:22", "Connection refused by 127.0.0.1")  # not a reason word
        metrics.reload(True)
        metrics.identifier_error("greeting", "load")
        metrics.limit_hit("max_connections")

    return work


@contextmanager
def children(admin: AdminServer, *works: Callable[[], None]) -> Iterator[list[Child]]:
    started = [Child(work, admin) for work in works]
    try:
        yield started
    finally:
        for child in started:
            child.release()


def test_two_processes_are_summed_and_dead_ones_stop_counting_as_live(admin: AdminServer) -> None:
    assert get(admin.address, "/readyz")[0] == 503, "not ready before any worker has started"
    with children(
        admin,
        serve_connections(3, up=100, down=1000, still_open=2),
        serve_connections(2, up=10, down=20, still_open=1),
    ) as (first, second):
        assert first.report() == b"done" and second.report() == b"done", "the admin socket is closed in workers"
        live = scrape(admin.address)
        assert live.value("passthru_connections_active") == 3
        assert live.value("passthru_serving_processes") == 2
        assert get(admin.address, "/readyz")[0] == 200

        first.release()
        second.release()

    after = scrape(admin.address)
    ssh = {"route": "ssh", "protocol": "ssh", "ended": "closed"}
    assert after.value("passthru_connections_total", **ssh) == 5
    assert after.value("passthru_bytes_total", route="ssh", direction="up") == 3 * 100 + 2 * 10
    assert after.value("passthru_bytes_total", route="ssh", direction="down") == 3 * 1000 + 2 * 20
    assert after.value("passthru_identify_seconds_count") == 5 + 3
    assert after.value("passthru_identify_seconds_bucket", le="0.0005") == 8
    assert after.value("passthru_identify_seconds_bucket", le="0.00025") == 0
    assert after.value("passthru_identify_timeouts_total", prefix="empty") == 2
    assert after.value("passthru_unmatched_total", protocol="tls") == 2
    failures = "passthru_upstream_connect_failures_total"
    assert after.value(failures, route="ssh", backend="127.0.0.1:22", reason="refused") == 2
    assert after.value(failures, route="ssh", backend="127.0.0.1:22", reason="error") == 2
    assert after.label_values(failures, "reason") == {"refused", "error"}, "free text never becomes a label"
    assert after.value("passthru_reloads_total", result="ok") == 2
    assert after.value("passthru_user_identifier_errors_total", identifier="greeting", kind="load") == 2
    assert after.value("passthru_limit_rejections_total", kind="max_connections") == 2
    assert after.value("passthru_config_last_reload_success_timestamp_seconds") > 1.7e9
    # Exited workers: their counters stay, their live gauges are gone.
    assert after.value("passthru_connections_active") == 0
    assert after.value("passthru_serving_processes") == 0
    assert get(admin.address, "/readyz")[0] == 503


def test_readiness_needs_one_serving_process(admin: AdminServer) -> None:
    def started_then_draining() -> None:
        metrics.started()
        metrics.draining()

    with children(admin, metrics.started, started_then_draining) as (serving, drained):
        assert (serving.report(), drained.report()) == (b"done", b"done")
        assert scrape(admin.address).value("passthru_serving_processes") == 1
        assert get(admin.address, "/readyz")[0] == 200, "one worker still serves"
        serving.release()
        assert get(admin.address, "/readyz")[0] == 503, "the only serving worker is gone"


def test_a_rejected_reload_shows_in_the_success_gauge(admin: AdminServer) -> None:
    def rejected() -> None:
        metrics.started()
        metrics.reload(False)

    with children(admin, rejected, metrics.started) as (bad, good):
        assert (bad.report(), good.report()) == (b"done", b"done")
        view = scrape(admin.address)
        assert view.value("passthru_config_last_reload_successful") == 0, "the minimum over live workers"
        assert view.value("passthru_reloads_total", result="rejected") == 1
        bad.release()
        assert scrape(admin.address).value("passthru_config_last_reload_successful") == 1
