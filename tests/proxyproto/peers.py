"""Real PROXY protocol peers for end-to-end tests: nginx reading headers, HAProxy sending them.

Both run in the foreground (so the test owns and stops the process) on loopback only, from
configs generated into a temporary directory.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.net import free_port, recv_all, wait_listening
from tests.support.passthru_process import PassthruProcess

#: nginx's answer: the client the PROXY header named, then the destination it named.
NGINX_BODY = "$proxy_protocol_addr:$proxy_protocol_port\\n$proxy_protocol_server_addr:$proxy_protocol_server_port\\n"


def require(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{binary} is not installed (.ci/apt-packages.txt lists it)")
    return path


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Foreground:
    """A peer process started in the foreground, output to ``<dir>/<name>.log``."""

    name = "peer"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.log_path = directory / f"{self.name}.log"
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def listening(self) -> list[tuple[str, int]]:
        raise NotImplementedError

    def start(self):  # type: ignore[no-untyped-def]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        try:
            for host, port in self.listening():
                wait_listening(host, port)
            if self.process.poll() is not None:
                raise TimeoutError
        except TimeoutError:
            self.stop()
            raise AssertionError(f"{self.name} did not start:\n{self.logs()}") from None
        return self

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Nginx(_Foreground):
    """nginx with ``listen … proxy_protocol`` on 127.0.0.1 and [::1], answering every request with
    the addresses of the PROXY header it received (``NGINX_BODY``)."""

    name = "nginx"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.port4 = free_port("127.0.0.1")
        self.port6 = free_port("::1")
        d = directory
        (d / "nginx.conf").write_text(
            f"""daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    server {{
        listen 127.0.0.1:{self.port4} proxy_protocol;
        listen [::1]:{self.port6} proxy_protocol;
        location / {{
            default_type text/plain;
            return 200 "{NGINX_BODY}";
        }}
    }}
}}
"""
        )

    def command(self) -> list[str]:
        d = self.directory
        return [require("nginx"), "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")]

    def listening(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.port4), ("::1", self.port6)]

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass(frozen=True)
class Frontend:
    """A HAProxy TCP frontend on 127.0.0.1:port and [::1]:port forwarding to ``server`` with
    ``options`` (``send-proxy``, ``send-proxy-v2``, ``check`` …); ``rules`` are extra frontend
    lines."""

    name: str
    server: str
    options: str
    rules: str = ""
    port: int = 0


class HAProxy(_Foreground):
    """HAProxy in TCP mode, in the foreground (``-db``), one frontend/backend pair per Frontend."""

    name = "haproxy"

    def __init__(self, directory: Path, frontends: list[Frontend]) -> None:
        super().__init__(directory)
        self.frontends = {f.name: Frontend(f.name, f.server, f.options, f.rules, free_port()) for f in frontends}
        sections = [
            f"frontend {f.name}\n    bind 127.0.0.1:{f.port}\n    bind [::1]:{f.port}\n"
            + (f"    {f.rules}\n" if f.rules else "")
            + f"    default_backend {f.name}\nbackend {f.name}\n    server p {f.server} {f.options}\n"
            for f in self.frontends.values()
        ]
        self.config = directory / "haproxy.cfg"
        self.config.write_text(
            """global
    nbthread 1
    maxconn 256
    log stderr format raw local0 info
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
"""
            + "".join(sections)
        )

    def port(self, name: str) -> int:
        return self.frontends[name].port

    def command(self) -> list[str]:
        return [require("haproxy"), "-db", "-f", str(self.config)]

    def listening(self) -> list[tuple[str, int]]:
        return [(host, f.port) for f in self.frontends.values() for host in ("127.0.0.1", "::1")]


def curl(host: str, port: int, vhost: str) -> tuple[list[str], str]:
    """GET / with ``Host: vhost`` from a real curl; (body lines, curl's own ``ip:port``)."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-g",
            "--noproxy",
            "*",
            "--max-time",
            "10",
            "-H",
            f"Host: {vhost}",
            "-w",
            "%{local_ip} %{local_port}",
            f"http://{url_host(host)}:{port}/",
        ],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    *body, local = result.stdout.decode().split("\n")
    local_ip, local_port = local.split(" ")
    return [line for line in body if line], f"{local_ip}:{local_port}"


def exchange_from(host: str, port: int, payload: bytes) -> tuple[tuple[str, int], bytes]:
    """Send ``payload``, half-close, read to EOF; (our own address, the reply)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect((host, port))
        local = sock.getsockname()[:2]
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return local, recv_all(sock)


def log_address(address: tuple[str, int]) -> str:
    """An address as Passthru's log writes it: ``ip:port`` or ``[ip]:port``."""
    return f"{url_host(address[0])}:{address[1]}"


TIMEOUTS = "timeouts:\n  identify: 1s\n  connect: 2s\n  idle: 30s\n"


def start_passthru(directory: Path, config_text: str, listen: list[str]) -> PassthruProcess:
    """Passthru on ``config_text``, ready once it logged "listening on" each of ``listen`` (as it
    writes them: ``127.0.0.1:80``, ``[::1]:80``). No probe connection, so its log holds only the
    test's own connections (a probe would be a protocol error on a PROXY-accepting listener)."""
    proc = PassthruProcess(directory, config_text, listen=[]).start()
    try:
        for address in listen:
            proc.wait_for_log(f"listening on {address}\n", timeout=15)
    except AssertionError:
        proc.stop()
        raise
    return proc


def connection_line(proc: PassthruProcess, client: str, timeout: float = 5.0) -> str:
    """The per-connection log line of the connection from ``client`` (``ip:port`` as logged)."""
    needle = f" client={client} listener="
    proc.wait_for_log(needle, timeout)
    lines = [line for line in proc.logs().splitlines() if needle in line and " end=" in line]
    assert len(lines) == 1, lines
    return lines[0]
