"""Every config error of the routing forms, at its file:line:column: match keys a protocol never
reports (with a did-you-mean), the regex/prefix/suffix/not forms, client networks, listener
names, upstream templates and allow lists."""

from __future__ import annotations

from passthru.identify.base import HOST

LISTEN = "listen: [{address: 127.0.0.1:1, name: public}]\nroutes:\n"


def test_a_match_key_the_protocol_never_reports(errors) -> None:
    assert errors(LISTEN + "  - {name: a, match: {protocol: tls, snii: a.example}, to: 127.0.0.1:2}\n") == [
        "config.yaml:3:38: routes[1].match: protocol 'tls' never reports 'snii' (it reports sni, alpn, version; "
        "also: client, listener); did you mean 'sni'?"
    ]
    assert errors(LISTEN + "  - {name: a, match: {protocol: ssh, sni: a.example}, to: 127.0.0.1:2}\n") == [
        "config.yaml:3:38: routes[1].match: protocol 'ssh' never reports 'sni' (it reports version, software; "
        "also: client, listener)"
    ]


def test_user_files_without_fields_accept_any_key_with_fields_only_theirs(load, errors) -> None:
    text = LISTEN + "  - {name: a, match: {protocol: mine, anything: x}, to: 127.0.0.1:2}\n"
    assert load(text, known_protocols={"mine": None}).routes[0].fields["anything"].values == ("x",)
    assert errors(text, known_protocols={"mine": {"who": HOST}}) == [
        "config.yaml:3:39: routes[1].match: protocol 'mine' never reports 'anything' (it reports who; "
        "also: client, listener)"
    ]


def test_match_forms(errors) -> None:
    text = LISTEN + (
        "  - name: a\n"
        "    to: 127.0.0.1:2\n"
        "    match:\n"
        "      protocol: http\n"
        "      host: {regex: 'a(b'}\n"
        "      path: {prefx: /v2/}\n"
        "      method: {prefix: GET, suffix: T}\n"
        "      version: {not: {not: '1.1'}}\n"
        "      upgrade: {suffix: ''}\n"
    )
    assert errors(text) == [
        "config.yaml:7:21: routes[1].match.host.regex is not a valid regular expression: "
        "missing ), unterminated subpattern at position 1",
        "config.yaml:8:14: routes[1].match.path: unknown test 'prefx' (valid: regex, prefix, suffix, not); "
        "did you mean 'prefix'?",
        "config.yaml:9:15: routes[1].match.method takes exactly one of regex, prefix, suffix, not, not 2 keys",
        "config.yaml:10:23: routes[1].match.version.not: 'not' inside 'not' cancels out; write the inner test",
        "config.yaml:11:25: routes[1].match.upgrade.suffix: an empty suffix matches everything; give some text",
    ]


def test_number_fields_take_numbers(errors) -> None:
    assert errors(LISTEN + "  - {name: a, match: {protocol: socks5, port: https}, to: 127.0.0.1:2}\n") == [
        "config.yaml:3:47: routes[1].match.port is a number field; 'https' is not a number"
    ]


def test_client_and_listener(errors) -> None:
    text = LISTEN + (
        "  - {name: a, match: {client: [10.0.0.1/8, nonsense]}, to: 127.0.0.1:2}\n"
        "  - {name: b, match: {listener: publik}, to: 127.0.0.1:2}\n"
        "  - {name: c, match: {client: []}, to: 127.0.0.1:2}\n"
    )
    assert errors(text) == [
        "config.yaml:3:32: routes[1].match.client[1]: invalid network '10.0.0.1/8' (10.0.0.1/8 has host bits set): "
        "expected an address or a network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
        "config.yaml:3:44: routes[1].match.client[2]: invalid network 'nonsense' "
        "('nonsense' does not appear to be an IPv4 or IPv6 network): "
        "expected an address or a network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
        "config.yaml:4:33: routes[2].match.listener: unknown listener 'publik' (named listeners: public); "
        "did you mean 'public'?",
        "config.yaml:5:31: routes[3].match.client is an empty list, which matches no client: give a network",
    ]


