"""Start and stop everything a bench run needs, in the foreground, on 127.0.0.1 only.

Backends: nginx (a small static page), an iperf3 server, and a holding server (holdserver.py).
Targets (what a figure is measured through): Passthru, HAProxy (mode tcp), sslh-select, sslh-fork
and the direct path. Every process gets a generated config in the run's temp dir, its own
session (so a terminal Ctrl-C reaches only the bench, which then stops them in order) and
PR_SET_PDEATHSIG (so they die with the bench even if it is killed hard).

All proxies route the same way:
  HTTP with Host bench.local  -> nginx
  TLS with SNI bench.local    -> nginx (not measured; keeps the rule sets comparable)
  SSH (a client banner)       -> holding server
  anything else (iperf3)      -> iperf3 server
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
HOST = "bench.local"
HERE = Path(__file__).resolve().parent

#: Figures (keys used everywhere).
THROUGHPUT, CONNRATE, MEMORY, LATENCY = "throughput", "connrate", "memory", "latency"
SYSCALLS, HOSTILE = "syscalls", "hostile"
FIGURES = (THROUGHPUT, CONNRATE, MEMORY, LATENCY, SYSCALLS, HOSTILE)
#: What every proxy target measures (direct has no proxy: no CPU, memory, system calls).
PROXY_FIGURES = (THROUGHPUT, CONNRATE, MEMORY, LATENCY, SYSCALLS)

#: sslh-select uses select(2): FD_SETSIZE (1024) bounds its descriptors, two per connection.
SSLH_SELECT_MAX_CONNECTIONS = 450

PAGE = b"<!doctype html><html><head><title>bench</title></head><body>" + b"x" * 512 + b"</body></html>\n"


class BenchError(RuntimeError):
    """A peer would not start or a check failed; the message says which."""


class Unmeasurable(BenchError):
    """This machine cannot take this figure (strace may not attach): the run goes on without it."""


# -- small system helpers -----------------------------------------------------------------------
def raise_nofile(wanted: int = 65536) -> int:
    """Raise our soft RLIMIT_NOFILE (children inherit it); return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together so none repeats)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def listening_count(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (from /proc/net/tcp; SO_REUSEPORT gives >1)."""
    want = f"0100007F:{port:04X}"
    count = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[1] == want and parts[3] == "0A":
                count += 1
    return count


def children_map() -> dict[int, list[int]]:
    """Parent pid -> child pids, for every process on the machine."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def _status_kib(pid: int, key: str, path: str) -> int:
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pids: list[int]) -> int:
    """Sum of VmRSS over ``pids`` (KiB)."""
    return sum(_status_kib(p, "VmRSS:", "status") for p in pids)


def pss_kib(pids: list[int]) -> int:
    """Sum of Pss over ``pids`` (KiB): shared pages split between the processes sharing them."""
    return sum(_status_kib(p, "Pss:", "smaps_rollup") for p in pids)


def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def own_dir(workdir: Path, name: str) -> Path:
    """A process's own directory (config, cwd). Logs live elsewhere (``log_path``): Passthru
    watches its config's directory for identifier files, so a log written there would wake
    that watcher on every line."""
    path = workdir / name
    path.mkdir(exist_ok=True)
    return path


