"""Real PostgreSQL servers for tests: the Debian ``postgresql`` package, each cluster initialised
in a temporary directory owned by ``postgres`` (PostgreSQL refuses to run as root), on an
ephemeral 127.0.0.1 port, with TLS from a throw-away certificate. Started and stopped by the test.

Missing binaries fail the test: ``make test`` installs them (``.ci/apt-packages.txt``), so a skip
would hide a broken setup. Not being root (needed to run the server as ``postgres``) skips it on a
developer machine and fails it under CI (``CI`` set).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_listening
from tests.support.tls import self_signed

ACCOUNT = "postgres"


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when something the test needs is missing."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI installs .ci/apt-packages.txt: this must not be skipped)")
    pytest.skip(reason)


def server_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def as_postgres(*command: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", ACCOUNT, "--", *command], check=True, capture_output=True, **kwargs)


class PostgresServer:
    """One cluster with TLS; ``database`` is created in it so a client can tell servers apart."""

    def __init__(self, tag: str, common_name: str, *, ssl: bool = True) -> None:
        initdb, postgres = server_bin("initdb"), server_bin("postgres")
        if initdb is None or postgres is None or shutil.which("psql") is None:
            pytest.fail("PostgreSQL (initdb, postgres, psql) not installed: see .ci/apt-packages.txt")
        require(os.geteuid() == 0 and shutil.which("runuser") is not None, "needs root to run postgres as 'postgres'")
        self.initdb, self.postgres = initdb, postgres
        self.tag, self.common_name, self.ssl = tag, common_name, ssl
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"passthru-pg-{tag}-"))
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> PostgresServer:
        data = self.directory / "data"
        cert, key = self_signed(self.directory, "server", self.common_name)
        shutil.chown(self.directory, ACCOUNT, ACCOUNT)
        for path in (cert, key):
            shutil.chown(path, ACCOUNT, ACCOUNT)
        key.chmod(0o600)
        as_postgres(self.initdb, "-D", str(data), "-A", "trust", "-U", ACCOUNT, "--no-sync", cwd=self.directory)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.directory),
            "fsync": "off",
            "ssl": "on" if self.ssl else "off",
            "ssl_cert_file": str(cert),
            "ssl_key_file": str(key),
        }
        options = [arg for k, v in settings.items() for arg in ("-c", f"{k}={v}")]
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(
            ["runuser", "-u", ACCOUNT, "--", self.postgres, "-D", str(data), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.directory,
        )
        try:
            wait_listening("127.0.0.1", self.port, timeout=30)
            self.sql(f"CREATE DATABASE {self.tag}", dbname="postgres", host="127.0.0.1", port=self.port)
        except BaseException:
            self.__exit__()
            raise
        return self

    def sql(self, query: str, **conninfo: object) -> subprocess.CompletedProcess:
        return psql(query, **conninfo)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()  # smart shutdown; the clients are gone
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def psql(query: str, **conninfo: object) -> subprocess.CompletedProcess:
    """Run real ``psql`` with a libpq connection string built from ``conninfo``."""
    settings = {"user": ACCOUNT, "connect_timeout": "10", **conninfo}
    dsn = " ".join(f"{k}={v}" for k, v in settings.items())
    return subprocess.run(
        ["psql", dsn, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", query],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PGGSSENCMODE": "disable"},
        check=False,
    )
