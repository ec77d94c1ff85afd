"""Routing rules as the config builds them: first match wins, lists mean any-of, host globs,
offered lists (alpn), the regex/prefix/suffix/not forms, client networks and listener names."""

from __future__ import annotations

import textwrap

from passthru.config import load_config_text
from passthru.routing import Router

LISTEN = "listen: [{address: 127.0.0.1:1, name: public}, {address: 127.0.0.1:2, name: internal}]\n"


def router(routes: str, **kwargs) -> Router:
    text = LISTEN + "routes:\n" + textwrap.indent(textwrap.dedent(routes), "  ")
    return Router(load_config_text(text, "config.yaml", **kwargs).routes)


def name(r: Router, protocol, fields, client=None, listener=None) -> str | None:
    found = r.match(protocol, fields, client, listener)
    return found.route.name if found else None


BASIC = router(
    """\
    - {name: h2, match: {protocol: tls, sni: example.com, alpn: h2}, to: 127.0.0.1:9}
    - {name: web, match: {protocol: tls, sni: [example.com, "*.example.com"]}, to: 127.0.0.1:9}
    - {name: api, match: {protocol: http, host: api.example.com}, to: 127.0.0.1:9}
    - {name: proxied, match: {protocol: proxy, authority: "*.Example.org"}, to: 127.0.0.1:9}
    - {name: ssh, match: {protocol: ssh}, to: 127.0.0.1:9}
    - {name: socks, match: {protocol: socks5, port: 443}, to: 127.0.0.1:9}
    """
)


def test_first_match_wins_and_alpn_offered_list_matches_any() -> None:
    assert name(BASIC, "tls", {"sni": "example.com", "alpn": ["http/1.1", "h2"]}) == "h2"
    assert name(BASIC, "tls", {"sni": "example.com", "alpn": ["http/1.1"]}) == "web"
    assert name(BASIC, "tls", {"sni": "example.com"}) == "web"


def test_host_kind_comes_from_the_declaration_glob_below_not_apex_case_insensitive() -> None:
    assert name(BASIC, "tls", {"sni": "WWW.Example.COM"}) == "web"
    assert name(BASIC, "tls", {"sni": "a.b.example.com."}) == "web"
    assert name(BASIC, "tls", {"sni": "badexample.com"}) is None
    assert name(BASIC, "tls", {"sni": "example.com.evil"}) is None
    # the proxy identifier declares authority a host name (the old fixed list missed it)
    assert name(BASIC, "proxy", {"authority": "db.EXAMPLE.org"}) == "proxied"


def test_missing_field_never_matches_and_protocol_must_agree() -> None:
    assert name(BASIC, "tls", {}) is None
    assert name(BASIC, "http", {"host": "API.example.com"}) == "api"
    assert name(BASIC, "tls", {"host": "api.example.com"}) is None
    assert name(BASIC, "ssh", {"software": "x"}) == "ssh"


def test_number_fields_compare_by_value() -> None:
    assert name(BASIC, "socks5", {"port": 443}) == "socks"
    assert name(BASIC, "socks5", {"port": "0443"}) == "socks"
    assert name(BASIC, "socks5", {"port": 4430}) is None


def test_text_fields_compare_exactly() -> None:
    r = router(
        """\
        - {name: greet, match: {protocol: greeting, who: bob}, to: 127.0.0.1:9}
        """,
        known_protocols={"greeting": None},
    )
    assert name(r, "greeting", {"who": "bob"}) == "greet"
    assert name(r, "greeting", {"who": "Bob"}) is None


def test_catch_all_route_takes_unidentified_too() -> None:
    r = router("- {name: ssh, match: {protocol: ssh}, to: 127.0.0.1:9}\n- {name: rest, to: 127.0.0.1:9}\n")
    assert name(r, None, {}) == "rest"
    assert name(r, "ssh", {}) == "ssh"


