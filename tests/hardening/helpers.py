"""What the hardening tests need beyond ``tests/support``: reading a process's fds, RSS, CPU
time and listening sockets from /proc, parsing connection log lines, a Passthru started under
a wrapper (``prlimit``), and a few small backends."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import socketserver
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.support.backends import _Backend
from tests.support.net import BACKLOG, free_port
from tests.support.passthru_process import PassthruProcess
from tests.support.waiting import PATIENCE

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- /proc ---------------------------------------------------------------------------------------
def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # the thread ended while we looked
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and its children (the supervisor and its workers)."""
    return [pid, *children(pid)]


def fd_kinds(pid: int) -> Counter[str]:
    """Open fds of ``pid`` by kind: socket, pipe, anon_inode, file."""
    kinds: Counter[str] = Counter()
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        try:
            target = os.readlink(f"{directory}/{name}")
        except OSError:
            continue  # closed while we looked
        kind = target.split(":", 1)[0] if target.startswith(("socket:", "pipe:", "anon_inode:")) else "file"
        kinds[kind] += 1
    return kinds


def fd_count(pid: int) -> int:
    return sum(fd_kinds(pid).values())


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _decode_address(text: str) -> tuple[str, int]:
    host_hex, port_hex = text.split(":")
    raw = bytes.fromhex(host_hex)
    if len(raw) == 4:
        host = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        host = socket.inet_ntop(socket.AF_INET6, words)
    return host, int(port_hex, 16)


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """The TCP addresses ``pid`` holds a listening socket on (its fds matched against
    /proc/PID/net/tcp and tcp6, state 0A = LISTEN)."""
    inodes = _socket_inodes(pid)
    found = set()
    for table in ("tcp", "tcp6"):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:
                found.add(_decode_address(parts[1]))
    return found


@dataclass
class Usage:
    fds: int
    sockets: int
    pipes: int
    rss_kib: int

    def __str__(self) -> str:
        return f"fds={self.fds} (sockets={self.sockets} pipes={self.pipes}) rss={self.rss_kib / 1024:.1f}MiB"


def usage(pids: list[int]) -> Usage:
    kinds: Counter[str] = Counter()
    rss = 0
    for pid in pids:
        kinds += fd_kinds(pid)
        rss += rss_kib(pid)
    return Usage(sum(kinds.values()), kinds["socket"], kinds["pipe"], rss)


# -- connection log lines ------------------------------------------------------------------------
LINE = re.compile(
    r"conn=(?P<conn>\S+) client=(?P<client>\S+) listener=(?P<listener>\S+) protocol=(?P<protocol>\S+)"
    r"(?: fields=(?P<fields>.*))?"
    r" route=(?P<route>\S+) upstream=(?P<upstream>\S+) up=(?P<up>\d+) down=(?P<down>\d+)"
    r" duration=(?P<duration>[\d.]+)s end=(?P<end>\S+)(?: error=(?P<error>\".*\"))?$"
)


def connection_lines(log: str) -> list[dict[str, str]]:
    """Every per-connection line of the log, as a dict of its keys. A last line without its
    newline is still being written (the log is read while Passthru writes it): left out."""
    lines = []
    for line in log[: log.rfind("\n") + 1].splitlines():
        if "passthru.connection:" not in line:
            continue
        match = LINE.search(line)
        assert match is not None, f"unparsable connection line: {line}"
        lines.append(match.groupdict())
    return lines


def wait_lines(proc: PassthruProcess, count: int, timeout: float = 10.0, where=None) -> list[dict[str, str]]:
    """Wait until at least ``count`` connection lines (matching ``where``) are logged: they are
    written in batches, up to 0.2 s after the connection closed."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in connection_lines(proc.logs()) if where is None or where(line)]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def worker_pids(log: str) -> dict[int, int]:
    pids: dict[int, int] = {}
    for index, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", log):
        pids[int(index)] = int(pid)
    return pids


def wait_serving(proc: PassthruProcess, processes: int, timeout: float = PATIENCE) -> None:
    """Wait until ``processes`` serving processes logged their routes (every listener is bound
    by then: with SO_REUSEPORT the first worker alone already answers the start-up probe)."""
    deadline = time.monotonic() + timeout
    while proc.logs().count("passthru.server: identifiers:") < processes:
        assert time.monotonic() < deadline, f"{processes} serving processes did not start:\n{proc.logs()}"
        time.sleep(0.05)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def start_passthru(directory: Path, body: str, *, extra_listen: tuple[tuple[int, str], ...] = (), **timeouts: str):
    """Passthru on a fresh 127.0.0.1 port (``proc.port``) with ``body`` as the rest of the config;
    ``extra_listen`` adds (port, listen entry) pairs. ``timeouts`` (identify, connect, idle)
    default to 2s, 2s, 30s."""
    port = free_port()
    values = {"identify": "2s", "connect": "2s", "idle": "30s", **timeouts}
    entries = [f"127.0.0.1:{port}", *(entry for _, entry in extra_listen)]
    listen_lines = "".join(f"  - {entry}\n" for entry in entries)
    text = f"listen:\n{listen_lines}timeouts: {{{', '.join(f'{k}: {v}' for k, v in values.items())}}}\n{body}"
    ports = [port, *(p for p, _ in extra_listen)]
    proc = PassthruProcess(directory, text, [("127.0.0.1", p) for p in ports])
    proc.port = port  # type: ignore[attr-defined]
    return proc.start()


# -- backends --------------------------------------------------------------------------------------
class _SinkHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        backend = self.server.backend  # type: ignore[attr-defined]
        with backend.lock:
            backend.connections += 1
        chunks = []
        try:
            while chunk := self.request.recv(65536):
                chunks.append(chunk)
        except OSError as exc:
            with backend.lock:
                backend.errors.append(type(exc).__name__)
        with backend.lock:
            backend.received.append(b"".join(chunks))


class Sink(_Backend):
    """Reads every connection to its end, sends nothing, and keeps exactly what it received."""

    handler = _SinkHandler

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.lock = threading.Lock()
        self.errors: list[str] = []

    def wait_received(self, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)


class Canary:
    """A listener the config never names: it counts every connection that reaches it."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(BACKLOG)
        self.sock.settimeout(0.1)
        self.stopped = threading.Event()
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.hits: list[tuple] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, peer = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.hits.append(peer)
            conn.close()

    def __enter__(self) -> Canary:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=2)
        self.sock.close()
