"""The measurements: issue 6's four, and issues 11 and 14's system calls and hostile clients,
each against one (host, port) or one running target.

Every function returns a plain dict of numbers (one round of one figure for one target), so the
report can take medians without knowing how a figure was measured.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from peers import HOST, BenchError, Target, Unmeasurable, cpu_seconds, pss_kib, rss_kib

HERE = Path(__file__).resolve().parent

Address = tuple[str, int]

HTTP_REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: passthru-bench\r\nConnection: close\r\n\r\n".encode()
SSH_BANNER = b"SSH-2.0-passthru-bench\r\n"


# -- 1. bulk throughput ---------------------------------------------------------------------------
def throughput(address: Address, duration: float, target: Target) -> dict[str, float]:
    """One iperf3 stream for ``duration`` seconds; the receiver's bits per second, and the CPU
    the proxy used meanwhile (percent of one core; where it can be counted)."""
    host, port = address
    cpu_before = cpu_seconds(target.pids())
    argv = ["iperf3", "-c", host, "-p", str(port), "-t", str(duration), "-J"]
    for attempt in range(3):  # the iperf3 server can still be busy ending the previous test
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
        try:
            report = json.loads(proc.stdout)
        except json.JSONDecodeError:
            report = {"error": f"no JSON (exit {proc.returncode}): {proc.stderr.strip()}"}
        if "error" not in report:
            break
        if attempt < 2:
            time.sleep(1)
            cpu_before = cpu_seconds(target.pids())
    else:
        raise BenchError(f"iperf3 through {target.name}: {report['error']}")
    cpu_after = cpu_seconds(target.pids())
    bps = report["end"]["sum_received"]["bits_per_second"]
    seconds = report["end"]["sum_received"].get("seconds") or duration
    result = {"gbps": bps / 1e9}
    if target.cpu_accounted and target.proc is not None:
        result["cpu_percent"] = 100 * (sum(cpu_after) - sum(cpu_before)) / seconds
    return result


# -- 2. new connections per second ----------------------------------------------------------------
WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_ERRORS = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
WRK_TOTAL = re.compile(r"(\d+) requests in")


def connrate(
    address: Address, duration: float, target: Target, threads: int = 2, connections: int = 50
) -> dict[str, float]:
    """wrk with ``Connection: close``: every request is a new connection, routed by Host. Also the
    proxy's CPU time per connection (user and system, microseconds): on a shared machine that
    is steadier than the rate."""
    host, port = address
    cpu_before = cpu_seconds(target.pids())
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "-H",
        "Connection: close",
        "-H",
        f"Host: {HOST}",
        f"http://{host}:{port}/",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    user, system = (after - before for after, before in zip(cpu_seconds(target.pids()), cpu_before, strict=True))
    rate = WRK_RATE.search(proc.stdout)
    if proc.returncode != 0 or rate is None:
        raise BenchError(f"wrk failed (exit {proc.returncode}): {proc.stdout}{proc.stderr}")
    socket_errors = WRK_ERRORS.search(proc.stdout)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    non2xx = WRK_NON2XX.search(proc.stdout)
    total = WRK_TOTAL.search(proc.stdout)
    requests = int(total.group(1)) if total else 0
    result = {
        "rate": float(rate.group(1)),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
        "requests": requests,
    }
    # Every connection costs the proxy, answered or not: a socket error is one more connection.
    connections = requests + errors
    if target.cpu_accounted and target.proc is not None and connections:
        result["user_us"] = 1e6 * user / connections
        result["sys_us"] = 1e6 * system / connections
        result["cpu_us"] = result["user_us"] + result["sys_us"]
    return result


# -- 3. memory per idle established connection ----------------------------------------------------
def _open_held(address: Address, timeout: float = 10.0) -> socket.socket:
    """A connection identified as SSH, relayed to the holding server, answered once, then idle."""
    sock = socket.create_connection(address, timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(SSH_BANNER)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(256)
            if not chunk:
                raise BenchError(f"{address}: connection closed before the holding server answered")
            reply += chunk
    except BaseException:
        sock.close()
        raise
    return sock


def memory(target: Target, address: Address, count: int, settle: float = 1.0) -> dict[str, float]:
    """RSS (and PSS) growth of the target's processes per idle relayed connection, in KiB.

    The target is restarted first, so every round starts from a fresh process; a few connections
    are opened and closed before the baseline so lazy start-up work is not counted.
    """
    target.restart()
    for _ in range(20):
        _open_held(address).close()
    time.sleep(settle)
    before_rss, before_pss = rss_kib(target.pids()), pss_kib(target.pids())
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            held.append(_open_held(address))
        time.sleep(settle)
        pids = target.pids()
        after_rss, after_pss = rss_kib(pids), pss_kib(pids)
    finally:
        for sock in held:
            with contextlib.suppress(OSError):
                sock.close()
    return {
        "connections": count,
        "rss_kib": (after_rss - before_rss) / count,
        "pss_kib": (after_pss - before_pss) / count,
        "rss_total_mib": after_rss / 1024,
        "processes": len(pids),
    }


# -- 4. added latency at low load -----------------------------------------------------------------
def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def first_byte_ms(address: Address, timeout: float = 10.0) -> float:
    """Connect, send a small HTTP request, and time until the first response byte (ms)."""
    start = time.perf_counter()
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(HTTP_REQUEST)
        first = sock.recv(1)
        elapsed = (time.perf_counter() - start) * 1000
        if first != b"H":
            raise BenchError(f"{address}: expected an HTTP response, got {first!r}")
        while sock.recv(65536):  # read to the server's close, so we never reset it
            pass
    return elapsed


def summarize(times: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(times, 50),
        "p90": percentile(times, 90),
        "p99": percentile(times, 99),
        "samples": len(times),
    }


def latency(addresses: dict[str, Address], samples: int) -> dict[str, dict[str, float]]:
    """p50/p90/p99 of connect → request → first byte over ``samples`` sequential new connections
    per target. The targets take turns request by request (in an order that rotates), so a burst
    of load from elsewhere on the machine falls on all of them alike."""
    names = list(addresses)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(samples):
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(first_byte_ms(addresses[name]))
    return {name: summarize(t) for name, t in times.items()}


# -- 5. system calls per connection ----------------------------------------------------------------
def strace_counts(text: str) -> dict[str, int]:
    """Calls per system call name from ``strace -c`` output, plus ``total`` (the columns are
    fixed-width; their spans come from the dashed rule under the header)."""
    lines = text.splitlines()
    rule = next((i for i, line in enumerate(lines) if line.startswith("------")), None)
    if rule is None or rule == 0:
        raise BenchError(f"no strace -c table in: {text[:300]!r}")
    spans = [m.span() for m in re.finditer(r"-+", lines[rule])]
    header = [
        lines[rule - 1][a:b].strip() if i < len(spans) - 1 else lines[rule - 1][a:].strip()
        for i, (a, b) in enumerate(spans)
    ]
    calls_col = header.index("calls")
    counts: dict[str, int] = {}
    for line in lines[rule + 1 :]:
        if not line.strip() or line.startswith("------"):
            continue
        name = line.split()[-1]
        a, b = spans[calls_col]
        cell = line[a:b].strip()
        if cell.isdigit():
            counts[name] = int(cell)
    if "total" not in counts:
        raise BenchError(f"no total line in strace -c output: {text[-300:]!r}")
    return counts


def _wait_attached(stderr_path: Path, pids: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Until strace said "attached" once per process we named (threads add more lines)."""
    deadline = time.monotonic() + timeout
    while stderr_path.read_text(errors="replace").count(" attached") < pids:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise Unmeasurable(f"strace did not attach: {stderr_path.read_text(errors='replace')[-500:]}")
        time.sleep(0.05)
    time.sleep(0.3)  # the threads of a process it attached to (HAProxy's) come right after