def log_path(workdir: Path, name: str) -> Path:
    """Where a process's stdout and stderr go."""
    path = workdir / "logs"
    path.mkdir(exist_ok=True)
    return path / f"{name}.log"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pids``, including their reaped children (sslh-fork's)."""
    user = system = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def _die_with_parent() -> None:
    """preexec_fn: ask the kernel to SIGKILL this child when the bench process dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# -- processes ------------------------------------------------------------------------------------
@dataclass
class Proc:
    """One foreground process (with its descendants) listening on 127.0.0.1:``port``."""

    name: str
    argv: list[str]
    workdir: Path  # the run's temp dir: the log goes to logs/, the process runs in its own subdir
    port: int
    listeners: int = 1  # listening sockets to wait for (SO_REUSEPORT workers each have one)
    env: dict[str, str] | None = None
    stop_signal: int = signal.SIGTERM
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return log_path(self.workdir, self.name)

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until it listens; raise BenchError with its log if it does not."""
        if not wait_until(lambda: listening_count(self.port) == 0, 5.0):
            raise BenchError(f"{self.name}: port {self.port} is already in use")
        env = {**os.environ, **(self.env or {})}
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=own_dir(self.workdir, self.name),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while listening_count(self.port) < self.listeners:
            if self.popen.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise BenchError(f"{self.name} did not start: {shlex.join(self.argv)}\n--- {self.log_path}:\n{tail}")
            time.sleep(0.05)

    def pids(self) -> list[int]:
        """The process and its descendants (Passthru workers, sslh-fork children)."""
        if self.popen is None or self.popen.poll() is not None:
            return []
        return process_tree(self.popen.pid)

    def stop(self, grace: float = 8.0) -> None:
        """Signal the process group, wait up to ``grace`` seconds, then SIGKILL what is left."""
        if self.popen is None:
            return
        pgid = self.popen.pid  # its own session: pgid == pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, self.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self.popen = None
        # Descendants (sslh-fork's per-connection children) may still hold the listening socket
        # for a moment while they exit.
        wait_until(lambda: listening_count(self.port) == 0, 5.0)


# -- backends -------------------------------------------------------------------------------------
NGINX_CONF = """\
# Generated by bench/peers.py: one process (master_process off), no access log.
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
worker_rlimit_nofile 65536;
events {{
    worker_connections 16384;
    multi_accept on;
}}
http {{
    access_log off;
    client_body_temp_path {dir}/nginx-tmp/body;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    default_type text/html;
    sendfile on;
    keepalive_timeout 30s;
    server {{
        listen {host}:{port} backlog=4096 default_server;
        server_name {server_name};
        root {dir}/www;
        location / {{ index index.html; }}
    }}
}}
"""


@dataclass
class Backends:
    """nginx, an iperf3 server and the holding server, on their own free ports."""

    workdir: Path
    nginx_port: int
    iperf_port: int
    hold_port: int
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    def create(cls, workdir: Path) -> Backends:
        nginx_port, iperf_port, hold_port = free_ports(3)
        return cls(workdir, nginx_port, iperf_port, hold_port)

    def start(self) -> None:
        d = own_dir(self.workdir, "backends")
        (d / "www").mkdir(exist_ok=True)
        (d / "www" / "index.html").write_bytes(PAGE)
        (d / "nginx-tmp").mkdir(exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=d, host=LOOPBACK, port=self.nginx_port, server_name=HOST))
        nginx = ["nginx", "-p", str(d), "-e", str(d / "nginx-error.log"), "-c", str(conf)]
        iperf = ["iperf3", "-s", "-B", LOOPBACK, "-p", str(self.iperf_port)]
        hold = [sys.executable, str(HERE / "holdserver.py"), str(self.hold_port)]
        w = self.workdir
        self.procs = [
            Proc("nginx", nginx, w, self.nginx_port),
            Proc("iperf3-server", iperf, w, self.iperf_port),
            Proc("holdserver", hold, w, self.hold_port),
        ]
        for proc in self.procs:
            proc.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


# -- targets --------------------------------------------------------------------------------------
@dataclass
class Target:
    """Something a figure is measured through: a proxy process, or nothing (direct)."""

    name: str
    figures: tuple[str, ...]
    port: int | None = None
    proc: Proc | None = None
    note: str = ""
    memory_connections: int | None = None  # a cap below the run's count, for this target only
    cpu_accounted: bool = True  # False where /proc cannot add up the CPU (sslh-fork's children)

    def address(self, figure: str, backends: Backends) -> tuple[str, int]:
        """Where a client connects for ``figure``."""
        assert self.port is not None
        return (LOOPBACK, self.port)

    def start(self) -> None:
        if self.proc is not None:
            self.proc.start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def restart(self) -> None:
        self.stop()
        self.start()

    def pids(self) -> list[int]:
        return self.proc.pids() if self.proc is not None else []


class Direct(Target):
    """Clients connect straight to the backend the figure uses."""

    def address(self, figure: str, backends: Backends) -> tuple[str, int]:
        port = backends.iperf_port if figure == THROUGHPUT else backends.nginx_port
        return (LOOPBACK, port)


PASSTHRU_CONF = """\
# Generated by bench/peers.py
listen: [{host}:{port}]
workers: {workers}
timeouts: {{identify: 3s, connect: 5s, idle: 1h}}
{extra}routes:
  - name: web
    match: {{protocol: http, host: {server_name}}}
    to: {host}:{nginx}
  - name: tls
    match: {{protocol: tls, sni: {server_name}}}
    to: {host}:{nginx}
  - name: ssh
    match: {{protocol: ssh}}
    to: {host}:{hold}
default: {default}
"""

