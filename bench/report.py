"""Turn per-round measurements into tables: medians, spread, ratios, and the targets of
issues 6, 11 and 14.

``Results`` maps figure -> target -> round -> metrics (the dicts figures.py returns). The same
markdown is printed and written to ``bench/results/latest.md``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from peers import CONNRATE, HOSTILE, LATENCY, MEMORY, SYSCALLS, THROUGHPUT

Results = dict[str, dict[str, dict[int, dict[str, float]]]]


# -- the machine ----------------------------------------------------------------------------------
def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0].strip() if out else "?"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str]:
    """What the numbers were measured on, and the versions of every peer."""
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "haproxy": _first_line(["haproxy", "-v"]),
        "sslh": _first_line(["/usr/sbin/sslh", "-V"]),
        "nginx": _first_line(["nginx", "-v"]),
        "iperf3": _first_line(["iperf3", "--version"]),
        "wrk": _first_line(["wrk", "--version"]),
    }


def source_revision(repo: Path) -> str:
    """The commit the tree is at, and whether it has uncommitted changes (read-only git)."""
    head = _first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    if head in ("not found", "?") or head.startswith("fatal"):
        return "unknown (not a git checkout)"
    try:
        status = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        status = ""
    return f"git {head}" + (" with uncommitted changes" if status.strip() else "")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- numbers --------------------------------------------------------------------------------------
def median_of(rounds: dict[int, dict[str, float]], key: str) -> float | None:
    values = [m[key] for m in rounds.values() if key in m]
    return statistics.median(values) if values else None


def med(results: Results, figure: str, target: str, key: str) -> float | None:
    """Median over rounds of ``key`` for ``target`` in ``figure`` (None when not measured)."""
    return median_of(results.get(figure, {}).get(target, {}), key)


def added_latency(results: Results, target: str, key: str) -> float | None:
    """Median over rounds of (target's percentile - direct's percentile in the same round), ms."""
    per_target = results.get(LATENCY, {})
    direct, mine = per_target.get("direct", {}), per_target.get(target, {})
    diffs = [mine[r][key] - direct[r][key] for r in mine if r in direct]
    return statistics.median(diffs) if diffs else None


def added_cell(results: Results, target: str, key: str) -> str:
    return "n/a" if target == "direct" else fmt(added_latency(results, target, key), "+.3f")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:{spec}}{suffix}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def spread(rounds: dict[int, dict[str, float]], key: str, spec: str) -> str:
    return ", ".join(f"{rounds[r][key]:{spec}}" for r in sorted(rounds))


def cpu_per_conn(rounds: dict[int, dict[str, float]]) -> str:
    user, system = median_of(rounds, "user_us"), median_of(rounds, "sys_us")
    return f"{user:.0f}+{system:.0f}" if user is not None and system is not None else "n/a"


# -- tables ---------------------------------------------------------------------------------------
@dataclass
class Column:
    title: str
    cell: Callable[[str], str]


def table(targets: list[str], columns: list[Column]) -> list[str]:
    lines = ["| target | " + " | ".join(c.title for c in columns) + " |"]
    lines.append("|---|" + "---|" * len(columns))
    for t in targets:
        lines.append(f"| {t} | " + " | ".join(c.cell(t) for c in columns) + " |")
    return lines


def figure_tables(results: Results, notes: dict[str, str]) -> list[str]:
    """One markdown table per figure measured."""
    out: list[str] = []

    def med(fig: str, t: str, key: str) -> float | None:
        return median_of(results[fig].get(t, {}), key)

    if THROUGHPUT in results:
        r = results[THROUGHPUT]
        ts = list(r)
        out += ["### 1. Bulk throughput (one iperf3 stream, receiver, Gbit/s)", ""]
        out += table(
            ts,
            [
                Column("median", lambda t: fmt(med(THROUGHPUT, t, "gbps"))),
                Column("rounds", lambda t: spread(r[t], "gbps", ".2f")),
                Column(
                    "proxy CPU %", lambda t: "n/a" if t == "direct" else fmt(med(THROUGHPUT, t, "cpu_percent"), ".0f")
                ),
                Column(
                    "x HAProxy",
                    lambda t: fmt_ratio(ratio(med(THROUGHPUT, t, "gbps"), med(THROUGHPUT, "haproxy", "gbps"))),
                ),
                Column(
                    "x direct",
                    lambda t: fmt_ratio(ratio(med(THROUGHPUT, t, "gbps"), med(THROUGHPUT, "direct", "gbps"))),
                ),
            ],
        )
        out.append("")
    if CONNRATE in results:
        r = results[CONNRATE]
        ts = list(r)
        out += ["### 2. New connections per second (wrk -t2 -c50, Connection: close, routed by Host)", ""]
        out += table(
            ts,
            [
                Column("median conn/s", lambda t: fmt(med(CONNRATE, t, "rate"), ".0f")),
                Column("rounds", lambda t: spread(r[t], "rate", ".0f")),
                Column("errors", lambda t: str(int(sum(m["errors"] for m in r[t].values())))),
                Column("proxy CPU µs/conn", lambda t: fmt(med(CONNRATE, t, "cpu_us"), ".0f")),
                Column("user+sys", lambda t: cpu_per_conn(r[t])),
                Column(
                    "CPU x HAProxy",
                    lambda t: fmt_ratio(ratio(med(CONNRATE, t, "cpu_us"), med(CONNRATE, "haproxy", "cpu_us"))),
                ),
                Column(
                    "x HAProxy", lambda t: fmt_ratio(ratio(med(CONNRATE, t, "rate"), med(CONNRATE, "haproxy", "rate")))
                ),
                Column(
                    "x sslh-select",
                    lambda t: fmt_ratio(ratio(med(CONNRATE, t, "rate"), med(CONNRATE, "sslh-select", "rate"))),
                ),
                Column(
                    "x direct", lambda t: fmt_ratio(ratio(med(CONNRATE, t, "rate"), med(CONNRATE, "direct", "rate")))
                ),
            ],
        )
        out.append("")
        out.append(
            "proxy CPU: user+sys time of all the proxy's processes (from /proc) during the wrk run, divided by the "
            "connections it made (answered or failed), median over rounds; CPU x HAProxy < 1 is cheaper. n/a for "
            "sslh-fork: its children are reaped without wait(), so their CPU time is counted nowhere."
        )
        out.append("")
        for t in ts:
            errors = sum(m["errors"] for m in r[t].values())
            if errors:
                requests = sum(m["requests"] for m in r[t].values())
                out.append(
                    f"{t}: {errors:.0f} of {requests:.0f} requests failed (wrk socket errors: resets, or non-2xx); "
                    "conn/s counts completed requests only."
                )
                out.append("")
    if MEMORY in results:
        r = results[MEMORY]
        ts = list(r)
        out += ["### 3. Memory per idle established connection (KiB, growth of the proxy's processes)", ""]
        out += table(
            ts,
            [
                Column("connections", lambda t: fmt(med(MEMORY, t, "connections"), ".0f")),
                Column("RSS KiB/conn", lambda t: fmt(med(MEMORY, t, "rss_kib"), ".1f")),
                Column("rounds", lambda t: spread(r[t], "rss_kib", ".1f")),
                Column("PSS KiB/conn", lambda t: fmt(med(MEMORY, t, "pss_kib"), ".1f")),
                Column("RSS total MiB", lambda t: fmt(med(MEMORY, t, "rss_total_mib"), ".1f")),
                Column(
                    "x HAProxy",
                    lambda t: fmt_ratio(ratio(med(MEMORY, t, "rss_kib"), med(MEMORY, "haproxy", "rss_kib"))),
                ),
            ],
        )
        out.append("")
        out.append(
            "Each round restarts the proxy, so the growth is measured from a fresh process. sslh-select is capped "
            "at 450 connections (select(2) watches descriptors below 1024 only); sslh-fork's RSS counts the pages "
            "its children share once per child, PSS splits them. Kernel socket buffers are not in any process's RSS."
        )
        out.append("")
    if LATENCY in results:
        r = results[LATENCY]
        ts = list(r)
        out += ["### 4. Latency at low load (connect → HTTP request → first byte, sequential, ms)", ""]
        out += table(
            ts,
            [
                Column("p50", lambda t: fmt(med(LATENCY, t, "p50"), ".3f")),
                Column("p90", lambda t: fmt(med(LATENCY, t, "p90"), ".3f")),
                Column("p99", lambda t: fmt(med(LATENCY, t, "p99"), ".3f")),
                Column("added p50", lambda t: added_cell(results, t, "p50")),
                Column("added p90", lambda t: added_cell(results, t, "p90")),
                Column("added p99", lambda t: added_cell(results, t, "p99")),
                Column(
                    "rounds p50/p90/p99",
                    lambda t: ", ".join(f"{m['p50']:.3f}/{m['p90']:.3f}/{m['p99']:.3f}" for m in r[t].values()),
                ),
            ],
        )
        out.append("")
        out.append(
            "Sequential requests from a Python client, the targets taking turns request by request; added = target "
            "minus direct in the same round, median over rounds. p99 of a few hundred samples is a handful of the "
            "slowest: on a shared machine it mostly shows scheduling noise, so read it with p50/p90 and the "
            "per-round values."
        )
        out.append("")
    out += syscall_table(results)
    out += hostile_tables(results)
    if notes:
        out += ["Targets:", ""] + [f"- **{t}**: {n}" for t, n in notes.items()] + [""]
    return out


def syscall_table(results: Results) -> list[str]:
    """System calls per connection under strace, with the most frequent calls."""
    r = results.get(SYSCALLS)
    if not r:
        return []

    def top(t: str) -> str:
        names = {k for m in r[t].values() for k in m if k.startswith("sc:")}
        calls = sorted(((med(results, SYSCALLS, t, k) or 0.0, k[3:]) for k in names), reverse=True)
        return ", ".join(f"{name} {n:.1f}" for n, name in calls)

    out = ["### 5. System calls per connection (strace -c -f on the proxy's processes)", ""]
    out += table(
        list(r),
        [
            Column("syscalls/conn", lambda t: fmt(med(results, SYSCALLS, t, "total"), ".1f")),
            Column("rounds", lambda t: spread(r[t], "total", ".1f")),
            Column(
                "x HAProxy",
                lambda t: fmt_ratio(
                    ratio(med(results, SYSCALLS, t, "total"), med(results, SYSCALLS, "haproxy", "total"))
                ),
            ),
            Column("most frequent (calls/conn)", top),
        ],
    )
    connections = next(iter(next(iter(r.values())).values()))["connections"]
    out.append("")
    out.append(
        f"{connections:.0f} sequential HTTP requests with Connection: close through each proxy while strace counts "
        "every call of every process and thread (and, for sslh-fork, each forked child); the count includes what "
        "the proxy does meanwhile on its own (timers). strace slows the proxy down many times: a count, not a rate."
    )
    out.append("")
    return out


def hostile_tables(results: Results) -> list[str]:
    """Issue 14: CPU per hostile connection and honest time to first byte under attack."""
    r = results.get(HOSTILE)
    if not r:
        return []
    ts = list(r)
    both = "passthru" in ts and "haproxy" in ts

    def h(t: str, key: str, spec: str) -> str:
        return fmt(med(results, HOSTILE, t, key), spec)

    keys = {k.rsplit("/", 1)[0] for m in r[ts[0]].values() for k in m if k.count("/") == 2}
    cases = sorted(keys, key=lambda k: (k.split("/")[0], int(k.split("/")[1])))
    out = ["### 6. Hostile clients: one byte per packet (bench/hostile.py), an honest client beside them", ""]
    head = ["attack", "hostile conns"]
    head += [f"{t} CPU-s/hostile conn" for t in ts] + (["CPU x HAProxy"] if both else [])
    head += [f"{t} CPU µs/hostile byte" for t in ts]
    head += [f"{t} honest p50 / p99 ms" for t in ts]
    head += [f"{t} closed by proxy / held s / bytes" for t in ts]
    out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    quiet = ["no attack", "0"] + ["-"] * (2 * len(ts) + both)
    quiet += [f"{h(t, 'quiet/p50', '.1f')} / {h(t, 'quiet/p99', '.1f')}" for t in ts] + ["-"] * len(ts)
    out.append("| " + " | ".join(quiet) + " |")
    for case in cases:
        attack, n = case.split("/")
        row = [attack, n] + [h(t, f"{case}/cpu_s", ".3f") for t in ts]
        if both:
            cpu = (med(results, HOSTILE, t, f"{case}/cpu_s") for t in ("passthru", "haproxy"))
            row.append(fmt_ratio(ratio(*cpu)))
        row += [h(t, f"{case}/cpu_us_per_byte", ".0f") for t in ts]
        row += [f"{h(t, f'{case}/p50', '.1f')} / {h(t, f'{case}/p99', '.1f')}" for t in ts]
        row += [
            f"{h(t, f'{case}/ended_by_proxy', '.0f')} of {n} / {h(t, f'{case}/held_s', '.2f')} / "
            f"{h(t, f'{case}/sent', '.0f')}"
            for t in ts
        ]
        out.append("| " + " | ".join(row) + " |")
    failed = {t: sum(v for m in r[t].values() for k, v in m.items() if k.endswith("honest_failed")) for t in ts}
    out.append("")
    out.append(
        "Each attack runs for at most the hostile duration, or until the proxy closes the connection; meanwhile one "
        "honest client sends sequential small HTTP requests (Host bench.local) through the same proxy. CPU-s per "
        "hostile connection: the proxy's CPU during the attack, minus the honest requests' share (at the CPU per "
        "request of the quiet window measured first), divided by the hostile connections (µs/byte: by the bytes they "
        "sent, which does not depend on how long they lasted). held s / bytes: median "
        "per hostile connection. The proxies here route like the main targets but close what no route matches "
        "(Passthru `default: reject`; HAProxy `tcp-request content reject` after inspect-delay 3s or a full buffer)."
    )
    if any(failed.values()):
        out.append("Honest requests that failed: " + ", ".join(f"{t} {n:.0f}" for t, n in failed.items()) + ".")
    out.append("")
    return out


def identifiers_cost(results: Results) -> list[str]:
    """Passthru with the repo's three example identifiers loaded, against plain Passthru."""
    r = results.get(CONNRATE, {})
    if "passthru" not in r or "passthru-ids" not in r:
        return []
    plain, loaded = median_of(r["passthru"], "rate"), median_of(r["passthru-ids"], "rate")
    cpu_plain, cpu_loaded = median_of(r["passthru"], "cpu_us"), median_of(r["passthru-ids"], "cpu_us")
    return [
        "### Cost of user identifiers (Passthru with identifiers/ loaded vs without)",
        "",
        f"- conn/s: without {fmt(plain, '.0f')}, with greeting, minecraft and stun loaded {fmt(loaded, '.0f')} "
        f"({fmt_ratio(ratio(loaded, plain))} of without)",
        f"- proxy CPU per connection: without {fmt(cpu_plain, '.0f')} µs, with {fmt(cpu_loaded, '.0f')} µs "
        f"({fmt_ratio(ratio(cpu_loaded, cpu_plain))})",
        "",
    ]