def test_listener_names(errors) -> None:
    text = (
        "listen:\n"
        "  - {address: 127.0.0.1:1, name: edge}\n"
        "  - {address: 127.0.0.1:2, name: edge}\n"
        "  - {address: 127.0.0.1:3, name: 'a b'}\n"
        "routes: []\n"
    )
    assert errors(text) == [
        "config.yaml:3:34: duplicate listener name 'edge' (first used at line 2)",
        "config.yaml:4:34: invalid listener name 'a b': use letters, digits, '_', '.' and '-'",
    ]


def test_templates_and_allow(errors) -> None:
    regex = r"{protocol: tls, sni: {regex: '(?P<tenant>[a-z]+)\.example'}}"
    text = LISTEN + (
        f'  - {{name: a, match: {regex}, to: "{{tenant}}.svc:443"}}\n'
        f'  - {{name: b, match: {regex}, to: "{{tenent}}.svc:443", allow: ["*.svc"]}}\n'
        f'  - {{name: c, match: {regex}, to: "{{tenant}}/x.svc:443", allow: ["*.svc"]}}\n'
        f'  - {{name: d, match: {regex}, to: ["{{tenant}}.svc:443"], allow: ["*.svc"]}}\n'
        f'  - {{name: e, match: {regex}, to: "{{tenant}}.svc:{{port}}", allow: ["*.svc"]}}\n'
        f'  - {{name: f, match: {regex}, to: "{{tenant}}.svc:443", allow: ["*.sv_c", "10.0.0.1/8", 5]}}\n'
        f'  - {{name: g, match: {regex}, to: "10.0.0.1:443", allow: ["10.0.0.0/8"]}}\n'
        f'  - {{name: h, match: {regex}, to: "{{tenant}}.svc:443", allow: []}}\n'
        f'  - {{name: i, match: {regex}, to: "{{tenant}}.svc:443", allow: ["*.svc"], health_check: {{}}}}\n'
    )
    assert errors(text) == [
        "config.yaml:3:88: routes[1].to has {placeholders}, so the route needs allow: "
        'host globs and networks, e.g. allow: ["*.svc.internal", "10.20.0.0/16"]',
        "config.yaml:4:88: routes[2].to: {tenent} is neither a regex group nor a field (known: alpn, sni, tenant, "
        "version); did you mean 'tenant'?",
        "config.yaml:5:88: routes[3].to: the host part '{tenant}/x.svc' may hold {name} placeholders, letters, "
        "digits, '.' and '-' only (the port is a fixed number)",
        "config.yaml:6:88: routes[4].to: a to with {placeholders} takes one address, not a list",
        "config.yaml:7:88: routes[5].to: invalid port in '{tenant}.svc:{port}': the port must be a number from "
        "1 to 65535 (expected host:port or [IPv6]:port, e.g. 127.0.0.1:22, example.com:443 or [::1]:22)",
        "config.yaml:8:116: routes[6].allow[1]: '*.sv_c' is neither a network (10.20.0.0/16) nor a host name "
        "or glob (*.svc.internal)",
        "config.yaml:8:126: routes[6].allow[2]: invalid network '10.0.0.1/8' (10.0.0.1/8 has host bits set): "
        "expected an address or a network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
        "config.yaml:8:140: routes[6].allow[3] must be a host glob or a network, not 5",
        "config.yaml:9:111: routes[7].allow only applies to a to with {placeholders}",
        "config.yaml:10:115: routes[8].allow is empty, which allows nothing: give host globs and networks, "
        'e.g. allow: ["*.svc.internal", "10.20.0.0/16"]',
        "config.yaml:11:140: routes[9].health_check: a templated to has no fixed backends to check",
    ]
