"""The arithmetic behind ``/status.json``, on made-up samples and clocks (no server): rates and
recent failures from the sampled history, backends merged over workers, the identify histogram,
and the reload verdict."""

from __future__ import annotations

from passthru.admin.status import History, identify_status, merge_backends, reload_status

OPENED = ("passthru_connections_opened_total", ())


def history_of(*points: tuple[float, float]) -> History:
    clock = iter(t for t, _ in points)
    history = History(registry=lambda: None, clock=lambda: next(clock))  # type: ignore[arg-type,return-value]
    for _, opened in points:
        history.sample({OPENED: opened})
    return history


def test_rate_uses_the_sample_about_ten_seconds_back() -> None:
    history = history_of(*((float(t), 5.0 * t) for t in range(0, 31)))  # 5 per second
    assert history.rate("opened", 150.0, now=30.0) == 5.0
    assert history.rate("opened", 150.0, now=30.0, window=2.0) == 5.0
    assert history.series("opened")[-1] == [30.0, 5.0]
    assert history.increase("opened", 150.0) == 150.0


def test_rate_without_history_is_zero_and_never_negative() -> None:
    assert History(registry=lambda: None).rate("opened", 3.0, now=1.0) == 0.0  # type: ignore[arg-type,return-value]
    history = history_of((0.0, 10.0), (1.0, 12.0))
    assert history.rate("opened", 4.0, now=11.0) == 0.0  # a counter that went back (a restart)


def test_backends_are_down_when_any_worker_holds_them_down() -> None:
    merged = merge_backends(
        [
            {"backends": {"a:1": {"up": True, "why": None, "open": 2}, "b:2": {"up": True, "open": 0}}},
            {"backends": {"a:1": {"up": False, "why": "connection refused", "open": 1}}},
        ]
    )
    assert merged["a:1"] == {"up": False, "down_workers": 1, "why": "connection refused", "open": 3}
    assert merged["b:2"]["up"] is True


def test_identify_histogram_counts_per_bucket_and_no_infinity() -> None:
    bucket = "passthru_identify_seconds_bucket"
    samples = {
        (bucket, (("le", "0.001"),)): 3.0,
        (bucket, (("le", "0.01"),)): 9.0,
        (bucket, (("le", "+Inf"),)): 10.0,
        ("passthru_identify_seconds_count", ()): 10.0,
        ("passthru_identify_timeouts_total", (("prefix", "empty"),)): 4.0,
    }
    result = identify_status(samples)
    assert result["buckets"] == [{"le": 0.001, "count": 3}, {"le": 0.01, "count": 6}, {"le": None, "count": 1}]
    assert (result["p50"], result["p99"]) == (0.01, None)
    assert result["timeouts"] == {"empty": 4, "partial": 0}


def test_reload_is_ok_only_when_every_worker_is() -> None:
    assert reload_status([]) == {"at": None, "ok": None, "error": None}
    states = [{"reload": {"at": 10.0, "ok": True}}, {"reload": {"at": 12.0, "ok": False, "error": "c.yaml:3:1: x"}}]
    assert reload_status(states) == {"at": 12.0, "ok": False, "error": "c.yaml:3:1: x"}
