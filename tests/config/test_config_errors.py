"""Every refused config names file:line:column and what would be valid; all errors in one pass."""

import pytest

from passthru.config import ConfigError, ConfigErrors, load_config, load_config_text
from tests.config.config_helpers import MINIMAL

ADDRESS_HINT = "expected host:port or [IPv6]:port, e.g. 127.0.0.1:22, example.com:443 or [::1]:22"
TOP_KEYS = (
    "listen, timeouts, limits, routes, on_timeout, default, identifiers_dir, identifiers, workers, admin, log_format, "
    "user, group"
)


def test_unknown_top_level_key_lists_valid_keys_and_suggests(errors):
    assert errors(MINIMAL + "tiemouts: {identify: 3s}\n") == [
        f"config.yaml:6:1: unknown key 'tiemouts' (valid: {TOP_KEYS}); did you mean 'timeouts'?"
    ]


def test_unknown_nested_key(errors):
    assert errors(MINIMAL + "timeouts:\n  identify: 3s\n  idel: 1h\n") == [
        "config.yaml:8:3: unknown key 'idel' in timeouts (valid: identify, connect, idle, resolve); "
        "did you mean 'idle'?"
    ]


@pytest.mark.parametrize("value", ["3", "fast", "0s", "-2s"])
def test_bad_duration(errors, value):
    (line,) = errors(MINIMAL + f"timeouts:\n  connect: {value}\n")
    assert line.startswith("config.yaml:7:12: timeouts.connect: invalid duration ")
    assert "use a number with a unit: 500ms, 3s, 5m, 1h" in line


def test_unknown_protocol_lists_known_ones(errors):
    text = MINIMAL.replace("protocol: ssh", "protocol: shh")
    assert errors(text, known_protocols={"http", "ssh", "tls"}) == [
        "config.yaml:4:23: routes[1].match.protocol: unknown protocol 'shh' (known: http, ssh, tls); "
        "did you mean 'ssh'?"
    ]


def test_known_protocols_include_callers_and_declared_ones(errors):
    text = MINIMAL.replace("protocol: ssh", "protocol: nope") + "identifiers:\n  - {name: mine, prefix: x}\n"
    (line,) = errors(text, known_protocols={"ssh", "greeting"})
    assert line == "config.yaml:4:23: routes[1].match.protocol: unknown protocol 'nope' (known: greeting, mine, ssh)"


@pytest.mark.parametrize(
    ("address", "column", "message"),
    [
        ("127.0.0.1", 9, f"invalid address '127.0.0.1': {ADDRESS_HINT}"),
        (
            "127.0.0.1:0",
            9,
            f"invalid port in '127.0.0.1:0': the port must be a number from 1 to 65535 ({ADDRESS_HINT})",
        ),
        ("127.0.0.1:http", 9, "invalid port in '127.0.0.1:http'"),
        ("'::1:22'", 9, "invalid address '::1:22': IPv6 addresses go in brackets, e.g. [::1]:22"),
        ("'[localhost]:22'", 9, f"invalid address '[localhost]:22': {ADDRESS_HINT}"),
        ("'[::1]22'", 9, f"invalid address '[::1]22': {ADDRESS_HINT}"),
        (":22", 9, f"invalid address ':22': {ADDRESS_HINT}"),
        ("22", 9, f"invalid address 22: {ADDRESS_HINT}"),
        ("no-such-host.invalid:22", 9, "cannot resolve host 'no-such-host.invalid'"),
    ],
)
def test_bad_addresses(errors, address, column, message):
    (line,) = errors(MINIMAL.replace("to: 127.0.0.1:22", f"to: {address}"))
    assert line.startswith(f"config.yaml:5:{column}: routes[1].to: {message}")


def test_bad_address_in_list_points_at_the_item(errors):
    text = MINIMAL.replace("to: 127.0.0.1:22", "to: [127.0.0.1:22, 127.0.0.1:70000]")
    assert errors(text) == [
        f"config.yaml:5:24: routes[1].to[2]: invalid port in '127.0.0.1:70000': "
        f"the port must be a number from 1 to 65535 ({ADDRESS_HINT})"
    ]


def test_route_without_to(errors):
    text = "listen: 127.0.0.1:1\nroutes:\n  - name: ssh\n    match: {protocol: ssh}\n"
    assert errors(text) == [
        "config.yaml:3:5: routes[1]: missing required key 'to': "
        "where to send matching connections, e.g. to: 127.0.0.1:8443"
    ]


