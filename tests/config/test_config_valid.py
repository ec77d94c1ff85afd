"""Valid configs: the DESIGN.md example, defaults, listeners, targets and name resolution."""

import ipaddress
import os
import socket
from pathlib import Path

from passthru.config import Config, Limits, Route, Timeouts, load_config
from passthru.config.model import FieldRule
from passthru.identify import builtin_names
from passthru.identify.base import HOST, NUMBER, TEXT
from tests.config.config_helpers import FIXTURES, MINIMAL


def test_design_example_loads_in_full():
    config = load_config(FIXTURES / "design.yaml", builtin_names() | {"minecraft"})
    assert [str(listener.address) for listener in config.listeners] == ["127.0.0.1:8443", "[::1]:8443"]
    assert config.listeners[1].address.family == socket.AF_INET6
    assert config.timeouts == Timeouts(identify=3.0, connect=5.0, idle=3600.0)
    assert [r.name for r in config.routes] == ["web", "ssh", "api", "game", "mail"]
    web = config.route_named("web")
    assert web.protocol == "tls"
    assert dict(web.fields) == {
        "sni": FieldRule("exact", ("example.com", "*.example.com"), HOST),
        "alpn": FieldRule("exact", ("h2", "http/1.1"), TEXT),
    }
    assert web.line == 9
    api = config.route_named("api")
    assert [str(e) for e in api.to] == ["127.0.0.2:80", "127.0.0.3:80"]
    assert api.balance == "round_robin" and api.proxy_protocol is None
    mail = config.route_named("mail")
    assert (mail.balance, mail.proxy_protocol) == ("least_conn", "v2")
    assert config.default is None
    assert config.on_timeout == Route("on_timeout", None, {}, (config.on_timeout.to[0],), line=26)
    assert str(config.on_timeout.to[0]) == "127.0.0.1:22"
    assert config.identifiers_dir == (FIXTURES / "identifiers").absolute()
    assert config.workers == (os.cpu_count() or 1)
    assert str(config.admin) == "127.0.0.1:9901"
    assert config.route_named("nope") is None
    assert hash(config)  # frozen all the way down: usable as a dict key / in sets


def test_defaults(load):
    config = load(MINIMAL)
    assert isinstance(config, Config)
    assert config.path == Path("config.yaml")
    assert config.timeouts == Timeouts() == Timeouts(identify=3.0, connect=5.0, idle=3600.0)
    assert config.limits == Limits() == Limits(identify_bytes=16384)
    assert config.default is None and config.on_timeout is None
    assert config.identifiers_dir == Path("identifiers").absolute()
    assert config.workers == 1
    assert config.admin is None
    assert config.declarative == ()
    assert config.log_format == "text"
    assert config.listeners[0].proxy_protocol is None and config.listeners[0].trusted_proxies == ()


def test_endpoint_resolution_numeric_and_localhost(load):
    config = load(
        """\
        listen: ["127.0.0.1:1", "[::1]:2", "localhost:3"]
        routes: []
        """
    )
    v4, v6, local = (listener.address for listener in config.listeners)
    assert (v4.family, v4.sockaddr) == (socket.AF_INET, ("127.0.0.1", 1))
    assert (v6.family, v6.sockaddr[:2]) == (socket.AF_INET6, ("::1", 2))
    assert local.host == "localhost" and str(local) == "localhost:3"
    assert local.sockaddr[0] in {"127.0.0.1", "::1"} and local.sockaddr[1] == 3


def test_numeric_hosts_never_reach_the_resolver(load, monkeypatch):
    real = socket.getaddrinfo
    calls = []

    def spy(host, port, *args, **kwargs):
        calls.append(kwargs.get("flags", 0))
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    load(MINIMAL)
    assert calls and all(flags & socket.AI_NUMERICHOST for flags in calls)


def test_default_and_on_timeout_forms(load):
    config = load(
        """\
        listen: 127.0.0.1:8443
        routes:
          - name: ssh
            match: {protocol: ssh}
            to: 127.0.0.1:22
          - name: rest
            to: 127.0.0.1:80
        default: rest
        on_timeout: ssh
        """
    )
    assert config.default is config.route_named("rest") and config.default.catch_all
    assert config.on_timeout is config.route_named("ssh")
    assert load(MINIMAL + "default: 127.0.0.1:9\n").on_timeout.name == "default"  # on_timeout falls back
    assert load(MINIMAL + "default: 127.0.0.1:9\non_timeout: reject\n").on_timeout is None


def test_listener_mapping_with_proxy_protocol(load):
    config = load(
        """\
        listen:
          - 127.0.0.1:8443
          - {address: "[::1]:8443", proxy_protocol: accept, trusted_proxies: [10.0.0.0/8, 192.0.2.7, "2001:db8::/32"]}
        routes: []
        """
    )
    plain, proxied = config.listeners
    assert plain.proxy_protocol is None
    assert proxied.proxy_protocol == "accept"
    assert proxied.trusted_proxies == tuple(
        ipaddress.ip_network(n) for n in ("10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32")
    )


def test_match_values_become_text_and_match_is_optional(load):
    config = load(
        """\
        listen: 127.0.0.1:8443
        routes:
          - name: odd
            match: {protocol: socks5, port: 8080, methods: true, host: [a.example, B.example]}
            to: 127.0.0.1:1
          - name: all
            to: [127.0.0.1:2]
          - name: also-all
            match:
            to: 127.0.0.1:3
        """
    )
    odd, all_, also = config.routes
    assert dict(odd.fields) == {
        "port": FieldRule("exact", ("8080",), NUMBER),
        "methods": FieldRule("exact", ("true",), TEXT),
        "host": FieldRule("exact", ("a.example", "B.example"), HOST),
    }
    assert all_.catch_all and also.catch_all


def test_other_settings(load):
    config = load(
        MINIMAL
        + """\
timeouts: {identify: 500ms, idle: 5m}
limits: {identify_bytes: 64KiB}
workers: 4
admin: "[::1]:9901"
log_format: json
identifiers_dir: /opt/passthru/identifiers
"""
    )
    assert config.timeouts == Timeouts(identify=0.5, connect=5.0, idle=300.0)
    assert config.limits.identify_bytes == 65536
    assert config.workers == 4
    assert str(config.admin) == "[::1]:9901"
    assert config.log_format == "json"
    assert config.identifiers_dir == Path("/opt/passthru/identifiers")


def test_known_protocols_from_caller(load):
    text = MINIMAL.replace("protocol: ssh", "protocol: greeting")
    assert load(text, known_protocols=frozenset({"ssh", "greeting"})).routes[0].protocol == "greeting"


def test_load_config_reads_file_and_resolves_identifiers_dir_beside_it(tmp_path):
    path = tmp_path / "conf" / "passthru.yaml"
    path.parent.mkdir()
    path.write_text(MINIMAL + "identifiers_dir: ids\n")
    config = load_config(path)
    assert config.path == path
    assert config.identifiers_dir == tmp_path / "conf" / "ids"
