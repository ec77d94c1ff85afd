"""Every edit command on a heavily commented config, comparing the whole file after the edit.

Each expected text is the original with exactly the lines the edit should touch replaced, so
every other byte (comments above, beside and below, blank lines, quoting, flow and block
style, key order) is asserted to be unchanged.
"""

from __future__ import annotations

import shutil

import pytest

from tests.config.cli_runner import run
from tests.config.config_helpers import FIXTURES

ORIGINAL = (FIXTURES / "commented.yaml").read_text()

WEB = """\
  # The public web site. HTTP/2 first.
  # Certificates live on the backend, never here.
  - name: web
    match: {protocol: tls, sni: ["example.com", '*.example.com'], alpn: [h2, http/1.1]}
    to: 127.0.0.1:8444             # nginx

"""
API = """\
  # Internal API: two backends, plain HTTP.
  - name: api
    match:
      protocol: http
      host: api.example.com
    to:
      - 127.0.0.2:80
      - 127.0.0.3:80
    # TODO: switch to least_conn after the load test

"""
MAIL = """\
  # Mail over TLS, with the client address in a PROXY header.
  - name: mail
    match: {protocol: tls, sni: 'mail.example.com'}
    to: [127.0.0.7:993, 127.0.0.8:993]
    balance: least_conn            # long-lived IMAP sessions
    proxy_protocol: v2
"""
NEW = """\
  - name: new
    match: {protocol: http, host: [a.example.com, b.example.com]}
    to: 127.0.0.5:80
"""
ADD_NEW = ("route", "add", "new", "--match", "protocol=http", "--match", "host=a.example.com")
ADD_NEW += ("--match", "host=b.example.com", "--to", "127.0.0.5:80")


def replaced(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} must occur exactly once"
    return text.replace(old, new)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    shutil.copy(FIXTURES / "commented.yaml", path)
    return path


def edited(config, *argv: str) -> str:
    assert run(*argv, "-c", str(config)) == 0
    return config.read_text()


def test_fixture_is_a_valid_config():
    from passthru.config import load_config

    assert [r.name for r in load_config(FIXTURES / "commented.yaml").routes] == ["web", "ssh", "api", "mail"]


def test_add_at_end(config):
    expected = replaced(ORIGINAL, MAIL, MAIL + "\n" + NEW)
    assert edited(config, *ADD_NEW) == expected


def test_add_before_first_goes_above_its_comment(config):
    expected = replaced(ORIGINAL, WEB, NEW + "\n" + WEB)
    assert edited(config, *ADD_NEW, "--before", "web") == expected


def test_add_after_middle_goes_after_its_trailing_comment(config):
    expected = replaced(ORIGINAL, API, API + NEW + "\n")
    assert edited(config, *ADD_NEW, "--after", "api") == expected


def test_add_with_several_upstreams_and_options(config):
    new = (
        "  - name: imaps\n"
        "    match: {protocol: tls, sni: imap.example.com}\n"
        "    to: [127.0.0.7:993, '[::1]:993']\n"
        "    balance: first\n"
        "    proxy_protocol: v1\n"
    )
    argv = ("route", "add", "imaps", "--match", "protocol=tls", "--match", "sni=imap.example.com")
    argv += ("--to", "127.0.0.7:993", "--to", "[::1]:993", "--balance", "first", "--proxy-protocol", "v1")
    assert edited(config, *argv, "--after", "ssh") == replaced(ORIGINAL, API, new + "\n" + API)


def test_remove_first(config):
    assert edited(config, "route", "remove", "web") == replaced(ORIGINAL, WEB, "")


def test_remove_middle(config):
    assert edited(config, "route", "remove", "api") == replaced(ORIGINAL, API, "")


def test_remove_last(config):
    assert edited(config, "route", "remove", "mail") == replaced(ORIGINAL, "\n" + MAIL, "")


def test_move_last_to_first(config):
    expected = replaced(replaced(ORIGINAL, "\n" + MAIL, ""), WEB, MAIL + "\n" + WEB)
    assert edited(config, "route", "move", "mail", "--before", "web") == expected


def test_move_first_after_middle(config):
    expected = replaced(replaced(ORIGINAL, WEB, ""), API, API + WEB)
    assert edited(config, "route", "move", "web", "--after", "api") == expected


def test_set_to_keeps_the_comment_beside_it(config):
    expected = replaced(
        ORIGINAL, "    to: 127.0.0.1:8444             # nginx\n", "    to: 127.0.0.1:9444             # nginx\n"
    )
    assert edited(config, "route", "set", "web", "--to", "127.0.0.1:9444") == expected