def verdict_line(name: str, value: float | None, ok: bool | None, detail: str) -> str:
    """One row: ``ok`` None means a figure reported without a target."""
    mark = "not measured" if value is None else "reported" if ok is None else "**met**" if ok else "**NOT met**"
    return f"| {name} | {detail} | {mark} |"


VERDICT_HEAD = ["| target | measured | verdict |", "|---|---|---|"]


def verdicts_issue11(results: Results) -> list[str]:
    """Issue 11's targets (the connection path rebuilt), each met / not met / not measured."""
    if not any(f in results for f in (CONNRATE, LATENCY, SYSCALLS, THROUGHPUT, MEMORY)):
        return []
    out = ["### Issue 11 targets (Passthru, medians of this run)", "", *VERDICT_HEAD]
    rate = med(results, CONNRATE, "passthru", "rate")
    ch = ratio(rate, med(results, CONNRATE, "haproxy", "rate"))
    fork = med(results, CONNRATE, "sslh-fork", "rate")
    ok = ch is not None and ch >= 0.5 and (fork is None or (rate or 0) > fork)
    ahead = "" if fork is None else f", sslh-fork {fork:.0f} conn/s"
    out.append(verdict_line("conn/s ≥ 0.5x HAProxy, ahead of sslh-fork", ch, ok, f"{fmt_ratio(ch)}{ahead}"))
    cpu = med(results, CONNRATE, "passthru", "cpu_us")
    cr = ratio(cpu, med(results, CONNRATE, "haproxy", "cpu_us"))
    out.append(
        verdict_line(
            "CPU per new connection ≤ 2x HAProxy's",
            cr,
            cr is not None and cr <= 2.0,
            f"{fmt(cpu, '.0f')} µs = {fmt_ratio(cr)}",
        )
    )
    a50, a99 = added_latency(results, "passthru", "p50"), added_latency(results, "passthru", "p99")
    ok = a50 is not None and a99 is not None and a50 <= 0.35 and a99 <= 0.9
    detail = f"{fmt(a50, '+.3f')} / {fmt(a99, '+.3f')} ms"
    out.append(verdict_line("added latency ≤ +0.35 / +0.9 ms (p50 / p99)", a50, ok, detail))
    ts = ratio(med(results, THROUGHPUT, "passthru", "gbps"), med(results, THROUGHPUT, "haproxy-splice", "gbps"))
    out.append(verdict_line("bulk ≥ 1.0x HAProxy with splice", ts, ts is not None and ts >= 1.0, fmt_ratio(ts)))
    mem = med(results, MEMORY, "passthru", "rss_kib")
    out.append(
        verdict_line(
            "RSS per idle relayed connection ≤ 3.5 KiB", mem, mem is not None and mem <= 3.5, fmt(mem, ".1f", " KiB")
        )
    )
    ids = ratio(med(results, CONNRATE, "passthru-ids", "rate"), rate)
    ids_cpu = ratio(med(results, CONNRATE, "passthru-ids", "cpu_us"), cpu)
    out.append(
        verdict_line(
            "conn/s with identifiers/ loaded ≥ 0.9x without",
            ids,
            ids is not None and ids >= 0.9,
            f"{fmt_ratio(ids)} (CPU per connection {fmt_ratio(ids_cpu)})",
        )
    )
    sc = med(results, SYSCALLS, "passthru", "total")
    sh = ratio(sc, med(results, SYSCALLS, "haproxy", "total"))
    out.append(verdict_line("system calls per connection", sc, None, f"{fmt(sc, '.1f')} = {fmt_ratio(sh)} HAProxy's"))
    out.append("")
    return out


