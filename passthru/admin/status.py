"""``/status.json``: the running instance at a glance, summed over worker processes.

Two sources, both already there for other reasons, so no connection does extra work for it:

* the Prometheus multiprocess files (``/metrics`` sums the same files): connections opened, open,
  per route and per protocol, identify times and timeouts, backend failures, identifier errors;
* each serving process's ``status-<pid>.json`` (``worker_state.py``): the routes of the config it
  serves, its last reload, identifier versions and errors, backends it holds down, identifying.

:class:`History` samples the counters every second in a background thread of the admin's process,
so rates ("per second") and recent failures ("in the last 5 minutes") are there the moment the
page opens. Backend up/down: each worker learns on its own (``server/backends.py``); a backend is
``up`` only while no live worker holds it down, and ``down_workers`` says how many do.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from passthru import __version__
from passthru.metrics.files import STATUS_PREFIX

#: How often :class:`History` samples, and how far back it remembers.
SAMPLE_SECONDS = 1.0
KEEP_SECONDS = 300.0
#: "per second" figures are averaged over this window; "recent" failures count over KEEP_SECONDS.
RATE_WINDOW = 10.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def read_samples(registry: CollectorRegistry) -> Samples:
    """Every sample of the registry: (name, sorted labels) -> value."""
    found: Samples = {}
    for family in registry.collect():
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            found[key] = found.get(key, 0.0) + sample.value
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (n, lbl), value in samples.items() if n == name and wanted <= set(lbl))


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    sums: dict[str, float] = {}
    for (n, labels), value in samples.items():
        if n == name:
            key = dict(labels).get(label)
            if key is not None:
                sums[key] = sums.get(key, 0.0) + value
    return sums


def counters(samples: Samples) -> dict[str, float]:
    """The running totals :class:`History` remembers, by a flat key."""
    flat = {"opened": total(samples, "passthru_connections_opened_total")}
    for route, value in by_label(samples, "passthru_connections_total", "route").items():
        flat[f"route:{route}"] = value
    for route, value in by_label(samples, "passthru_route_connections_open", "route").items():
        flat[f"route:{route}"] = flat.get(f"route:{route}", 0.0) + value
    for protocol, value in by_label(samples, "passthru_connections_total", "protocol").items():
        flat[f"protocol:{protocol}"] = value
    for (name, labels), value in samples.items():
        if name == "passthru_upstream_connect_failures_total":
            lbl = dict(labels)
            key = f"failures:{lbl.get('route')}|{lbl.get('backend')}"
            flat[key] = flat.get(key, 0.0) + value
    return flat


class History:
    """Totals sampled every :data:`SAMPLE_SECONDS` for :data:`KEEP_SECONDS` (a daemon thread)."""

    def __init__(self, registry: Callable[[], CollectorRegistry], clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.clock = clock
        self.points: deque[tuple[float, dict[str, float]]] = deque(maxlen=int(KEEP_SECONDS / SAMPLE_SECONDS) + 1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> History:
        self._thread = threading.Thread(target=self._run, name="passthru-status-history", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(Exception):  # a metrics file being replaced: next second
                self.sample()
            self._stop.wait(SAMPLE_SECONDS)

    def sample(self, samples: Samples | None = None) -> None:
        if samples is None:
            samples = read_samples(self.registry())
        self.points.append((self.clock(), counters(samples)))

    def rate(self, key: str, now_value: float, now: float, window: float = RATE_WINDOW) -> float:
        """Per second over about ``window`` seconds ending now."""
        base = self._at_or_before(now - window)
        if base is None:
            return 0.0
        elapsed = now - base[0]
        return max(0.0, now_value - base[1].get(key, 0.0)) / elapsed if elapsed > 0 else 0.0

    def increase(self, key: str, now_value: float) -> float:
        """How much ``key`` grew over the remembered period."""
        if not self.points:
            return 0.0
        return max(0.0, now_value - self.points[0][1].get(key, 0.0))

    def series(self, key: str) -> list[list[float]]:
        """``[[unix time, per second], ...]`` between consecutive samples: the page's chart."""
        points = list(self.points)
        out = []
        for (t0, a), (t1, b) in itertools.pairwise(points):
            if t1 > t0:
                out.append([round(t1, 3), round(max(0.0, b.get(key, 0.0) - a.get(key, 0.0)) / (t1 - t0), 3)])
        return out

    def _at_or_before(self, when: float) -> tuple[float, dict[str, float]] | None:
        chosen = None
        for point in self.points:
            if point[0] <= when or chosen is None:
                chosen = point
            else:
                break
        return chosen


