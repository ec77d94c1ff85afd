"""``route add`` / ``route set`` with the new match forms, client, listener and templates: the
whole file is compared after each edit, so comments and layout elsewhere stay byte for byte."""

from __future__ import annotations

import pytest

from tests.config.cli_runner import run
from tests.config.test_config_edit_commands import MAIL, ORIGINAL, WEB, config, edited, replaced

__all__ = ["config"]


TENANTS = (
    (
        *("route", "add", "tenants", "--match", "protocol=tls"),
        *("--match", r"sni={regex: '(?P<tenant>[a-z0-9-]{1,40})\.apps\.example\.com'}"),
        *("--to", "{tenant}.svc.internal:8443", "--allow", "*.svc.internal", "--allow", "10.20.0.0/16"),
    ),
    "  - name: tenants\n"
    "    match: {protocol: tls, sni: {regex: '(?P<tenant>[a-z0-9-]{1,40})\\.apps\\.example\\.com'}}\n"
    "    to: '{tenant}.svc.internal:8443'\n"
    "    allow: ['*.svc.internal', 10.20.0.0/16]\n",
)
OFFICE = (
    (
        *("route", "add", "office", "--match", "protocol=http", "--match", "client=192.0.2.0/24"),
        *("--match", "client=2001:db8::/32", "--match", "path={prefix: /v2/}"),
        *("--match", "host={not: [legacy.example.com]}", "--to", "127.0.0.1:81"),
    ),
    "  - name: office\n"
    "    match: {protocol: http, client: [192.0.2.0/24, 2001:db8::/32], path: {prefix: /v2/}, host: {not: "
    "[legacy.example.com]}}\n"
    "    to: 127.0.0.1:81\n",
)


@pytest.mark.parametrize(("argv", "new"), [TENANTS, OFFICE], ids=["regex-template-allow", "client-prefix-not"])
def test_add_with_the_new_forms(config, argv: tuple[str, ...], new: str) -> None:
    assert edited(config, *argv) == replaced(ORIGINAL, MAIL, MAIL + "\n" + new)
    assert edited(config, "route", "move", argv[2], "--before", "web") == replaced(ORIGINAL, WEB, new + "\n" + WEB)


def test_set_match_keeps_the_comments_around(config) -> None:
    argv = ("route", "set", "web", "--match", "protocol=tls", "--match", "sni={suffix: .example.com}")
    expected = replaced(
        ORIGINAL,
        """    match: {protocol: tls, sni: ["example.com", '*.example.com'], alpn: [h2, http/1.1]}\n""",
        "    match: {protocol: tls, sni: {suffix: .example.com}}\n",
    )
    assert edited(config, *argv) == expected


def test_refused_forms_leave_the_file_alone(config, capsys) -> None:
    assert run("route", "set", "web", "--match", "sni={regex: 'a(b'}", "-c", str(config)) == 1
    assert "routes[1].match.sni.regex is not a valid regular expression" in capsys.readouterr().err
    assert run("route", "set", "web", "--match", "protocol=tls", "--match", "snii=x", "-c", str(config)) == 1
    assert "did you mean 'sni'?" in capsys.readouterr().err
    assert run("route", "set", "web", "--to", "{x}.svc:443", "-c", str(config)) == 1
    assert "needs allow" in capsys.readouterr().err
    assert run("route", "set", "web", "--match", "sni={a: [", "-c", str(config)) == 1
    assert "not valid YAML" in capsys.readouterr().err
    assert config.read_text() == ORIGINAL


def test_route_list_shows_tests_as_written(config, capsys) -> None:
    argv = ("route", "set", "web", "--match", "protocol=tls", "--match", "sni={not: [a.example.com]}")
    assert run(*argv, "-c", str(config)) == 0
    capsys.readouterr()
    assert run("route", "list", "-c", str(config)) == 0
    assert "web   protocol=tls sni={not: [a.example.com]}" in capsys.readouterr().out
