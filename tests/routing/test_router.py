"""Routing rules: first match wins, lists mean any-of, host globs, offered lists (alpn)."""

from __future__ import annotations

from dataclasses import dataclass, field

from passthru.routing import Router


@dataclass(frozen=True)
class R:
    name: str
    protocol: str | None
    fields: dict = field(default_factory=dict)


ROUTES = [
    R("h2", "tls", {"sni": ("example.com",), "alpn": ("h2",)}),
    R("web", "tls", {"sni": ("example.com", "*.example.com")}),
    R("api", "http", {"host": ("api.example.com",)}),
    R("ssh", "ssh"),
    R("greeting", "greeting", {"who": ("bob",)}),
]


def route_name(protocol, fields) -> str | None:
    route = Router(ROUTES).route(protocol, fields)
    return route.name if route else None


def test_first_match_wins_and_alpn_offered_list_matches_any() -> None:
    assert route_name("tls", {"sni": "example.com", "alpn": ["http/1.1", "h2"]}) == "h2"
    assert route_name("tls", {"sni": "example.com", "alpn": ["http/1.1"]}) == "web"
    assert route_name("tls", {"sni": "example.com"}) == "web"


def test_host_glob_matches_below_not_the_apex_and_is_case_insensitive() -> None:
    assert route_name("tls", {"sni": "WWW.Example.COM"}) == "web"
    assert route_name("tls", {"sni": "a.b.example.com."}) == "web"
    assert route_name("tls", {"sni": "badexample.com"}) is None
    assert route_name("tls", {"sni": "example.com.evil"}) is None


def test_missing_field_never_matches_and_protocol_must_agree() -> None:
    assert route_name("tls", {}) is None
    assert route_name("http", {"host": "API.example.com"}) == "api"
    assert route_name("http", {"sni": "api.example.com"}) is None
    assert route_name("tls", {"host": "api.example.com"}) is None
    assert route_name("ssh", {"software": "x"}) == "ssh"


def test_non_host_fields_compare_exactly() -> None:
    assert route_name("greeting", {"who": "bob"}) == "greeting"
    assert route_name("greeting", {"who": "Bob"}) is None


def test_catch_all_route_takes_unidentified_too() -> None:
    router = Router([R("ssh", "ssh"), R("rest", None)])
    assert router.route(None, {}).name == "rest"
    assert router.route("ssh", {}).name == "ssh"