def test_route_with_empty_to_or_match_list(errors):
    text = MINIMAL.replace("to: 127.0.0.1:22", "to: []").replace("{protocol: ssh}", "{protocol: ssh, user: []}")
    assert errors(text) == [
        "config.yaml:4:34: routes[1].match.user is an empty list, which matches nothing: give at least one value",
        f"config.yaml:5:9: routes[1].to is an empty list: give at least one address ({ADDRESS_HINT})",
    ]


def test_route_names(errors):
    text = """\
        listen: 127.0.0.1:1
        routes:
          - name: a
            to: 127.0.0.1:2
          - name: a
            to: 127.0.0.1:3
          - name: "has space"
            to: 127.0.0.1:4
          - name: reject
            to: 127.0.0.1:5
          - to: 127.0.0.1:6
        """
    assert errors(text) == [
        "config.yaml:5:11: duplicate route name 'a' (first used at line 3)",
        "config.yaml:7:11: invalid route name 'has space': use letters, digits, '_', '.' and '-'",
        "config.yaml:9:11: 'reject' is reserved (it means: close the connection); choose another route name",
        "config.yaml:11:5: routes[5]: missing required key 'name': a unique name, e.g. name: web",
    ]


def test_route_shape_and_choices(errors):
    text = """\
        listen: 127.0.0.1:1
        routes:
          - name: a
            to: 127.0.0.1:2
            balance: roundrobin
            proxy_protocol: v3
            weight: 2
            match: {protocol: tls, sni: {nested: map}}
          - just-a-string
        """
    assert errors(text) == [
        "config.yaml:5:14: routes[1].balance is 'roundrobin'; valid: round_robin, least_conn, source_hash, first; "
        "did you mean 'round_robin'?",
        "config.yaml:6:21: routes[1].proxy_protocol is 'v3'; valid: v1, v2",
        "config.yaml:7:5: unknown key 'weight' in routes[1] (valid: name, match, to, balance, proxy_protocol, "
        "health_check, transparent)",
        "config.yaml:8:33: routes[1].match.sni must be a single value, not a mapping",
        "config.yaml:9:5: routes[2] must be a mapping of keys to values, "
        "e.g. {name: web, match: {protocol: tls}, to: 127.0.0.1:8443}, not 'just-a-string'",
    ]


def test_default_and_on_timeout_targets(errors):
    text = MINIMAL + "default: shh\non_timeout: 127.0.0.1\n"
    assert errors(text) == [
        "config.yaml:6:10: default: unknown route 'shh'; use reject, a route name (ssh) or an address like "
        "127.0.0.1:22; did you mean 'ssh'?",
        "config.yaml:7:13: on_timeout: unknown route '127.0.0.1'; use reject, a route name (ssh) or an address like "
        "127.0.0.1:22",
    ]


def test_a_broken_route_is_not_reported_again_when_named_as_target(errors):
    text = MINIMAL.replace("to: 127.0.0.1:22", "to: nowhere") + "default: ssh\n"
    assert errors(text) == [f"config.yaml:5:9: routes[1].to: invalid address 'nowhere': {ADDRESS_HINT}"]


def test_listen_errors(errors):
    text = """\
        listen:
          - 127.0.0.1:1
          - 127.0.0.1:1
          - {address: 127.0.0.1:2, proxy_protocol: accept}
          - {address: 127.0.0.1:3, proxy_protocol: send, trusted_proxies: [10.0.0.1/8, nonsense]}
          - {adress: 127.0.0.1:4}
          - {address: 127.0.0.1:5, trusted_proxies: 10.0.0.0/8}
        routes: []
        """
    assert errors(text) == [
        "config.yaml:3:5: listen address 127.0.0.1:1 is listed twice (first at line 2)",
        "config.yaml:4:44: proxy_protocol: accept needs trusted_proxies (the networks allowed to send it)",
        "config.yaml:5:44: listen[4].proxy_protocol is 'send'; valid: accept",
        "config.yaml:5:68: listen[4].trusted_proxies[1]: invalid network '10.0.0.1/8' (10.0.0.1/8 has host bits set): "
        "expected an address or a network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
        "config.yaml:5:80: listen[4].trusted_proxies[2]: invalid network 'nonsense' "
        "('nonsense' does not appear to be an IPv4 or IPv6 network): "
        "expected an address or a network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
        "config.yaml:6:5: missing required key 'address' in listen[5]",
        "config.yaml:6:6: unknown key 'adress' in listen[5] (valid: address, proxy_protocol, trusted_proxies, "
        "max_connections); "
        "did you mean 'address'?",
        "config.yaml:7:45: trusted_proxies only applies with proxy_protocol: accept",
    ]


