"""TLS test material: a self-signed certificate made with the real openssl CLI, and a TLS
backend that reports the SNI and ALPN it saw (proving the ClientHello reached it untouched)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from pathlib import Path


def self_signed(directory: Path, name: str, common_name: str) -> tuple[Path, Path]:
    """``<name>.crt`` and ``<name>.key``: a throw-away RSA certificate from the openssl CLI."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={common_name}",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def make_certificate(directory: Path) -> tuple[Path, Path]:
    return self_signed(directory, "cert", "passthru.test")


class TLSBackend:
    """Terminates TLS (the backend's job, never Passthru's) and answers ``[tag sni=.. alpn=..]``."""

    def __init__(self, tag: str, cert: Path, key: Path, host: str = "127.0.0.1") -> None:
        self.tag = tag
        self.host = host
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.context.set_alpn_protocols(["h2", "http/1.1"])
        self.seen_sni: list[str | None] = []
        self.context.sni_callback = self._on_sni
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def _on_sni(self, _sock, name, _ctx) -> None:
        self.seen_sni.append(name)

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(raw,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            with self.context.wrap_socket(raw, server_side=True) as tls:
                sni = self.seen_sni[-1] if self.seen_sni else None
                answer = f"[{self.tag} sni={sni} alpn={tls.selected_alpn_protocol()}]\n"
                tls.sendall(answer.encode())
        except (OSError, ssl.SSLError):
            pass

    def __enter__(self) -> TLSBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