HAPROXY_CONF = """\
# Generated by bench/peers.py: mode tcp, routing on the first bytes like Passthru.
global
    nbthread {workers}
    maxconn {maxconn}
defaults
    mode tcp
{options}    timeout connect 5s
    timeout client 1h
    timeout server 1h
frontend bench
    bind {host}:{port}
    tcp-request inspect-delay 3s
    acl is_tls req.ssl_hello_type 1
    acl is_ssh req.payload(0,4) -m bin 5353482d
    tcp-request content accept if HTTP
    tcp-request content accept if is_tls
    tcp-request content accept if is_ssh
{otherwise}    use_backend web if HTTP {{ req.hdr(host) -i {server_name} }}
    use_backend web if is_tls {{ req.ssl_sni -i {server_name} }}
    use_backend hold if is_ssh
    default_backend iperf
backend web
    server nginx {host}:{nginx}
backend hold
    server hold {host}:{hold}
backend iperf
    server iperf {host}:{iperf}
"""


SSLH_CONF = """\
# Generated by bench/peers.py. No user/chroot: sslh never tries to drop privileges.
# log_level 0: no line per connection (like Passthru with --log-level WARNING).
# fork: false on ssh, so sslh-select keeps those connections in its own process.
foreground: true;
numeric: true;
timeout: 3;
listen: ( {{ host: "{host}"; port: "{port}"; }} );
protocols:
(
    {{ name: "tls"; host: "{host}"; port: "{nginx}"; sni_hostnames: [ "{server_name}" ]; log_level: 0; }},
    {{ name: "http"; host: "{host}"; port: "{nginx}"; log_level: 0; }},
    {{ name: "ssh"; host: "{host}"; port: "{hold}"; fork: false; log_level: 0; }},
    {{ name: "anyprot"; host: "{host}"; port: "{iperf}"; log_level: 0; }},
    {{ name: "timeout"; host: "{host}"; port: "{hold}"; log_level: 0; }}
);
on-timeout: "timeout";
"""


#: What HAProxy does with bytes that are none of the above. For the iperf3 figure: route to the
#: default backend as soon as iperf3's 37-byte cookie is there. For the hostile figure, as
#: Passthru with `default: reject`: wait (inspect-delay, or a full buffer), then close.
HAPROXY_OTHER_TO_DEFAULT = """\
    # iperf3's 37-byte cookie is neither; decide as soon as it is all there.
    acl is_other req.len ge 37
    tcp-request content accept if is_other
"""
HAPROXY_OTHER_REJECTED = """\
    # Anything else: rejected once inspect-delay runs out or the buffer is full (hostile figure).
    tcp-request content reject
"""