def syscalls(target: Target, address: Address, connections: int, top: int = 8) -> dict[str, float]:
    """System calls the proxy makes per connection: ``strace -c -f`` attached to all of its
    processes (and, with -f, their threads and children) while ``connections`` sequential HTTP
    requests with ``Connection: close`` go through it. strace slows the proxy a lot: this is a
    count, not a rate. Keys: ``total`` (per connection), ``calls`` (the count), and
    ``sc:NAME`` per connection for the ``top`` most frequent calls."""
    pids = target.pids()
    if not pids:
        raise BenchError(f"{target.name}: no process to attach strace to")
    with tempfile.TemporaryDirectory(prefix="strace-") as tmp:
        out, err = Path(tmp) / "summary", Path(tmp) / "stderr"
        argv = ["strace", "-c", "-f", "-o", str(out)]
        for pid in pids:
            argv += ["-p", str(pid)]
        with open(err, "wb") as errfile:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile)
        try:
            _wait_attached(err, len(pids), proc)
            for _ in range(connections):
                first_byte_ms(address)
        finally:
            proc.send_signal(signal.SIGINT)  # strace detaches and writes its summary
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        counts = strace_counts(out.read_text(errors="replace"))
    total = counts.pop("total")
    result: dict[str, float] = {"total": total / connections, "calls": total, "connections": connections}
    for name, calls in sorted(counts.items(), key=lambda kv: -kv[1])[:top]:
        result[f"sc:{name}"] = calls / connections
    return result


