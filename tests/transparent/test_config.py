"""The per-route ``transparent`` key: a YAML boolean, false by default; errors at file:line:column."""

from __future__ import annotations

import textwrap

import pytest

from passthru.config import ConfigErrors, Route, load_config_text
from passthru.config.edit import add_route, set_route
from passthru.config.routes import ROUTE_KEYS

BASE = """\
listen: 127.0.0.1:8443
routes:
  - name: ssh
    match: {protocol: ssh}
    to: 10.0.0.5:22
"""


def load(text: str):
    return load_config_text(textwrap.dedent(text), "config.yaml")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load(text)
    return str(info.value).splitlines()


def test_absent_means_false() -> None:
    assert load(BASE).routes[0].transparent is False


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("True", True)])
def test_booleans(value: str, expected: bool) -> None:
    assert load(BASE + f"    transparent: {value}\n").routes[0].transparent is expected


def test_in_a_flow_mapping_and_per_route() -> None:
    config = load(BASE + "  - {name: web, match: {protocol: tls}, to: 10.0.0.6:443, transparent: true}\n")
    assert [(r.name, r.transparent) for r in config.routes] == [("ssh", False), ("web", True)]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("yes", "'yes'"), ("1", "1"), ('"true"', "'true'"), ("[true]", "a list"), ("", "nothing (null)")],
)
def test_anything_but_a_boolean_is_an_error_at_its_position(value: str, shown: str) -> None:
    column = len("    transparent: ") + 1 if value else len("    ") + 1  # null: the key's position
    assert errors(BASE + f"    transparent: {value}\n") == [
        f"config.yaml:6:{column}: routes[1].transparent must be true or false, not {shown}"
    ]


def test_a_misspelt_key_is_named_with_the_right_one() -> None:
    (message,) = errors(BASE + "    transparant: true\n")
    assert message.startswith("config.yaml:6:5: unknown key 'transparant' in routes[1]")
    assert message.endswith("did you mean 'transparent'?")


def test_reported_with_the_route_s_other_errors_in_one_pass() -> None:
    text = BASE + "    transparent: on\n    balance: fastest\n"
    assert [line.split(": ", 1)[0] for line in errors(text)] == ["config.yaml:6:18", "config.yaml:7:14"]


def test_route_built_in_code_keeps_the_old_signature() -> None:
    route = Route("r", None, {}, ())
    assert route.transparent is False


def test_route_editing_writes_and_reads_it() -> None:
    assert ROUTE_KEYS[-1] == "transparent"
    text = add_route(BASE, {"name": "web", "match": {"protocol": "tls"}, "to": "10.0.0.6:443", "transparent": True})
    assert "    transparent: true\n" in text
    assert load(text).route_named("web").transparent is True
    changed = set_route(text, "web", {"transparent": False})
    assert load(changed).route_named("web").transparent is False