PATTERNS = router(
    r"""
    - name: tenants
      match: {protocol: tls, sni: {regex: '(?P<tenant>[a-z0-9-]{1,40})\.apps\.example\.com'}}
      to: "{tenant}.svc.internal:8443"
      allow: ["*.svc.internal"]
    - {name: v2, match: {protocol: http, path: {prefix: [/v2/, /v3/]}}, to: 127.0.0.1:9}
    - {name: images, match: {protocol: http, path: {suffix: .png}}, to: 127.0.0.1:9}
    - {name: modern, match: {protocol: tls, sni: {not: [legacy.example.com, "*.old.example.com"]}}, to: 127.0.0.1:9}
    - {name: no-h2, match: {protocol: tls, alpn: {not: h2}}, to: 127.0.0.1:9}
    - {name: rx-not, match: {protocol: http, host: {not: {regex: 'a+'}}}, to: 127.0.0.1:9}
    """
)


def test_regex_is_whole_value_case_folded_for_hosts_and_captures_groups() -> None:
    found = PATTERNS.match("tls", {"sni": "Acme.apps.example.com"})
    assert found is not None and found.route.name == "tenants"
    assert dict(found.groups) == {"tenant": "acme"}
    # the whole value must match: no partial match at either end
    assert name(PATTERNS, "tls", {"sni": "x.acme.apps.example.com.evil"}) == "modern"
    assert name(PATTERNS, "tls", {"sni": "a" * 41 + ".apps.example.com"}) == "modern"


def test_prefix_and_suffix_any_of() -> None:
    assert name(PATTERNS, "http", {"path": "/v3/users"}) == "v2"
    assert name(PATTERNS, "http", {"path": "/v1/x.png"}) == "images"
    assert name(PATTERNS, "http", {"path": "/v1/x.PNG", "host": "aaa"}) is None


def test_not_negates_and_a_missing_field_still_never_matches() -> None:
    assert name(PATTERNS, "tls", {"sni": "legacy.example.com", "alpn": ["http/1.1"]}) == "no-h2"
    assert name(PATTERNS, "tls", {"sni": "x.old.EXAMPLE.com", "alpn": ["h2", "http/1.1"]}) is None
    assert name(PATTERNS, "tls", {"sni": "new.example.com"}) == "modern"
    assert name(PATTERNS, "tls", {"alpn": ["http/1.1"]}) == "no-h2"  # no sni: 'modern' cannot match
    assert name(PATTERNS, "tls", {}) is None
    assert name(PATTERNS, "http", {"path": "/", "host": "aab"}) == "rx-not"
    assert name(PATTERNS, "http", {"path": "/", "host": "AAA"}) is None


NETWORKS = router(
    """\
    - {name: office, match: {protocol: ssh, client: ["192.0.2.0/24", "2001:db8::/32", 127.0.0.2]}, to: 127.0.0.1:9}
    - {name: inside, match: {listener: [internal]}, to: 127.0.0.1:9}
    - {name: ssh, match: {protocol: ssh, listener: public}, to: 127.0.0.1:9}
    """
)


def test_client_networks_ipv4_ipv6_single_addresses_and_mapped() -> None:
    assert name(NETWORKS, "ssh", {}, "192.0.2.77", "public") == "office"
    assert name(NETWORKS, "ssh", {}, "2001:db8::5", "public") == "office"
    assert name(NETWORKS, "ssh", {}, "::ffff:192.0.2.1", "public") == "office"
    assert name(NETWORKS, "ssh", {}, "127.0.0.2", "public") == "office"
    assert name(NETWORKS, "ssh", {}, "127.0.0.3", "public") == "ssh"
    assert name(NETWORKS, "ssh", {}, None, "public") == "ssh"


def test_listener_names() -> None:
    assert name(NETWORKS, "http", {}, "127.0.0.3", "internal") == "inside"
    assert name(NETWORKS, "http", {}, "127.0.0.3", "public") is None
    assert name(NETWORKS, "ssh", {}, "127.0.0.3", None) is None


def test_postgres_tls_only_when_a_postgres_rule_tests_sni_or_alpn() -> None:
    assert not BASIC.postgres_tls
    plain = router("- {name: pg, match: {protocol: postgres, user: app}, to: 127.0.0.1:9}\n")
    assert not plain.postgres_tls
    assert router("- {name: pg, match: {protocol: postgres, sni: db.example}, to: 127.0.0.1:9}\n").postgres_tls