# -- 6. hostile clients (issue 14) ----------------------------------------------------------------
HOSTILE_ATTACKS = ("http-headers", "endless-header", "tls-record")


def honest_requests(address: Address, keep_going: Callable[[], bool]) -> tuple[list[float], int]:
    """Sequential small HTTP requests while ``keep_going()``: their times to first byte (ms) and
    how many failed (reset, closed without an answer, 10 s without a byte)."""
    times: list[float] = []
    failed = 0
    while keep_going():
        try:
            times.append(first_byte_ms(address))
        except (OSError, BenchError):
            failed += 1
    return times, failed


def _run_attack(
    target: Target, address: Address, attack: str, connections: int, duration: float, honest_cpu: float
) -> dict[str, float]:
    """One attack on ``connections`` connections, honest requests meanwhile: see ``hostile``."""
    host, port = address
    argv = [sys.executable, str(HERE / "hostile.py"), attack, host, str(port)]
    argv += ["--connections", str(connections), "--duration", str(duration)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            proc.wait(timeout=30)
            raise BenchError(f"hostile.py {attack} through {target.name}: {proc.stderr.read() if proc.stderr else ''}")
        cpu_before = cpu_seconds(target.pids())
        start = time.monotonic()
        times, failed = honest_requests(address, lambda: proc.poll() is None)
        cpu = sum(cpu_seconds(target.pids())) - sum(cpu_before)
        seconds = time.monotonic() - start
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    try:
        trickled = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"hostile.py {attack} through {target.name}: {stdout!r} {stderr}") from exc
    ends = [t["ended"] for t in trickled]
    hostile_cpu = max(0.0, cpu - len(times) * honest_cpu)
    result: dict[str, float] = {
        "cpu_s": hostile_cpu / connections,
        "cpu_us_per_byte": 1e6 * hostile_cpu / max(1, sum(t["sent"] for t in trickled)),
        "seconds": seconds,
        "held_s": statistics.median([t["seconds"] for t in trickled]),
        "sent": statistics.median([t["sent"] for t in trickled]),
        "ended_by_proxy": sum(e != "duration" for e in ends),
        "honest": len(times),
        "honest_failed": failed,
    }
    if times:
        result["p50"], result["p99"] = percentile(times, 50), percentile(times, 99)
    return result


def hostile(
    target: Target, address: Address, duration: float, counts: tuple[int, ...] = (1, 20), baseline: float = 2.0
) -> dict[str, float]:
    """Issue 14's attackers (bench/hostile.py, one byte per packet about 50 µs apart, for up to
    ``duration`` s or until the proxy closes), each with 1 and with 20 connections, while an
    honest client sends sequential small HTTP requests through the same proxy.

    Keys ``ATTACK/N/cpu_s``: the proxy's CPU seconds per hostile connection (its CPU during the
    attack, minus the honest requests' share at the CPU per request of a quiet ``baseline``
    window measured first); ``ATTACK/N/p50`` and ``p99``: honest time to first byte (ms);
    ``ATTACK/N/ended_by_proxy``: hostile connections the proxy closed before ``duration``;
    ``quiet/p50``, ``quiet/p99``: the honest client with no attack."""
    cpu_before = cpu_seconds(target.pids())
    end = time.monotonic() + baseline
    times, failed = honest_requests(address, lambda: time.monotonic() < end)
    honest_cpu = (sum(cpu_seconds(target.pids())) - sum(cpu_before)) / max(1, len(times))
    result: dict[str, float] = {
        "quiet/honest": len(times),
        "quiet/honest_failed": failed,
        "quiet/cpu_us": 1e6 * honest_cpu,
    }
    if times:
        result["quiet/p50"], result["quiet/p99"] = percentile(times, 50), percentile(times, 99)
    for attack in HOSTILE_ATTACKS:
        for n in counts:
            one = _run_attack(target, address, attack, n, duration, honest_cpu)
            result.update({f"{attack}/{n}/{k}": v for k, v in one.items()})
    return result


# -- a check before measuring ---------------------------------------------------------------------
def smoke(address: Address, proxied: bool) -> None:
    """Raise BenchError unless HTTP reaches nginx (and, through a proxy, SSH the holding server)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(HTTP_REQUEST)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    if not response.startswith(b"HTTP/1.1 200") or b"<title>bench</title>" not in response:
        raise BenchError(f"{address}: HTTP with Host {HOST} did not reach the bench page: {response[:200]!r}")
    if proxied:
        _open_held(address).close()
