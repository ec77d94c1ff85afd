"""Loading one file: every way it can be wrong is rejected with ``path:line``, and the previous
version keeps serving; a good file is isolated from other modules and from its other versions."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from passthru.identify.base import USER_PRECEDENCE
from passthru.plugins import ACTIVE, REJECTED
from tests.plugins.helpers import source_of, version_of

BROKEN = {
    "syntax error": ("NAME = 'demo'\n\ndef identify(data:\n    return None\n", 3, "SyntaxError"),
    "return at top level": ("NAME = 'demo'\nreturn 5\n", 2, "SyntaxError: 'return' outside function"),
    "null byte": ("NAME = 'demo'\x00\n", None, "null bytes"),
    "import error": ("import no_such_module_xyz\n\ndef identify(data):\n    return None\n", 1, "ModuleNotFoundError"),
    "exception at import": ("X = 1\nY = X / 0\n\ndef identify(data):\n    return None\n", 2, "ZeroDivisionError"),
    "sys.exit at import": ("import sys\nsys.exit(3)\n", 2, "SystemExit"),
    "no identify": ("NAME = 'demo'\n", None, "defines no identify(data) function"),
    "identify not callable": ("NAME = 'demo'\nidentify = 3\n", 2, "not a function"),
    "bad NAME": ("NAME = 'Demo Proto'\n\ndef identify(data):\n    return None\n", 1, "lower case"),
    "NAME not a string": ("NAME = 42\n\ndef identify(data):\n    return None\n", 1, "lower case"),
    "samples are str": (
        "def identify(data):\n    return None\n\nSAMPLES = {'match': ['HELLO']}\n",
        4,
        "samples are bytes",
    ),
    "unknown samples key": (
        "def identify(data):\n    return None\n\nSAMPLES = {'matches': [b'x']}\n",
        4,
        "unknown keys",
    ),
    "failing match sample": (
        "def identify(data):\n    return None\n\nSAMPLES = {'match': [b'HELLO']}\n",
        4,
        "sample match[0]",
    ),
    "failing no_match sample": (
        "def identify(data):\n    return {}\n\nSAMPLES = {'no_match': [b'GET /']}\n",
        4,
        "expected no match",
    ),
    "exception in a sample": (
        "def identify(data):\n    x = 1\n    return {'n': x / 0}\n\nSAMPLES = {'match': [b'A']}\n",
        3,
        "ZeroDivisionError",
    ),
    "bad verdict in a sample": (
        "def identify(data):\n    return 'yes'\n\nSAMPLES = {'match': [b'A']}\n",
        1,
        "returned str",
    ),
    # where a loop is interrupted is the line of its test or of its body, depending on the bytecode
    "too slow at import": ("n = 0\nwhile True:\n    n += 1\n", (2, 3), "to import"),
    "too slow in a sample": (
        "def identify(data):\n    n = 0\n    while n >= 0:\n        n += 1\n\nSAMPLES = {'match': [b'A']}\n",
        (3, 4),
        "ran longer than",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_file_is_rejected_with_its_line_and_the_previous_version_serves(
    case, tmp_path, make_users, plugin_log
):
    text, line, message = BROKEN[case]
    path = tmp_path / "demo.py"
    path.write_text(source_of(1))
    users = make_users()
    users.load_all()
    assert version_of(users) == 1

    path.write_text(text)
    users.rescan()

    assert version_of(users) == 1, "the previous good version must keep serving"
    (status,) = users.statuses()
    assert status.status == REJECTED and status.serving
    lines = line if isinstance(line, tuple) else (line,)
    where = tuple(f"{path}:{n}:" if n else f"{path}:" for n in lines)
    assert status.last_error.startswith(where), status.last_error
    assert message in status.last_error
    logged = [r.getMessage() for r in plugin_log.records if r.levelname == "ERROR"]
    assert any(m.startswith(where) and message in m and "still serving" in m for m in logged), logged


@pytest.mark.parametrize("case", ["syntax error", "failing match sample", "too slow at import"])
def test_a_broken_file_at_start_up_serves_nothing_and_says_so(case, tmp_path, make_users):
    (tmp_path / "demo.py").write_text(BROKEN[case][0])
    users = make_users()
    users.load_all()
    assert users.current() == ()
    (status,) = users.statuses()
    assert (status.status, status.serving, status.name) == (REJECTED, False, "demo")


def test_a_good_file_becomes_a_user_identifier(tmp_path, make_users):
    path = tmp_path / "demo.py"
    path.write_text(source_of(1, extra='FIELDS = ["version"]\nDESCRIPTION = "a demo"\n'))
    users = make_users()
    users.load_all()
    (identifier,) = users.current()
    assert identifier.name == "demo"
    assert identifier.precedence == USER_PRECEDENCE
    assert identifier.source == str(path)
    assert identifier.fields == {"version": "text"}
    assert not identifier.trusted
    assert identifier.description == "a demo"
    assert identifier.samples_match == (b"DEMO1",)
    assert users.names() == frozenset({"demo"})
    assert [s.status for s in users.statuses()] == [ACTIVE]


def test_name_defaults_to_the_file_stem(tmp_path, make_users):
    (tmp_path / "my-proto_2.py").write_text("def identify(data):\n    return None\n")
    users = make_users()
    users.load_all()
    assert users.names() == frozenset({"my-proto_2"})


def test_helpers_and_hidden_files_are_not_identifiers(tmp_path, make_users):
    (tmp_path / "_helpers.py").write_text("raise RuntimeError('not an identifier')\n")
    (tmp_path / ".#demo.py").write_text("garbage")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub.py").mkdir()
    users = make_users()
    users.load_all()
    assert users.statuses() == []


def test_a_missing_directory_means_no_identifiers(tmp_path, make_users):
    users = make_users(tmp_path / "absent")
    users.load_all()
    assert users.current() == () and users.statuses() == []


def test_files_run_isolated_from_the_stdlib_and_from_each_other(tmp_path, make_users):
    """A file named like a stdlib module does not shadow it, and each file has its own globals."""
    counter = "COUNT = []\n\ndef identify(data):\n    COUNT.append(1)\n    return {'calls': len(COUNT)}\n"
    (tmp_path / "json.py").write_text(counter)
    (tmp_path / "other.py").write_text(counter)
    users = make_users()
    users.load_all()
    import json

    assert hasattr(json, "dumps") and sys.modules["json"] is json
    first, second = sorted(users.current(), key=lambda i: i.name)
    assert first.identify(b"x") == {"calls": 1}
    assert first.identify(b"x") == {"calls": 2}
    assert second.identify(b"x") == {"calls": 1}
    module_name = first.identify.__module__
    assert module_name.startswith("_passthru_user_json_")
    assert first.identify.__globals__["__name__"] != "__main__"


def test_a_reload_gets_fresh_globals_and_drops_the_old_module(tmp_path, make_users):
    path = tmp_path / "demo.py"
    path.write_text(source_of(1))
    users = make_users()
    users.load_all()
    old = users.current()[0]
    old_module = old.identify.__module__
    path.write_text(source_of(2))
    users.rescan()
    assert version_of(users) == 2
    assert old_module not in sys.modules
    assert old.identify(b"DEMO") == {"version": 1}, "an in-flight connection keeps its version"


def test_a_file_may_use_dataclasses_with_string_annotations(tmp_path, make_users):
    """dataclasses look the module up in sys.modules; a private entry keeps that working."""
    (tmp_path / "dc.py").write_text(
        textwrap.dedent(
            """
            from __future__ import annotations
            from dataclasses import dataclass

            @dataclass
            class Hello:
                who: str

            def identify(data):
                return {"who": Hello(data.decode()).who}

            SAMPLES = {"match": [b"bob"]}
            """
        )
    )
    users = make_users()
    users.load_all()
    assert users.names() == frozenset({"dc"})


def test_unchanged_content_is_not_loaded_again(tmp_path, make_users):
    path = tmp_path / "demo.py"
    path.write_text(source_of(1))
    users = make_users()
    users.load_all()
    identifier = users.current()[0]
    path.write_text(source_of(1))  # same bytes, new mtime
    users.rescan()
    users.rescan()
    assert users.current()[0] is identifier
    assert len(users.load_history(path)) == 1


def test_deleting_a_file_removes_its_identifier_with_a_warning(tmp_path, make_users, plugin_log):
    path = tmp_path / "demo.py"
    path.write_text(source_of(1))
    users = make_users()
    users.load_all()
    path.unlink()
    users.rescan()
    assert users.current() == () and users.statuses() == []
    warnings = [r.getMessage() for r in plugin_log.records if r.levelname == "WARNING"]
    assert any(str(path) in m and "'demo'" in m and "routes naming it will not match" in m for m in warnings)


def test_two_files_with_one_name_the_second_is_rejected_until_the_name_is_free(tmp_path, make_users):
    (tmp_path / "a.py").write_text(source_of("a", name="same"))
    (tmp_path / "b.py").write_text(source_of("b", name="same"))
    users = make_users()
    users.load_all()
    assert version_of(users, "same") == "a"
    status = {Path(s.source).name: s for s in users.statuses()}
    assert status["b.py"].status == REJECTED
    assert f"{tmp_path / 'b.py'}:2:" in status["b.py"].last_error
    assert "already used by" in status["b.py"].last_error and "a.py" in status["b.py"].last_error

    (tmp_path / "a.py").unlink()
    users.rescan()
    assert version_of(users, "same") == "b"
    assert [s.status for s in users.statuses()] == [ACTIVE]


def test_a_new_file_cannot_take_a_name_already_serving(tmp_path, make_users):
    (tmp_path / "z.py").write_text(source_of("z", name="same"))
    users = make_users()
    users.load_all()
    (tmp_path / "a.py").write_text(source_of("a", name="same"))  # sorts first, but arrives second
    users.rescan()
    assert version_of(users, "same") == "z"


def test_renaming_a_file_keeps_its_protocol(tmp_path, make_users):
    (tmp_path / "a.py").write_text(source_of(1, name="same"))
    users = make_users()
    users.load_all()
    (tmp_path / "a.py").rename(tmp_path / "b.py")
    users.rescan()
    assert version_of(users, "same") == 1
    assert [Path(s.source).name for s in users.statuses()] == ["b.py"]


def test_a_user_file_replaces_a_builtin_of_the_same_name_with_a_warning(tmp_path, make_users, plugin_log):
    (tmp_path / "ssh.py").write_text(
        "def identify(data):\n    return {'mine': True} if data[:4] == b'SSH-' else None\n"
    )
    users = make_users()
    users.load_all()
    combined = users.combined()
    ssh = [i for i in combined if i.name == "ssh"]
    assert len(ssh) == 1 and ssh[0].source == str(tmp_path / "ssh.py")
    assert {"tls", "http"} <= {i.name for i in combined}
    assert users.combined() is combined, "cached until the snapshot changes"
    assert any("replaces the built-in 'ssh'" in r.getMessage() for r in plugin_log.records)


def test_on_change_is_called_after_each_swap_only(tmp_path, make_users):
    calls = []
    users = make_users()
    users.on_change(lambda: calls.append(users.names()))
    path = tmp_path / "demo.py"
    path.write_text(source_of(1))
    users.load_all()
    users.rescan()  # nothing changed
    path.write_text("broken(")
    users.rescan()  # rejected: no swap
    path.unlink()
    users.rescan()
    assert calls == [frozenset({"demo"}), frozenset()]


def test_a_failing_callback_does_not_stop_the_swap(tmp_path, make_users, plugin_log):
    users = make_users()
    seen = []
    users.on_change(lambda: 1 / 0)
    users.on_change(lambda: seen.append(users.names()))
    (tmp_path / "demo.py").write_text(source_of(1))
    users.load_all()
    assert seen == [frozenset({"demo"})]
    assert any("on_change callback" in r.getMessage() for r in plugin_log.records)


def test_current_is_an_immutable_snapshot(tmp_path, make_users):
    (tmp_path / "demo.py").write_text(source_of(1))
    users = make_users()
    users.load_all()
    before = users.current()
    (tmp_path / "demo.py").write_text(source_of(2))
    users.rescan()
    assert isinstance(before, tuple) and version_of(users) == 2
    assert before[0].identify(b"DEMO") == {"version": 1}
