"""``to`` with weights and ``health_check``: accepted forms, and errors at file:line:column."""

from __future__ import annotations

import textwrap

import pytest

from passthru.config import ConfigErrors, load_config_text
from passthru.config.model import HealthCheck


def load(text: str):
    return load_config_text(textwrap.dedent(text), "config.yaml")


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load(text)
    return str(info.value).splitlines()


POOL = """\
listen: 127.0.0.1:8443
routes:
  - name: api
    to:
      - 127.0.0.1:8001
      - {address: 127.0.0.1:8002, weight: 3}
    balance: least_conn
"""


def test_old_forms_still_load_with_weight_one() -> None:
    one = load("listen: 127.0.0.1:1\nroutes:\n  - {name: a, to: 127.0.0.1:2}\n").routes[0]
    assert [str(e) for e in one.to] == ["127.0.0.1:2"]
    assert one.backends == ((one.to[0], 1),)
    assert one.health_check is None
    several = load("listen: 127.0.0.1:1\nroutes:\n  - {name: a, to: [127.0.0.1:2, 127.0.0.1:3]}\n").routes[0]
    assert [w for _, w in several.backends] == [1, 1]


def test_mapping_entries_carry_weights() -> None:
    route = load(POOL).routes[0]
    assert [str(e) for e in route.to] == ["127.0.0.1:8001", "127.0.0.1:8002"]
    assert route.weights == (1, 3)
    assert route.balance == "least_conn"


def test_health_check_defaults_and_values() -> None:
    route = load(POOL + "    health_check: {}\n").routes[0]
    assert route.health_check == HealthCheck(interval=2.0, timeout=1.0, send=None, expect=None, rise=2, fall=3)
    text = POOL + textwrap.indent(
        textwrap.dedent("""\
            health_check:
              interval: 500ms
              timeout: 200ms
              send: "PING\\r\\n"
              expect: {hex: "2b 50 4f 4e 47"}
              rise: 1
              fall: 5
            """),
        "    ",
    )
    check = load(text).routes[0].health_check
    assert check == HealthCheck(interval=0.5, timeout=0.2, send=b"PING\r\n", expect=b"+PONG", rise=1, fall=5)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{address: 127.0.0.1:8002, weight: 0}",
            "config.yaml:6:43: routes[1].to[2].weight must be a whole number between 1 and 256, not 0",
        ),
        (
            "{address: 127.0.0.1:8002, weight: 257}",
            "config.yaml:6:43: routes[1].to[2].weight must be a whole number between 1 and 256, not 257",
        ),
        (
            "{address: 127.0.0.1:8002, weight: heavy}",
            "config.yaml:6:43: routes[1].to[2].weight must be a whole number between 1 and 256, not 'heavy'",
        ),
        (
            "{address: 127.0.0.1:8002, wieght: 3}",
            "config.yaml:6:35: unknown key 'wieght' in routes[1].to[2] (valid: address, weight); "
            "did you mean 'weight'?",
        ),
        ("{weight: 3}", "config.yaml:6:9: missing required key 'address' in routes[1].to[2]"),
        (
            "{address: 127.0.0.1, weight: 3}",
            "config.yaml:6:19: routes[1].to[2].address: invalid address '127.0.0.1': expected host:port",
        ),
        (
            "{address: 127.0.0.1:8001, weight: 2}",
            "config.yaml:6:9: routes[1].to[2]: 127.0.0.1:8001 is the same backend as 127.0.0.1:8001 (line 5): "
            "list it once and give it a weight (1..256) instead",
        ),
    ],
)
def test_bad_backend_entries(entry: str, message: str) -> None:
    text = POOL.replace("{address: 127.0.0.1:8002, weight: 3}", entry)
    (line,) = errors(text)
    assert line.startswith(message)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "health_check: {intervall: 2s}",
            "config.yaml:8:20: unknown key 'intervall' in routes[1].health_check "
            "(valid: interval, timeout, send, expect, rise, fall); did you mean 'interval'?",
        ),
        (
            "health_check: {interval: 2}",
            "config.yaml:8:30: routes[1].health_check.interval: invalid duration 2: "
            "use a number with a unit: 500ms, 3s, 5m, 1h",
        ),
        (
            "health_check: {timeout: 0s}",
            "config.yaml:8:29: routes[1].health_check.timeout: invalid duration '0s': must be more than zero",
        ),
        (
            "health_check: {rise: 0}",
            "config.yaml:8:26: routes[1].health_check.rise must be a whole number between 1 and 100, not 0",
        ),
        (
            "health_check: {fall: many}",
            "config.yaml:8:26: routes[1].health_check.fall must be a whole number between 1 and 100, not 'many'",
        ),
        (
            'health_check: {expect: ""}',
            'config.yaml:8:28: routes[1].health_check.expect is empty: write a string ("\\x16\\x03", '
            'one character per byte) or {hex: "1603"}',
        ),
        (
            'health_check: {send: {hex: "zz"}}',
            'config.yaml:8:32: routes[1].health_check.send.hex must be pairs of hex digits, e.g. "16 03 01", '
            "not 'zz'",
        ),
        (
            "health_check: [interval, 2s]",
            "config.yaml:8:19: routes[1].health_check must be a mapping of keys to values, e.g. "
            '{interval: 2s, timeout: 1s, send: "PING\\r\\n", expect: "+PONG"} ({} for defaults), not a list',
        ),
        (
            "health_check:",
            "config.yaml:8:5: routes[1].health_check must be a mapping of keys to values",
        ),
    ],
)
def test_bad_health_checks(body: str, message: str) -> None:
    (line,) = errors(POOL + "    " + body + "\n")
    assert line.startswith(message), line


def test_every_error_is_reported_in_one_pass() -> None:
    text = POOL.replace("weight: 3", "weight: 0") + "    health_check: {rise: 0, fall: 0}\n"
    assert [line.split(": ", 1)[0] for line in errors(text)] == [
        "config.yaml:6:43",
        "config.yaml:8:26",
        "config.yaml:8:35",
    ]
