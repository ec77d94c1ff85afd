"""The new match forms and upstream templates with real clients through a real Passthru:
openssl s_client for regex, not and templated TLS routes; curl for prefix and not on HTTP;
connections from different loopback addresses and listeners for client and listener."""

from __future__ import annotations

import socket

from tests.e2e.test_real_clients import certificate, curl, http_backend, s_client
from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess
from tests.support.tls import TLSBackend

__all__ = ["certificate"]  # the module-scoped fixture, shared with the real-client tests


def test_regex_not_and_a_template_with_openssl(passthru, certificate) -> None:
    cert, key = certificate
    with (
        TLSBackend("two", cert, key, host="127.0.0.2") as two,
        TLSBackend("modern", cert, key) as modern,
        TLSBackend("legacy", cert, key) as legacy,
        TagServer("canary", host="127.0.0.9", port=two.port) as canary,
    ):
        proc = passthru(
            rf"""routes:
  - name: by-number
    match: {{protocol: tls, sni: {{regex: '(?P<n>[0-9]{{1,3}})\.ip\.example\.test'}}}}
    to: "127.0.0.{{n}}:{two.port}"
    allow: [127.0.0.0/30]
  - name: modern
    match: {{protocol: tls, sni: {{not: [legacy.example.test, "*.old.example.test"]}}}}
    to: {modern.address}
  - name: legacy
    match: {{protocol: tls}}
    to: {legacy.address}
"""
        )
        assert "[two sni=2.ip.example.test alpn=None]" in s_client(proc.port, "2.ip.example.test")
        assert "[modern sni=www.example.test" in s_client(proc.port, "www.example.test")
        assert "[legacy sni=a.old.example.test" in s_client(proc.port, "a.old.example.test")
        assert "[legacy sni=LEGACY.example.test" in s_client(proc.port, "LEGACY.example.test")
        # 127.0.0.9 is outside allow: the canary listening there never sees a connection
        assert s_client(proc.port, "9.ip.example.test") == ""
        log = proc.wait_for_log("end=upstream_not_allowed")
        assert "upstream '127.0.0.9' is not in allow" in log
        assert canary.connections == 0


def test_prefix_and_not_with_curl(passthru) -> None:
    v2, other, fallback = http_backend("v2"), http_backend("other"), http_backend("fallback")
    try:
        proc = passthru(
            f"""routes:
  - name: api
    match: {{protocol: http, host: api.example.test, path: {{prefix: /v2/}}}}
    to: 127.0.0.1:{v2.server_address[1]}
  - name: not-api
    match: {{protocol: http, host: {{not: {{suffix: .example.test}}}}}}
    to: 127.0.0.1:{other.server_address[1]}
  - name: rest
    match: {{protocol: http}}
    to: 127.0.0.1:{fallback.server_address[1]}
"""
        )
        assert curl(proc.port, "api.example.test", "/v2/users").startswith("v2 ")
        assert curl(proc.port, "API.EXAMPLE.TEST", "/v1/users").startswith("fallback ")
        assert curl(proc.port, "elsewhere.org", "/v2/users").startswith("other ")
    finally:
        for server in (v2, other, fallback):
            server.shutdown()


def from_address(source: str, port: int, payload: bytes = b"SSH-2.0-test\r\n") -> bytes:
    """Connect from ``source`` (a loopback address) to the same family's loopback and return
    what the backend answered."""
    v6 = ":" in source
    with socket.socket(socket.AF_INET6 if v6 else socket.AF_INET) as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("::1" if v6 else "127.0.0.1", port))
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return recv_all(sock)


def test_client_networks_and_listener_names_with_real_connections(tmp_path) -> None:
    public, internal, proxied, six = free_port(), free_port(), free_port(), free_port("::1")
    with TagServer("office") as office, TagServer("inside") as inside, TagServer("rest") as rest:
        config = f"""listen:
  - {{address: 127.0.0.1:{public}, name: public}}
  - {{address: 127.0.0.1:{internal}, name: internal}}
  - {{address: 127.0.0.1:{proxied}, name: edge, proxy_protocol: accept, trusted_proxies: [127.0.0.1]}}
  - {{address: "[::1]:{six}", name: six}}
timeouts: {{identify: 1s}}
routes:
  - name: office
    match: {{protocol: ssh, client: ["127.0.0.2", "192.0.2.0/24", "2001:db8::/32", "::1"]}}
    to: {office.address}
  - name: inside
    match: {{listener: internal}}
    to: {inside.address}
  - name: rest
    match: {{protocol: ssh, listener: [public, edge]}}
    to: {rest.address}
"""
        listen = [("127.0.0.1", port) for port in (public, internal, proxied)] + [("::1", six)]
        with PassthruProcess(tmp_path, config, listen):
            assert from_address("127.0.0.2", public).startswith(b"[office]")
            assert from_address("127.0.0.3", public).startswith(b"[rest]")
            assert from_address("127.0.0.3", internal).startswith(b"[inside]")
            assert from_address("127.0.0.2", internal).startswith(b"[office]")  # first match wins
            assert from_address("::1", six).startswith(b"[office]")  # IPv6 client
            # behind a trusted PROXY header, the client is the address the header names
            header = b"PROXY TCP4 192.0.2.10 127.0.0.1 5000 22\r\n"
            assert from_address("127.0.0.1", proxied, header + b"SSH-2.0-x\r\n").startswith(b"[office]")
            header = b"PROXY TCP4 198.51.100.1 127.0.0.1 5000 22\r\n"
            assert from_address("127.0.0.1", proxied, header + b"SSH-2.0-x\r\n").startswith(b"[rest]")
