#!/usr/bin/env python3
"""Benchmark Passthru side by side with HAProxy, sslh and the direct path, in one run on loopback.

Starts nginx, an iperf3 server and a holding server, then every proxy, each on its own free port
of 127.0.0.1 with a generated config in a temp dir; runs each figure (issues 6, 11, 14) for each target,
interleaved (the target order rotates every round), for a few rounds; prints medians and ratios
and writes them to bench/results/latest.md. Everything it started is stopped at the end, on
errors and on Ctrl-C.

    python bench/run.py                 # 3 rounds, 10 s per throughput / conn-rate measurement
    python bench/run.py --quick         # 1 short round, well under a minute
    python bench/run.py --only connrate --targets passthru,haproxy
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import figures
import report
from peers import (
    CONNRATE,
    FIGURES,
    HOSTILE,
    LATENCY,
    MEMORY,
    SYSCALLS,
    TARGET_NAMES,
    THROUGHPUT,
    Backends,
    BenchError,
    Target,
    Unmeasurable,
    log_path,
    make_targets,
    raise_nofile,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TOOLS = ("nginx", "haproxy", "iperf3", "wrk", "strace", "/usr/sbin/sslh", "/usr/sbin/sslh-select")
ALL_TARGETS = TARGET_NAMES
#: The user identifiers `passthru-ids` loads: the ones the repo ships (config.yaml's identifiers_dir).
IDENTIFIERS = REPO / "identifiers"


def default_passthru_cmd() -> str:
    """``$PASSTHRU_CMD``, else the repo's .venv, else ``passthru`` on PATH, else ``python -m passthru.cli``."""
    if os.environ.get("PASSTHRU_CMD"):
        return os.environ["PASSTHRU_CMD"]
    venv = REPO / ".venv" / "bin" / "passthru"
    if venv.exists():
        return str(venv)
    found = shutil.which("passthru")
    if found:
        return found
    return shlex.join([sys.executable, "-m", "passthru.cli"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 round, 2 s durations, small counts (CI smoke run)")
    p.add_argument("--rounds", type=int, help="rounds of every figure (default 3; --quick: 1)")
    p.add_argument("--duration", type=float, help="seconds per iperf3 / wrk measurement (default 10; --quick: 2)")
    p.add_argument(
        "--connections", type=int, help="idle connections for the memory figure (default 2000; --quick: 200)"
    )
    p.add_argument("--samples", type=int, help="sequential requests for the latency figure (default 500; --quick: 100)")
    p.add_argument(
        "--syscall-connections",
        type=int,
        help="connections counted under strace for the syscalls figure (default 2000; --quick: 200)",
    )
    p.add_argument(
        "--hostile-duration",
        type=float,
        help="seconds each hostile client trickles at most (default 4: past the 3 s identify timeout; --quick: 1)",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=FIGURES,
        metavar="FIGURE",
        help=f"measure only this figure (repeatable): {', '.join(FIGURES)}",
    )
    p.add_argument("--targets", help=f"comma-separated subset of: {', '.join(ALL_TARGETS)}")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Passthru workers = HAProxy nbthread")
    p.add_argument(
        "--passthru-cmd", default=default_passthru_cmd(), help="command that runs passthru (default: %(default)s)"
    )
    p.add_argument("--output", type=Path, help="markdown report (default bench/results/latest.md; --quick: quick.md)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (configs and logs)")
    args = p.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or (1 if quick else 3)
    args.duration = args.duration or (2.0 if quick else 10.0)
    args.connections = args.connections or (200 if quick else 2000)
    args.samples = args.samples or (100 if quick else 500)
    args.syscall_connections = args.syscall_connections or (200 if quick else 2000)
    args.hostile_duration = args.hostile_duration or (1.0 if quick else 4.0)
    args.output = args.output or HERE / "results" / ("quick.md" if quick else "latest.md")
    args.figures = [f for f in FIGURES if not args.only or f in args.only]
    args.target_names = [t.strip() for t in args.targets.split(",")] if args.targets else list(ALL_TARGETS)
    unknown = set(args.target_names) - set(ALL_TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def resolve_command(command: str) -> list[str]:
    """Split ``command``; a relative program path becomes absolute (peers run in the temp dir)."""
    argv = shlex.split(command)
    if not argv:
        raise BenchError("--passthru-cmd is empty")
    if "/" in argv[0]:
        argv[0] = os.path.abspath(argv[0])  # not resolve(): a venv python must stay a symlink
    elif shutil.which(argv[0]) is None:
        raise BenchError(f"--passthru-cmd: {argv[0]!r} not found on PATH")
    return argv


def check_tools() -> None:
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        raise BenchError(f"missing: {', '.join(missing)}; run bench/install-debian-packages (as root)")


def check_identifiers(passthru_cmd: list[str], target: Target) -> None:
    """`passthru-ids` must really serve the repo's identifiers: list them as the server loads
    them (its config, its copy) and fail unless every one is active."""
    assert target.proc is not None
    conf = target.proc.argv[target.proc.argv.index("-c") + 1]
    proc = subprocess.run(
        [*passthru_cmd, "identifiers", "list", "-c", conf, "--json"], capture_output=True, text=True, timeout=60
    )
    try:
        listed = json.loads(proc.stdout)
    except json.JSONDecodeError:
        listed = None
    wanted = {p.stem for p in IDENTIFIERS.glob("*.py")}
    serving = {i["name"] for i in listed or () if i.get("serving")}
    if not wanted or serving != wanted:
        raise BenchError(
            f"{target.name}: identifiers serving {sorted(serving)}, want {sorted(wanted)}: {proc.stdout}{proc.stderr}"
        )


def measure(figure: str, target: Target, backends: Backends, args: argparse.Namespace) -> dict[str, float]:
    """One round of one figure through one target."""
    address = target.address(figure, backends)
    if figure == THROUGHPUT:
        return figures.throughput(address, args.duration, target)
    if figure == CONNRATE:
        return figures.connrate(address, args.duration, target)
    if figure == MEMORY:
        count = min(args.connections, target.memory_connections or args.connections)
        return figures.memory(target, address, count)
    if figure == SYSCALLS:
        return figures.syscalls(target, address, args.syscall_connections)
    if figure == HOSTILE:
        return figures.hostile(target, address, args.hostile_duration, baseline=1.0 if args.quick else 2.0)
    raise ValueError(f"measure() does not do {figure}")


def describe(figure: str, m: dict[str, float]) -> str:
    if figure == THROUGHPUT:
        cpu = f", proxy CPU {m['cpu_percent']:.0f}%" if "cpu_percent" in m else ""
        return f"{m['gbps']:.2f} Gbit/s{cpu}"
    if figure == CONNRATE:
        cpu = f", proxy CPU {m['user_us']:.0f}+{m['sys_us']:.0f} us/conn (user+sys)" if "user_us" in m else ""
        errors = f", {m['errors']:.0f} errors" if m["errors"] else ""
        return f"{m['rate']:.0f} conn/s{cpu}{errors}"
    if figure == MEMORY:
        return f"{m['rss_kib']:.1f} KiB RSS/conn, {m['pss_kib']:.1f} KiB PSS/conn over {m['connections']:.0f}"
    if figure == SYSCALLS:
        top = ", ".join(f"{k[3:]} {v:.1f}" for k, v in m.items() if k.startswith("sc:"))
        return f"{m['total']:.1f} syscalls/conn over {m['connections']:.0f} ({top})"
    if figure == HOSTILE:
        return "; ".join(
            f"{a}x{n} {m[f'{a}/{n}/cpu_s']:.3f} CPU-s/conn, honest p99 {m.get(f'{a}/{n}/p99', float('nan')):.1f} ms"
            for a in figures.HOSTILE_ATTACKS
            for n in (1, 20)
        )
    return f"p50 {m['p50']:.3f} ms, p90 {m['p90']:.3f} ms, p99 {m['p99']:.3f} ms"


def count_log_lines(path: Path, marker: str = "conn=") -> int:
    try:
        with open(path, errors="replace") as f:
            return sum(marker in line for line in f)
    except OSError:
        return 0


def run(args: argparse.Namespace, workdir: Path) -> report.Results:
    """Start everything, measure, stop everything; return the results and fill ``args.remarks``."""
    check_tools()
    passthru_cmd = resolve_command(args.passthru_cmd)
    backends = Backends.create(workdir)
    targets = make_targets(workdir, backends, passthru_cmd, args.workers, args.target_names, IDENTIFIERS)
    results: report.Results = {}
    args.notes = {t.name: t.note for t in targets if t.note and any(f in t.figures for f in args.figures)}
    try:
        backends.start()
        for target in targets:
            if any(f in target.figures for f in args.figures):
                target.start()
                figures.smoke(target.address(LATENCY, backends), proxied=target.proc is not None)
                if target.name == "passthru-ids":
                    check_identifiers(passthru_cmd, target)
        print(f"started {len(targets)} targets in {workdir}; load average {report.load_average()}", flush=True)
        for rnd in range(args.rounds):
            for figure in args.figures:
                eligible = [t for t in targets if figure in t.figures]
                shift = rnd % len(eligible) if eligible else 0
                eligible = eligible[shift:] + eligible[:shift]
                if figure == LATENCY:  # one pass, the targets taking turns request by request
                    addresses = {t.name: t.address(figure, backends) for t in eligible}
                    measured = list(figures.latency(addresses, args.samples).items())
                else:
                    measured = []
                    for t in eligible:
                        try:
                            measured.append((t.name, measure(figure, t, backends, args)))
                        except Unmeasurable as exc:
                            print(f"round {rnd + 1}/{args.rounds} {figure:10} {t.name:14} not measured: {exc}")
                            args.remarks.append(f"{figure} through {t.name}, round {rnd + 1}: not measured: {exc}")
                for name, m in measured:
                    results.setdefault(figure, {}).setdefault(name, {})[rnd] = m
                    print(f"round {rnd + 1}/{args.rounds} {figure:10} {name:14} {describe(figure, m)}", flush=True)
        for name in ("passthru", "passthru-info", "passthru-ids"):
            if any(t.name == name for t in targets):
                lines = count_log_lines(log_path(workdir, name))
                args.remarks.append(f"{name} wrote {lines} per-connection log lines")
    finally:
        for target in reversed(targets):
            target.stop()
        backends.stop()
    # Keep the table's row order stable (the order of ALL_TARGETS), whatever the rotation was.
    return {f: {t: r[t] for t in ALL_TARGETS if t in r} for f, r in results.items()}


def interrupt(signum: int, _frame: object) -> None:
    """SIGTERM behaves like Ctrl-C: unwind, stopping every process we started."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.remarks = []
    raise_nofile()
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started with SIGINT ignored
    workdir = Path(tempfile.mkdtemp(prefix="passthru-bench-"))
    started = time.monotonic()
    load_before = report.load_average()
    try:
        results = run(args, workdir)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    finally:
        if args.keep_tmp:
            print(f"configs and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    args.remarks.append(
        f"load average (1/5/15 min) before: {load_before}, after: {report.load_average()} — other work on the "
        "machine during the run shows up here and in the spread of the rounds"
    )
    args.remarks.append(f"the run took {elapsed:.0f} s")
    settings = {
        "mode": "quick" if args.quick else "full",
        "rounds": str(args.rounds),
        "duration": f"{args.duration:g} s",
        "idle connections": str(args.connections),
        "latency samples": str(args.samples),
        "Passthru workers / HAProxy nbthread": str(args.workers),
        "nginx": "1 process (master_process off, worker_processes 1), access_log off",
        "passthru": args.passthru_cmd,
        "source": report.source_revision(REPO),
    }
    text = report.markdown(results, report.machine_info(), settings, args.notes, args.remarks)
    print()
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
