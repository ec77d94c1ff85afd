"""The four measurements of issue 6, each against one (host, port) or one running target.

Every function returns a plain dict of numbers (one round of one figure for one target), so the
report can take medians without knowing how a figure was measured.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import subprocess
import time

from peers import HOST, BenchError, Target, cpu_seconds, pss_kib, rss_kib

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
    errors = sum(int(n) for n in WRK_ERRORS.search(proc.stdout).groups()) if WRK_ERRORS.search(proc.stdout) else 0
    non2xx = WRK_NON2XX.search(proc.stdout)
    total = WRK_TOTAL.search(proc.stdout)
    requests = int(total.group(1)) if total else 0
    result = {
        "rate": float(rate.group(1)),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
        "requests": requests,
    }
    if target.cpu_accounted and target.proc is not None and requests:
        result["user_us"] = 1e6 * user / requests
        result["sys_us"] = 1e6 * system / requests
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