def test_set_to_several_on_a_scalar(config):
    expected = replaced(
        ORIGINAL, "    to: 127.0.0.1:8444             # nginx\n", "    to: [127.0.0.1:1, 127.0.0.1:2] # nginx\n"
    )
    assert edited(config, "route", "set", "web", "--to", "127.0.0.1:1", "--to", "127.0.0.1:2") == expected


def test_set_block_style_values_stay_block_style(config):
    argv = ("route", "set", "api", "--to", "127.0.0.4:80", "--to", "127.0.0.5:80", "--match", "protocol=http")
    argv += ("--match", "host=api2.example.com", "--balance", "least_conn")
    new_api = (
        API.replace("host: api.example.com", "host: api2.example.com")
        .replace("127.0.0.2:80", "127.0.0.4:80")
        .replace("127.0.0.3:80", "127.0.0.5:80")
        .replace("    # TODO", "    balance: least_conn\n    # TODO")
    )
    assert edited(config, *argv) == replaced(ORIGINAL, API, new_api)


def test_set_single_upstream_on_a_list_keeps_a_list(config):
    expected = replaced(ORIGINAL, "to: [127.0.0.7:993, 127.0.0.8:993]", "to: [127.0.0.7:993]")
    assert edited(config, "route", "set", "mail", "--to", "127.0.0.7:993") == expected


def test_set_adds_and_removes_options(config):
    expected = replaced(ORIGINAL, "    proxy_protocol: v2\n", "")
    expected = replaced(expected, "    to: 127.0.0.1:22\n", "    to: 127.0.0.1:22\n    proxy_protocol: v1\n")
    assert edited(config, "route", "set", "mail", "--proxy-protocol", "none") == replaced(
        ORIGINAL, "    proxy_protocol: v2\n", ""
    )
    assert edited(config, "route", "set", "ssh", "--proxy-protocol", "v1") == expected


def test_config_set_nested_key_keeps_comment_and_quotes(config):
    expected = replaced(ORIGINAL, "  identify: 3s                     #", "  identify: 500ms                  #")
    assert edited(config, "config", "set", "timeouts.identify", "500ms") == expected
    expected = replaced(expected, 'connect: "5s"', 'connect: "10s"')
    assert edited(config, "config", "set", "timeouts.connect", "10s") == expected


def test_config_set_a_key_that_does_not_exist_yet(config):
    expected = replaced(
        ORIGINAL, "admin: 127.0.0.1:9901\n", "admin: 127.0.0.1:9901\nlimits:\n  identify_bytes: 32KiB\n"
    )
    assert edited(config, "config", "set", "limits.identify_bytes", "32KiB") == expected
    expected = replaced(expected, "  identify_bytes: 32KiB\n", "  identify_bytes: 32KiB\nworkers: 4\n")
    assert edited(config, "config", "set", "workers", "4") == expected


def test_config_set_inside_a_route_by_name(config):
    expected = replaced(ORIGINAL, "    balance: least_conn ", "    balance: first      ")
    assert edited(config, "config", "set", "routes.mail.balance", "first") == expected


def test_config_set_a_top_level_scalar(config):
    expected = replaced(ORIGINAL, "default: reject                    #", "default: api                       #")
    assert edited(config, "config", "set", "default", "api") == expected


@pytest.mark.parametrize(
    ("key", "printed"),
    [
        ("timeouts.identify", "3s\n"),
        ("timeouts.connect", "5s\n"),
        ("listen.1", "[::1]:8443\n"),
        ("routes.api.to", "- 127.0.0.2:80\n- 127.0.0.3:80\n"),
        ("routes.0.match", "{protocol: tls, sni: [\"example.com\", '*.example.com'], alpn: [h2, http/1.1]}\n"),
        ("on_timeout", "ssh\n"),
    ],
)
def test_config_get(config, capsys, key, printed):
    assert run("config", "get", key, "-c", str(config)) == 0
    assert capsys.readouterr().out == printed


def test_config_get_missing_key(config, capsys):
    assert run("config", "get", "limits.identify_bytes", "-c", str(config)) == 1
    assert "'limits.identify_bytes' is not set" in capsys.readouterr().err


def test_route_list(config, capsys):
    assert run("route", "list", "-c", str(config)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "NAME  MATCH                                                        TO                           OPTIONS",
        "web   protocol=tls sni=example.com,*.example.com alpn=h2,http/1.1  127.0.0.1:8444",
        "ssh   protocol=ssh                                                 127.0.0.1:22",
        "api   protocol=http host=api.example.com                           127.0.0.2:80,127.0.0.3:80",
        "mail  protocol=tls sni=mail.example.com                            127.0.0.7:993,127.0.0.8:993  "
        "balance=least_conn proxy_protocol=v2",
        "default: reject",
        "on_timeout: ssh",
    ]