def verdicts_issue14(results: Results) -> list[str]:
    """Issue 14's targets (hostile clients), the worst case over attacks and connection counts."""
    r = results.get(HOSTILE, {}).get("passthru")
    if not r:
        return []
    keys = {k for m in r.values() for k in m if not k.startswith("quiet/")}

    def worst(suffix: str) -> float | None:
        values = [v for k in keys if k.endswith(suffix) if (v := median_of(r, k)) is not None]
        return max(values) if values else None

    out = ["### Issue 14 targets (Passthru, worst attack, medians of this run)", "", *VERDICT_HEAD]
    for name, suffix, limit, spec, unit in (
        ("≤ 0.2 CPU-s per hostile connection", "/cpu_s", 0.2, ".3f", " CPU-s"),
        ("honest p99 ≤ 100 ms under attack", "/p99", 100.0, ".1f", " ms"),
    ):
        value = worst(suffix)
        out.append(verdict_line(name, value, value is not None and value <= limit, fmt(value, spec, unit)))
    out.append("")
    return out


def verdicts(results: Results) -> list[str]:
    """Issue 6's targets for Passthru, each met / not met / not measured."""

    def med(fig: str, t: str, key: str) -> float | None:
        return median_of(results.get(fig, {}).get(t, {}), key)

    line = verdict_line
    out = [
        "### Issue 6 targets (Passthru, medians of this run)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    tp = ratio(med(THROUGHPUT, "passthru", "gbps"), med(THROUGHPUT, "haproxy", "gbps"))
    td = ratio(med(THROUGHPUT, "passthru", "gbps"), med(THROUGHPUT, "direct", "gbps"))
    out.append(line("throughput ≥ 1.0x HAProxy", tp, tp is not None and tp >= 1.0, fmt_ratio(tp)))
    ts = ratio(med(THROUGHPUT, "passthru", "gbps"), med(THROUGHPUT, "haproxy-splice", "gbps"))
    out.append(line("(also) throughput ≥ 1.0x HAProxy with splice on", ts, ts is not None and ts >= 1.0, fmt_ratio(ts)))
    out.append(line("throughput ≥ 0.85x direct", td, td is not None and td >= 0.85, fmt_ratio(td)))
    ch = ratio(med(CONNRATE, "passthru", "rate"), med(CONNRATE, "haproxy", "rate"))
    cs = ratio(med(CONNRATE, "passthru", "rate"), med(CONNRATE, "sslh-select", "rate"))
    out.append(line("conn/s ≥ 0.5x HAProxy (same cores)", ch, ch is not None and ch >= 0.5, fmt_ratio(ch)))
    out.append(line("conn/s ≥ 2x sslh-select", cs, cs is not None and cs >= 2.0, fmt_ratio(cs)))
    mem = med(MEMORY, "passthru", "rss_kib")
    out.append(line("≤ 8 KiB RSS per idle connection", mem, mem is not None and mem <= 8.0, fmt(mem, ".1f", " KiB")))
    a50, a90, a99 = (added_latency(results, "passthru", p) for p in ("p50", "p90", "p99"))
    out.append(
        line(
            "added latency p99 < 0.5 ms (p50 reported)",
            a99,
            a99 is not None and a99 < 0.5,
            f"p50 {fmt(a50, '+.3f')} ms, p90 {fmt(a90, '+.3f')} ms, p99 {fmt(a99, '+.3f')} ms",
        )
    )
    out.append("")
    return out


def logging_cost(results: Results) -> list[str]:
    """Passthru with --log-level WARNING against the default (INFO: one line per connection)."""

    def med(fig: str, t: str, key: str) -> float | None:
        return median_of(results.get(fig, {}).get(t, {}), key)

    quiet, loud = med(CONNRATE, "passthru", "rate"), med(CONNRATE, "passthru-info", "rate")
    if quiet is None or loud is None:
        return []
    out = ["### Cost of the per-connection log line (Passthru, INFO vs WARNING)", ""]
    out.append(f"- conn/s: WARNING {quiet:.0f}, INFO {loud:.0f} ({fmt_ratio(ratio(loud, quiet))} of WARNING)")
    rounds = results[CONNRATE]
    out.append(
        f"- proxy CPU per connection (user+sys us): WARNING {cpu_per_conn(rounds['passthru'])}, "
        f"INFO {cpu_per_conn(rounds['passthru-info'])}"
    )
    p50q, p50l = med(LATENCY, "passthru", "p50"), med(LATENCY, "passthru-info", "p50")
    if p50q is not None and p50l is not None:
        out.append(f"- latency p50: WARNING {p50q:.3f} ms, INFO {p50l:.3f} ms ({p50l - p50q:+.3f} ms)")
    out.append("")
    return out


def markdown(
    results: Results,
    machine: dict[str, str],
    settings: dict[str, str],
    notes: dict[str, str],
    remarks: list[str],
) -> str:
    """The whole report."""
    out = [
        "# Passthru benchmark (bench/run.py)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. "
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), kernel {machine['kernel']}, Python {machine['python']}.",
        "",
        "Peers: " + "; ".join(f"{k}: {machine[k]}" for k in ("haproxy", "sslh", "nginx", "iperf3", "wrk")) + ".",
        "",
        "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ".",
        "",
    ]
    out += verdicts(results)
    out += verdicts_issue11(results)
    out += verdicts_issue14(results)
    out += figure_tables(results, notes)
    out += logging_cost(results)
    out += identifiers_cost(results)
    if remarks:
        out += ["### Remarks", ""] + [f"- {r}" for r in remarks] + [""]
    return "\n".join(out)
