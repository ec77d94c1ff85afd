"""PostgreSQL by SNI through one Passthru port, with real psql and two real PostgreSQL servers.

Passthru answers the client's SSLRequest with S, reads the ClientHello, routes on its SNI,
replays the SSLRequest to the chosen server (which must say S) and relays: TLS is end to end
(the server's pg_stat_ssl shows the session encrypted, with the client's SNI as its name).
"""

from __future__ import annotations

import socket
import socketserver
import struct
from collections.abc import Iterator

import pytest

from passthru.server.pgwire import GSSENC_REQUEST, SSL_REQUEST
from tests.e2e.test_real_clients import certificate, s_client
from tests.pgsni.servers import PostgresServer, psql
from tests.support.backends import _Backend
from tests.support.hello import client_hello
from tests.support.net import recv_all
from tests.support.tls import TLSBackend

__all__ = ["certificate"]  # the module-scoped fixture, shared with the real-client tests

WHO = (
    "select current_database() || ' ' || coalesce((select ssl::text from pg_stat_ssl where pid = pg_backend_pid()), '')"
)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    with PostgresServer("alpha", "db-a.example.test") as a, PostgresServer("beta", "db-b.example.test") as b:
        yield a, b


def routes(a: PostgresServer, b: PostgresServer, extra: str = "") -> str:
    return f"""routes:
  - {{name: pg-a, match: {{protocol: postgres, sni: db-a.example.test}}, to: 127.0.0.1:{a.port}}}
  - {{name: pg-b, match: {{protocol: postgres, sni: "*.b.example.test"}}, to: 127.0.0.1:{b.port}}}
{extra}  - {{name: pg-plain, match: {{protocol: postgres}}, to: 127.0.0.1:{b.port}}}
"""


def through(proc, host: str, dbname: str, sslmode: str = "require"):
    return psql(WHO, host=host, hostaddr="127.0.0.1", port=proc.port, dbname=dbname, sslmode=sslmode)


def reaches(proc, host: str, dbname: str, sslmode: str = "require") -> str:
    """``database ssl`` as the server that answered sees it; the psql run must succeed."""
    result = through(proc, host, dbname, sslmode)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_two_databases_by_sni_on_one_port_tls_end_to_end(servers, passthru) -> None:
    a, b = servers
    proc = passthru(routes(a, b))
    assert reaches(proc, "db-a.example.test", "alpha") == "alpha true"
    assert reaches(proc, "eu.b.example.test", "beta") == "beta true"
    # the wrong name reaches the other server, which has no such database: routing really used the SNI
    crossed = through(proc, "db-a.example.test", "beta")
    assert crossed.returncode != 0 and 'database "beta" does not exist' in crossed.stderr
    log = proc.wait_for_log("route=pg-b")
    assert '"sni":"db-a.example.test"' in log and '"sni":"eu.b.example.test"' in log


def test_sslmode_disable_still_routes_by_protocol(servers, passthru) -> None:
    a, b = servers
    proc = passthru(routes(a, b))
    # in clear, to the protocol route (server b)
    assert reaches(proc, "db-a.example.test", "beta", sslmode="disable") == "beta false"
    proc.wait_for_log("route=pg-plain")


def test_ssl_without_a_matching_name_goes_to_the_protocol_route(servers, passthru) -> None:
    a, b = servers
    proc = passthru(routes(a, b))
    assert reaches(proc, "db-c.example.test", "beta") == "beta true"


class _RefuseTLSHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.backend.connections += 1  # type: ignore[attr-defined]
        if self.request.recv(8) == SSL_REQUEST:
            self.request.sendall(b"N")
        self.request.recv(1)


class RefusesTLS(_Backend):
    """A backend that answers an SSLRequest with N (TLS off) and counts the connections."""

    handler = _RefuseTLSHandler


