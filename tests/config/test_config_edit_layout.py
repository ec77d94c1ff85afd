"""Edit functions on layouts the commented fixture does not cover: flow entries, indentless
lists, CRLF, no final newline, empty lists, block scalars, comment ownership."""

from __future__ import annotations

import pytest

from passthru.config.edit import (
    EditError,
    add_route,
    get_key,
    move_route,
    remove_route,
    route_names,
    set_key,
    set_route,
)

ONE = "listen: 127.0.0.1:1\nroutes:   # the routes\n  # only one\n  - name: a\n    to: 127.0.0.1:2\ndefault: reject\n"
INDENTLESS = "listen: 127.0.0.1:1\nroutes:\n- {name: x, to: '127.0.0.1:2'}\n- name: y\n  to: 127.0.0.1:3"


def test_removing_the_only_route_leaves_an_empty_list_and_adding_fills_it_again():
    empty = remove_route(ONE, "a")
    assert empty == "listen: 127.0.0.1:1\nroutes: []   # the routes\ndefault: reject\n"
    assert add_route(empty, {"name": "b", "to": "127.0.0.1:3"}) == (
        "listen: 127.0.0.1:1\nroutes:   # the routes\n  - name: b\n    to: 127.0.0.1:3\ndefault: reject\n"
    )


def test_adding_to_an_empty_routes_key():
    assert add_route("listen: x\nroutes:\nadmin: y\n", {"name": "b", "to": "z:1"}) == (
        "listen: x\nroutes:\n  - name: b\n    to: z:1\nadmin: y\n"
    )


def test_flow_entries_and_indentless_lists():
    assert set_route(INDENTLESS, "x", {"balance": "first", "to": ["127.0.0.1:4"]}) == INDENTLESS.replace(
        "to: '127.0.0.1:2'}", "to: '127.0.0.1:4', balance: first}"
    )
    assert set_route(INDENTLESS, "x", {"to": None}) == INDENTLESS.replace(", to: '127.0.0.1:2'", "")
    # the file has no final newline: the new entry starts on a line of its own
    assert add_route(INDENTLESS, {"name": "z", "to": "127.0.0.1:5"}) == INDENTLESS + "\n- name: z\n  to: 127.0.0.1:5\n"
    assert add_route(INDENTLESS, {"name": "z", "to": "127.0.0.1:5", "match": {"protocol": "ssh"}}, before="x") == (
        INDENTLESS.replace("routes:\n", "routes:\n- name: z\n  match: {protocol: ssh}\n  to: 127.0.0.1:5\n")
    )


def test_crlf_files_stay_crlf():
    crlf = ONE.replace("\n", "\r\n")
    added = add_route(crlf, {"name": "b", "to": "127.0.0.1:3"}, before="a")
    assert added == crlf.replace("  # only one", "  - name: b\r\n    to: 127.0.0.1:3\r\n  # only one")
    assert remove_route(added, "a") == crlf.replace(
        "  # only one\r\n  - name: a\r\n    to: 127.0.0.1:2", "  - name: b\r\n    to: 127.0.0.1:3"
    )
    assert set_key(crlf, "timeouts.identify", "5s") == crlf + "timeouts:\r\n  identify: 5s\r\n"


def test_comment_ownership_by_indentation():
    text = "routes:\n  - name: a\n    to: x\n    # inside a\n  # above b\n  - name: b\n    to: y\n"
    assert (
        move_route(text, "a", after="b")
        == "routes:\n  # above b\n  - name: b\n    to: y\n  - name: a\n    to: x\n    # inside a\n"
    )
    assert remove_route(text, "b") == "routes:\n  - name: a\n    to: x\n    # inside a\n"
    assert set_key(text, "admin", "127.0.0.1:1") == text + "admin: 127.0.0.1:1\n"


def test_blank_line_style_is_taken_from_the_file():
    two_blank = "routes:\n  - name: a\n    to: x\n\n\n  - name: b\n    to: y\n"
    assert add_route(two_blank, {"name": "c", "to": "z"}) == two_blank + "\n\n  - name: c\n    to: z\n"
    assert add_route(two_blank, {"name": "c", "to": "z"}, after="a") == two_blank.replace(
        "  - name: b", "  - name: c\n    to: z\n\n\n  - name: b"
    )


def test_new_routes_follow_the_block_style_of_their_neighbours():
    text = "routes:\n  - name: a\n    match:\n      protocol: ssh\n    to:\n    - x:1\n"
    assert add_route(text, {"name": "b", "match": {"protocol": "tls", "sni": "e"}, "to": ["y:1", "y:2"]}) == (
        text + "  - name: b\n    match:\n      protocol: tls\n      sni: e\n    to:\n    - y:1\n    - y:2\n"
    )


@pytest.mark.parametrize(
    ("text", "key", "value", "expected"),
    [
        ("a: 1\nlimits:\n", "limits.identify_bytes", "5KiB", "a: 1\nlimits: {identify_bytes: 5KiB}\n"),
        ("a: 1\nlimits: {}\n", "limits.identify_bytes", "5KiB", "a: 1\nlimits: {identify_bytes: 5KiB}\n"),
        ("a: 1\nlimits: {x: 1}  # c\n", "limits.y", 2, "a: 1\nlimits: {x: 1, y: 2}  # c\n"),
        ("a: |\n  text\n\n  more\n\nb: 1\n", "a", "x", "a: x\n\nb: 1\n"),
        ("a: 'q'\n", "a", "it's", "a: 'it''s'\n"),
        ('a: "q"\n', "a", 'say "hi"', 'a: "say \\"hi\\""\n'),
        ("a: x\n", "a", "[::1]:22", "a: '[::1]:22'\n"),
        ("a: x\n", "a", ["b", "c"], "a: [b, c]\n"),
        ("a:\n  - x\n  - y\nb: 1\n", "a", ["z"], "a:\n  - z\nb: 1\n"),
        ("a:\n  - x\nb: 1\n", "a", "z", "a: z\nb: 1\n"),
        ("a: 1\n", "b.c.d", True, "a: 1\nb:\n  c:\n    d: true\n"),
    ],
)
def test_set_key(text, key, value, expected):
    assert set_key(text, key, value) == expected


def test_get_key_and_errors():
    assert get_key(INDENTLESS, "routes.x.to") == "127.0.0.1:2"
    assert get_key(INDENTLESS, "routes.1") == "name: y\nto: 127.0.0.1:3"
    assert route_names(INDENTLESS) == ["x", "y"]
    with pytest.raises(EditError, match=r"'routes\.9' is not set"):
        get_key(INDENTLESS, "routes.9")
    with pytest.raises(EditError, match="invalid key"):
        set_key(INDENTLESS, "a..b", 1)
    with pytest.raises(EditError, match="flow style"):
        remove_route("routes: [{name: a, to: x}]\n", "a")
    with pytest.raises(EditError, match="not valid YAML at line 2"):
        route_names("routes: [\n")
    with pytest.raises(EditError, match="no 'routes' key"):
        route_names("listen: x\n")