def haproxy_maxconn() -> int:
    """A maxconn HAProxy can honour under our open-files limit (two sockets each, and pipes with splice)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(1000, min(100_000, (soft - 200) // 3))


#: Every target name, in report order. `passthru-ids` is Passthru with the repo's example
#: identifiers loaded (issue 11's last row). The hostile figure runs `passthru` and `haproxy`
#: rows through twins of them whose `default` rejects (see ``hostile_twin``).
TARGET_NAMES = (
    "direct",
    "passthru",
    "passthru-info",
    "passthru-ids",
    "haproxy",
    "haproxy-splice",
    "sslh-select",
    "sslh-fork",
)


@dataclass
class TargetFactory:
    """Writes each target's config into the run's temp dir and builds its Target."""

    workdir: Path
    backends: Backends
    passthru_cmd: list[str]
    workers: int

    def _ports(self, default: str) -> dict[str, object]:
        b = self.backends
        return {
            "host": LOOPBACK,
            "server_name": HOST,
            "nginx": b.nginx_port,
            "hold": b.hold_port,
            "iperf": b.iperf_port,
            "default": default,
        }

    def passthru(
        self,
        name: str,
        port: int,
        figures: tuple[str, ...],
        *,
        level: str = "WARNING",
        identifiers: Path | None = None,
        default: str | None = None,
    ) -> Target:
        """Passthru with the bench routes; ``identifiers``: copy these files into its
        identifiers_dir; ``default``: what unmatched bytes get (the iperf3 server)."""
        d = own_dir(self.workdir, name)
        extra = ""
        if identifiers is not None:
            shutil.copytree(identifiers, d / "identifiers", ignore=shutil.ignore_patterns("__pycache__"))
            extra = "identifiers_dir: identifiers\n"
        conf = d / "passthru.yaml"
        default = default or f"{LOOPBACK}:{self.backends.iperf_port}"
        conf.write_text(PASSTHRU_CONF.format(port=port, workers=self.workers, extra=extra, **self._ports(default)))
        argv = [*self.passthru_cmd, "run", "-c", str(conf), "--log-level", level]
        proc = Proc(name, argv, self.workdir, port, self.workers)
        note = f"{self.workers} workers, --log-level {level}"
        if identifiers is not None:
            note += (
                f", identifiers_dir: a copy of the repo's {', '.join(sorted(p.stem for p in identifiers.glob('*.py')))}"
            )
        return Target(name, figures, port, proc, note)

    def haproxy(
        self, name: str, port: int, figures: tuple[str, ...], *, splice: bool = False, reject: bool = False
    ) -> Target:
        """HAProxy mode tcp with the bench routes; ``reject``: unmatched bytes are closed after
        inspect-delay instead of going to the iperf3 server at 37 bytes."""
        conf = own_dir(self.workdir, name) / "haproxy.cfg"
        conf.write_text(
            HAPROXY_CONF.format(
                options="    option splice-request\n    option splice-response\n" if splice else "",
                otherwise=HAPROXY_OTHER_REJECTED if reject else HAPROXY_OTHER_TO_DEFAULT,
                port=port,
                workers=self.workers,
                maxconn=haproxy_maxconn(),
                **self._ports(""),
            )
        )
        proc = Proc(name, ["haproxy", "-db", "-f", str(conf)], self.workdir, port)
        if splice:
            note = (
                f"mode tcp, nbthread {self.workers}, option splice-request + splice-response (zero-copy like Passthru)"
            )
        else:
            note = f"mode tcp, nbthread {self.workers}, default options"
        return Target(name, figures, port, proc, note)

    def sslh(self, name: str, port: int) -> Target:
        conf = own_dir(self.workdir, name) / "sslh.cfg"
        conf.write_text(SSLH_CONF.format(port=port, **self._ports("")))
        binary = "/usr/sbin/sslh-select" if name == "sslh-select" else "/usr/sbin/sslh"
        proc = Proc(name, [binary, "-f", f"-F{conf}"], self.workdir, port)
        cap = SSLH_SELECT_MAX_CONNECTIONS if name == "sslh-select" else None
        note = "1 process, select(2)" if name == "sslh-select" else "one process per connection"
        note += "; HTTP routed by protocol (sslh has no Host rule)"
        return Target(name, PROXY_FIGURES, port, proc, note, cap, cpu_accounted=name == "sslh-select")

    def hostile_twin(self, name: str, port: int) -> Target:
        """The hostile figure's `passthru` / `haproxy`: the same routes, but bytes no route
        matches are closed (Passthru `default: reject`; HAProxy `tcp-request content reject`
        after inspect-delay 3s) rather than sent to the iperf3 server. Both wait for the whole
        HTTP head or TLS ClientHello they route by, as the main targets do."""
        twin = f"{name}-reject"
        if name == "passthru":
            target = self.passthru(twin, port, (HOSTILE,), default="reject")
        else:
            target = self.haproxy(twin, port, (HOSTILE,), reject=True)
        target.name, target.note = name, ""  # the row is Passthru's / HAProxy's; the proc keeps its own name
        return target


def make_targets(
    workdir: Path,
    backends: Backends,
    passthru_cmd: list[str],
    workers: int,
    wanted: list[str] | None = None,
    identifiers: Path | None = None,
) -> list[Target]:
    """All targets (or those named in ``wanted``), configured but not started. ``identifiers``:
    the directory `passthru-ids` copies (the repo's identifiers/)."""
    names = [n for n in TARGET_NAMES if wanted is None or n in wanted]
    if identifiers is None:
        names = [n for n in names if n != "passthru-ids"]
    twins = [n for n in ("passthru", "haproxy") if n in names]
    ports = free_ports(len(names) + len(twins))
    make = TargetFactory(workdir, backends, passthru_cmd, workers)
    targets: list[Target] = []
    for name, port in zip(names, ports, strict=False):
        if name == "direct":
            targets.append(Direct(name, (THROUGHPUT, CONNRATE, LATENCY), note="straight to the backend"))
        elif name == "passthru":
            targets.append(make.passthru(name, port, PROXY_FIGURES))
        elif name == "passthru-info":
            targets.append(make.passthru(name, port, (CONNRATE, LATENCY), level="INFO"))
        elif name == "passthru-ids":
            targets.append(make.passthru(name, port, (CONNRATE,), identifiers=identifiers))
        elif name == "haproxy":
            targets.append(make.haproxy(name, port, PROXY_FIGURES))
        elif name == "haproxy-splice":
            targets.append(make.haproxy(name, port, (THROUGHPUT,), splice=True))
        else:  # sslh-select / sslh-fork
            targets.append(make.sslh(name, port))
    for name, port in zip(twins, ports[len(names) :], strict=True):
        targets.append(make.hostile_twin(name, port))
    return targets