def test_a_backend_refusing_tls_is_an_early_failure(servers, passthru) -> None:
    a, b = servers
    with RefusesTLS() as refuser:
        pool = (
            "  - {name: pool, match: {protocol: postgres, sni: pool.example.test}, balance: first,\n"
            f"     to: [127.0.0.1:{refuser.port}, 127.0.0.1:{a.port}]}}\n"
        )
        alone = "  - {name: alone, match: {protocol: postgres, sni: alone.example.test},"
        alone += f" to: 127.0.0.1:{refuser.port}}}\n"
        proc = passthru(routes(a, b, pool + alone))
        assert reaches(proc, "pool.example.test", "alpha") == "alpha true"  # the pool's next backend took it
        assert refuser.connections == 1
        refused = through(proc, "alone.example.test", "alpha")
        assert refused.returncode != 0
        log = proc.wait_for_log("end=upstream_refused_tls")
        assert "answered the SSLRequest with b'N'" in log


def test_gssenc_request_is_answered_n_and_not_forwarded(servers, passthru) -> None:
    a, b = servers
    proc = passthru(routes(a, b))
    startup = b"\x00\x03\x00\x00user\x00postgres\x00database\x00beta\x00\x00"
    with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
        sock.sendall(GSSENC_REQUEST)
        assert sock.recv(1) == b"N"
        sock.sendall(struct.pack("!I", len(startup) + 4) + startup)
        kind, _length, code = struct.unpack("!cII", sock.recv(9))
        assert (kind, code) == (b"R", 0)  # AuthenticationOk from server b: it saw a plain startup
    proc.wait_for_log("route=pg-plain")


def test_without_an_sni_route_the_server_answers_the_sslrequest_itself(servers, passthru) -> None:
    _a, b = servers
    proc = passthru(f"routes:\n  - {{name: pg, match: {{protocol: postgres}}, to: 127.0.0.1:{b.port}}}\n")
    assert reaches(proc, "db-a.example.test", "beta") == "beta true"
    answers = []
    for port in (b.port, proc.port):  # directly, then through Passthru: the same server's answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(GSSENC_REQUEST)
            answers.append(sock.recv(1))
    assert answers[0] == answers[1]
    proc.wait_for_log("route=pg ")


def test_direct_tls_of_postgresql_17_routes_as_tls(passthru, certificate) -> None:
    """PostgreSQL 17's sslnegotiation=direct opens with a ClientHello (ALPN postgresql): a tls route."""
    cert, key = certificate
    with TLSBackend("direct", cert, key) as direct:
        proc = passthru(
            f"routes:\n  - {{name: pg-direct, match: {{protocol: tls, alpn: postgresql, sni: db-a.example.test}},"
            f" to: {direct.address}}}\n"
        )
        assert "[direct sni=db-a.example.test" in s_client(proc.port, "db-a.example.test", "postgresql")
        proc.wait_for_log("route=pg-direct")


class _AcceptTLSHandler(socketserver.BaseRequestHandler):
    """Reads up to the SSLRequest (after any PROXY header), answers S, then records the rest."""

    def handle(self) -> None:
        backend = self.server.backend  # type: ignore[attr-defined]
        head = b""
        while not head.endswith(SSL_REQUEST):
            head += self.request.recv(1)
        self.request.sendall(b"S")
        rest = b""
        while len(rest) < backend.expect:
            rest += self.request.recv(65536)
        backend.received.append((head, rest))
        self.request.sendall(b"after-tls")


class AcceptsTLS(_Backend):
    handler = _AcceptTLSHandler

    def __init__(self, expect: int) -> None:
        self.expect = expect
        super().__init__()


def test_backend_gets_proxy_header_then_sslrequest_and_its_s_is_consumed(passthru) -> None:
    hello = client_hello("db-x.example.test", ["postgresql"])
    with AcceptsTLS(len(hello)) as backend:
        proc = passthru(
            "routes:\n  - {name: pg-x, match: {protocol: postgres, sni: db-x.example.test, alpn: postgresql},"
            f" to: {backend.address}, proxy_protocol: v1}}\n"
        )
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.sendall(SSL_REQUEST)
            assert sock.recv(1) == b"S"  # Passthru's own answer
            sock.sendall(hello)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"after-tls"  # the backend's S was not passed on
        ((head, rest),) = backend.received
        assert head.startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ") and head.endswith(b"\r\n" + SSL_REQUEST)
        assert rest == hello
        log = proc.wait_for_log("route=pg-x")
        assert '"alpn":["postgresql"]' in log and '"request":"ssl"' in log