def read_states(directory: Path, alive: Callable[[int], bool] | None = None) -> list[dict[str, Any]]:
    """The serving processes' ``status-<pid>.json``, live processes only, by worker index."""
    alive = alive or pid_alive
    states = []
    for path in directory.glob(f"{STATUS_PREFIX}*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed meanwhile
        if isinstance(state, dict) and alive(int(state.get("pid", 0))):
            states.append(state)
    return sorted(states, key=lambda s: (s.get("worker", 0), s.get("pid", 0)))


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build(samples: Samples, states: list[dict[str, Any]], history: History, now: float) -> dict[str, Any]:
    """The ``/status.json`` document (keys documented in README, "Status page")."""
    flat = counters(samples)
    newest = max(states, key=lambda s: (s.get("reload") or {}).get("at", 0), default={})
    backends = merge_backends(states)
    routes = [route_status(route, samples, flat, backends, history, now) for route in newest.get("routes", [])]
    protocol_open = by_label(samples, "passthru_protocol_connections_open", "protocol")
    finished = {key.split(":", 1)[1]: value for key, value in flat.items() if key.startswith("protocol:")}
    protocols = [
        {
            "name": name,
            "open": int(protocol_open.get(name, 0)),
            "total": int(finished.get(name, 0)),
            "per_second": round(history.rate(f"protocol:{name}", finished.get(name, 0.0), now), 3),
        }
        for name in sorted(finished.keys() | protocol_open.keys())
    ]
    return {
        "version": __version__,
        "generated": now,
        "connections": {
            "open": int(total(samples, "passthru_connections_active")),
            "identifying": sum(int(s.get("identifying", 0)) for s in states),
            "total": int(flat["opened"]),
            "per_second": round(history.rate("opened", flat["opened"], now), 3),
        },
        "routes": routes,
        "default": newest.get("default"),
        "on_timeout": newest.get("on_timeout"),
        "protocols": protocols,
        "identify": identify_status(samples),
        "unmatched": int(total(samples, "passthru_unmatched_total")),
        "identifiers": identifier_status(newest.get("identifiers", []), samples, states),
        "reload": reload_status(states),
        "workers": [{"pid": s["pid"], "worker": s.get("worker", 0), "started": s.get("started")} for s in states],
        "history": {
            "interval": SAMPLE_SECONDS,
            "span": KEEP_SECONDS,
            "connections_per_second": history.series("opened"),
        },
    }


def merge_backends(states: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each backend as all workers see it: down in any worker is ``up: false``."""
    merged: dict[str, dict[str, Any]] = {}
    for state in states:
        for name, backend in (state.get("backends") or {}).items():
            entry = merged.setdefault(name, {"up": True, "down_workers": 0, "why": None, "open": 0})
            entry["open"] += int(backend.get("open", 0))
            if not backend.get("up", True):
                entry["up"] = False
                entry["down_workers"] += 1
                entry["why"] = entry["why"] or backend.get("why")
    return merged


def route_status(
    route: dict[str, Any],
    samples: Samples,
    flat: dict[str, float],
    backends: dict[str, dict[str, Any]],
    history: History,
    now: float,
) -> dict[str, Any]:
    name = route["name"]
    key = f"route:{name}"
    routed = flat.get(key, 0.0)
    shown = []
    for address in route.get("backends", []):
        seen = backends.get(address, {"up": True, "down_workers": 0, "why": None, "open": 0})
        failures = flat.get(f"failures:{name}|{address}", 0.0)
        shown.append(
            {
                "address": address,
                **seen,
                "failures": int(failures),
                "recent_failures": int(history.increase(f"failures:{name}|{address}", failures)),
            }
        )
    return {
        "name": name,
        "protocol": route.get("protocol"),
        "match": route.get("match", {}),
        "balance": route.get("balance"),
        "open": int(total(samples, "passthru_route_connections_open", route=name)),
        "total": int(routed),
        "per_second": round(history.rate(key, routed, now), 3),
        "backends": shown,
    }


def identify_status(samples: Samples) -> dict[str, Any]:
    """The identify-time histogram as counts per bucket (not cumulative), and the timeouts."""
    cumulative = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == "passthru_identify_seconds_bucket"
    )
    buckets, previous = [], 0.0
    for le, value in cumulative:  # the last bucket, +Inf in Prometheus, is "le": null (JSON has no infinity)
        buckets.append({"le": le if le != float("inf") else None, "count": int(value - previous)})
        previous = value
    count = total(samples, "passthru_identify_seconds_count")
    return {
        "count": int(count),
        "seconds_sum": round(total(samples, "passthru_identify_seconds_sum"), 6),
        "buckets": buckets,
        "p50": quantile(cumulative, count, 0.5),
        "p99": quantile(cumulative, count, 0.99),
        "timeouts": {
            "empty": int(total(samples, "passthru_identify_timeouts_total", prefix="empty")),
            "partial": int(total(samples, "passthru_identify_timeouts_total", prefix="partial")),
        },
    }


def quantile(cumulative: list[tuple[float, float]], count: float, q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (None without observations)."""
    if count <= 0:
        return None
    for le, value in cumulative:
        if value >= q * count:
            return le if le != float("inf") else None
    return None


SEVERITY = {"active": 0, "rejected": 1, "disabled": 2}


def identifier_status(
    identifiers: list[dict[str, Any]], samples: Samples, states: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The newest process's identifiers, each as its worst state in any worker (a file that one
    worker rejected or disabled shows so), with errors summed over all workers."""
    errors = by_label(samples, "passthru_user_identifier_errors_total", "identifier")
    worst: dict[str, dict[str, Any]] = {}
    for state in states:
        for entry in state.get("identifiers", []):
            seen = worst.get(entry["name"])
            if seen is None or SEVERITY.get(entry.get("status"), 0) > SEVERITY.get(seen.get("status"), 0):
                worst[entry["name"]] = entry
    return [{**worst.get(e["name"], e), "errors": int(errors.get(e["name"], 0))} for e in identifiers]


def reload_status(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The latest (re)load over all workers; ``ok`` only when every worker's last one succeeded."""
    reloads = [s["reload"] for s in states if s.get("reload")]
    if not reloads:
        return {"at": None, "ok": None, "error": None}
    failed = [r for r in reloads if not r.get("ok")]
    return {
        "at": max(r.get("at") or 0 for r in reloads),
        "ok": not failed,
        "error": failed[0].get("error") if failed else None,
    }
