"""Real clients (openssl s_client, curl, OpenSSH) through Passthru reach the backend their
route names, exactly as if connected directly."""

from __future__ import annotations

import getpass
import hashlib
import http.server
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_listening
from tests.support.tls import TLSBackend, make_certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def s_client(port: int, servername: str, alpn: str | None = None) -> str:
    command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", servername, "-quiet", "-ign_eof"]
    if alpn:
        command += ["-alpn", alpn]
    result = subprocess.run(command, input=b"", capture_output=True, timeout=20, check=False)
    return result.stdout.decode(errors="replace")


def test_openssl_sni_and_alpn_reach_different_backends(passthru, certificate) -> None:
    cert, key = certificate
    with (
        TLSBackend("alpha", cert, key) as alpha,
        TLSBackend("beta", cert, key) as beta,
        TLSBackend("h2only", cert, key) as h2,
    ):
        proc = passthru(
            f"""routes:
  - name: h2-for-beta
    match: {{protocol: tls, sni: beta.example.com, alpn: [h2]}}
    to: {h2.address}
  - name: alpha
    match: {{protocol: tls, sni: ["alpha.example.com", "*.alpha.example.com"]}}
    to: {alpha.address}
  - name: beta
    match: {{protocol: tls, sni: beta.example.com}}
    to: {beta.address}
"""
        )
        assert "[alpha sni=alpha.example.com alpn=None]" in s_client(proc.port, "alpha.example.com")
        assert "[alpha sni=WWW.alpha.example.com" in s_client(proc.port, "WWW.alpha.example.com")
        assert "[beta sni=beta.example.com alpn=http/1.1]" in s_client(proc.port, "beta.example.com", "http/1.1")
        assert "[h2only sni=beta.example.com alpn=h2]" in s_client(proc.port, "beta.example.com", "h2")
        log = proc.wait_for_log("route=h2-for-beta")
        assert 'fields={"alpn":["h2"],"sni":"beta.example.com","version":"1.3"}' in log


class _NamedHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.server.tag} host={self.headers['Host']} path={self.path}\n".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def http_backend(tag: str) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NamedHandler)
    server.tag = tag  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def curl(port: int, host: str, path: str = "/") -> str:
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-H", f"Host: {host}", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_curl_host_headers_reach_different_backends(passthru) -> None:
    api, www = http_backend("api"), http_backend("www")
    try:
        proc = passthru(
            f"""routes:
  - name: api
    match: {{protocol: http, host: api.example.com}}
    to: 127.0.0.1:{api.server_address[1]}
  - name: www
    match: {{protocol: http, host: [www.example.com, example.com]}}
    to: 127.0.0.1:{www.server_address[1]}
"""
        )
        assert curl(proc.port, "api.example.com", "/v1/items") == "api host=api.example.com path=/v1/items\n"
        assert curl(proc.port, "EXAMPLE.com:8080") == "www host=EXAMPLE.com:8080 path=/\n"
        assert curl(proc.port, "www.example.com") == "www host=www.example.com path=/\n"
    finally:
        api.shutdown()
        www.shutdown()


@pytest.fixture
def sshd(tmp_path: Path):
    """A real OpenSSH server on a free loopback port, accepting one generated key."""
    sshd_bin = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd_bin) or shutil.which("ssh") is None:
        pytest.skip("OpenSSH server/client not installed (.ci/apt-packages.txt lists them)")
    if os.geteuid() != 0:
        pytest.skip("sshd needs root for privilege separation in this test")
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "user_key")], check=True)
    (tmp_path / "authorized_keys").write_text((tmp_path / "user_key.pub").read_text())
    port = free_port()
    config = tmp_path / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {tmp_path}/host_key
PidFile {tmp_path}/sshd.pid
AuthorizedKeysFile {tmp_path}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
"""
    )
    process = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        wait_listening("127.0.0.1", port)
        yield port, tmp_path / "user_key"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_openssh_through_passthru(passthru, sshd) -> None:
    sshd_port, user_key = sshd
    proc = passthru(
        f"""routes:
  - name: ssh
    match: {{protocol: ssh}}
    to: 127.0.0.1:{sshd_port}
"""
    )
    result = subprocess.run(
        [
            "ssh",
            "-p",
            str(proc.port),
            "-i",
            str(user_key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            f"{getpass.getuser()}@127.0.0.1",
            "echo through-passthru; head -c 200000 /dev/zero | sha256sum",
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert "through-passthru" in out
    # the remote side hashed 200 kB it generated; the digest came back intact through the relay
    assert out.split()[1] == hashlib.sha256(bytes(200000)).hexdigest()
    log = proc.wait_for_log("route=ssh")
    assert '"software":"OpenSSH_' in log