def test_empty_listen_list(errors):
    assert errors("listen: []\nroutes: []\n") == [
        "config.yaml:1:9: listen must name at least one address, e.g. 0.0.0.0:8443"
    ]


def test_missing_required_top_level_keys(errors):
    assert errors("# just a comment\nworkers: 2\n") == [
        "config.yaml:1:1: missing required key 'listen' (e.g. listen: 0.0.0.0:8443)",
        "config.yaml:1:1: missing required key 'routes' (a list of routes, e.g. routes: [])",
    ]


def test_routes_must_be_a_list(errors):
    assert errors("listen: 127.0.0.1:1\nroutes:\n") == [
        "config.yaml:2:1: routes must be a list of routes (- name: ...), not nothing (null)"
    ]


def test_other_settings(errors):
    text = MINIMAL + "workers: many\nadmin: localhost\nlog_format: xml\nlimits: {identify_bytes: 2MiB, max: 1}\n"
    assert errors(text) == [
        "config.yaml:6:10: workers must be a whole number 1 or more, or auto (one per CPU), not 'many'",
        f"config.yaml:7:8: admin: invalid address 'localhost': {ADDRESS_HINT}",
        "config.yaml:8:13: log_format is 'xml'; valid: text, json",
        "config.yaml:9:26: limits.identify_bytes: '2MiB' is out of range: use a size between 64B and 1MiB",
        "config.yaml:9:32: unknown key 'max' in limits (valid: identify_bytes, identify_cpu, max_connections, "
        "max_connections_per_source, connection_rate_per_source, max_identifying, max_identifying_per_source)",
    ]


def test_sizes_must_be_sizes(errors):
    (line,) = errors(MINIMAL + "limits:\n  identify_bytes: lots\n")
    assert line == (
        "config.yaml:7:19: limits.identify_bytes: invalid size 'lots': "
        "use a whole number of bytes or a number with a unit: 512B, 16KB, 64KiB, 1MiB"
    )


def test_sections_must_be_mappings(errors):
    assert errors(MINIMAL + "timeouts: 3s\n") == [
        "config.yaml:6:11: timeouts must be a mapping of keys to values, e.g. {identify: ...}, not '3s'"
    ]


def test_all_errors_are_reported_in_file_order(errors):
    text = """\
        listen: 127.0.0.1:1
        timeouts: {identify: 3, connect: 5}
        routes:
          - name: a
            to: 127.0.0.1:x
        bogus: 1
        """
    lines = errors(text)
    assert [line.split(": ")[0] for line in lines] == [
        "config.yaml:2:22",
        "config.yaml:2:34",
        "config.yaml:5:9",
        "config.yaml:6:1",
    ]


def test_yaml_syntax_errors_keep_ruamels_position(errors):
    (line,) = errors("listen: 127.0.0.1:1\nroutes:\n  - name: a\n    to: [127.0.0.1:2\n")
    assert line.startswith("config.yaml:5:1: YAML syntax error: ")
    (line,) = errors("listen: 127.0.0.1:1\nroutes: []\nlisten: 127.0.0.1:2\n")
    assert line.startswith("config.yaml:3:1: YAML syntax error: ") and 'found duplicate key "listen"' in line
    (line,) = errors("listen: 127.0.0.1:1\n  routes: []\n")
    assert line.startswith("config.yaml:2:9: YAML syntax error: mapping values are not allowed here")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "config.yaml:1:1: the config is empty: it needs at least 'listen' and 'routes'"),
        ("# only comments\n\n", "config.yaml:1:1: the config is empty: it needs at least 'listen' and 'routes'"),
        ("- a\n- b\n", "config.yaml:1:1: the config must be a mapping of keys (listen, routes, ...), not a list"),
        ("hello\n", "config.yaml:1:1: the config must be a mapping of keys (listen, routes, ...), not 'hello'"),
    ],
)
def test_empty_and_non_mapping_files(errors, text, message):
    assert errors(text) == [message]


def test_missing_file(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read config file: No such file or directory"
    assert info.value.errors == [ConfigError(path, 0, 0, "cannot read config file: No such file or directory")]


def test_error_objects(tmp_path):
    with pytest.raises(ConfigErrors) as info:
        load_config_text(MINIMAL + "x: 1\ny: 2\n", tmp_path / "c.yaml")
    first, second = info.value.errors
    assert (first.path, first.line, first.column) == (tmp_path / "c.yaml", 6, 1)
    assert first.message.startswith("unknown key 'x'")
    assert second.line == 7
    assert len(info.value) == 2 and list(info.value) == [first, second]
    assert str(first) == f"{tmp_path / 'c.yaml'}:6:1: {first.message}"
