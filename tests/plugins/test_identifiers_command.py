"""``passthru identifiers list`` and ``passthru identifiers test FILE [--hex …]``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from passthru.commands import identifiers as command
from tests.plugins.helpers import EXAMPLES, REPO, source_of


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="passthru")
    command.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def config(tmp_path):
    """A config whose identifiers_dir holds one good, one broken and one failing file."""
    directory = tmp_path / "ids"
    directory.mkdir()
    (directory / "demo.py").write_text(source_of(1))
    (directory / "broken.py").write_text("def identify(data):\n    return (\n")
    (directory / "failing.py").write_text("def identify(data):\n    return None\n\nSAMPLES = {'match': [b'x']}\n")
    path = tmp_path / "config.yaml"
    path.write_text("listen: [127.0.0.1:9]\nroutes: []\nidentifiers_dir: ids\n")
    return path


def test_list_shows_name_status_source_and_last_error(config, capsys):
    assert run(["identifiers", "list", "-c", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "STATUS", "SOURCE", "LAST", "ERROR"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == {"demo", "broken", "failing"}
    assert "active" in rows["demo"] and rows["demo"].rstrip().endswith("-")
    assert "rejected (not serving)" in rows["broken"] and "broken.py:2: SyntaxError" in rows["broken"]
    assert "failing.py:4: sample match[0]" in rows["failing"]


def test_list_json(config, capsys):
    assert run(["identifiers", "list", "-c", str(config), "--json"]) == 0
    listed = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listed["demo"] == {
        "name": "demo",
        "source": str(config.parent / "ids" / "demo.py"),
        "status": "active",
        "last_error": None,
        "serving": True,
    }
    assert listed["broken"]["status"] == "rejected" and listed["broken"]["serving"] is False


def test_list_a_directory_or_nothing(tmp_path, capsys):
    assert run(["identifiers", "list", "--dir", str(tmp_path)]) == 0
    assert "no identifier files" in capsys.readouterr().out
    assert run(["identifiers", "list", "-c", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config file" in capsys.readouterr().err


def test_test_runs_the_samples_and_answers_for_hex(capsys):
    code = run(
        ["identifiers", "test", str(EXAMPLES / "greeting.py"), "--hex", "48454c4c4f20616c6963650d0a", "--hex", "48 45"]
    )
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0] == f"{EXAMPLES / 'greeting.py'}: identifier 'greeting'"
    assert out[1].split()[:2] == ["PASS", "match[0]"] and out[1].endswith('-> {"who": "bob"}')
    assert out[2].split()[:2] == ["PASS", "no_match[0]"] and out[2].endswith("-> null")
    assert out[3] == "2 samples: 2 passed, 0 failed"
    assert json.loads(out[4]) == {"hex": "48454c4c4f20616c6963650d0a", "result": "match", "verdict": {"who": "alice"}}
    assert json.loads(out[5]) == {"hex": "4845", "result": "need_more", "verdict": 6}


def test_test_exits_1_on_a_failing_sample_and_shows_why(tmp_path, capsys):
    path = tmp_path / "half.py"
    path.write_text(source_of(1).replace('"no_match": [b"GET / HTTP/1.1\\r\\n"]', '"no_match": [b"DEMO2"]'))
    assert run(["identifiers", "test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "PASS  match[0]" in out
    assert "FAIL  no_match[0]" in out and "expected no match (None), but it matched" in out
    assert "2 samples: 1 passed, 1 failed" in out


def test_test_reports_runtime_errors_with_the_line(tmp_path, capsys):
    path = tmp_path / "oops.py"
    path.write_text("def identify(data):\n    return {'x': data[10]}\n\nSAMPLES = {'match': [b'a']}\n")
    assert run(["identifiers", "test", str(path), "--hex", "00"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert f"{path}:2: IndexError: index out of range" in out[1]
    answer = json.loads(out[-1])
    assert answer["result"] == "error" and answer["error"].startswith(f"{path}:2: IndexError")


def test_test_exits_2_when_the_file_does_not_load(tmp_path, capsys):
    path = tmp_path / "bad.py"
    path.write_text("NAME = 'bad'\ndef identify(data)\n    return None\n")
    assert run(["identifiers", "test", str(path)]) == 2
    assert f"{path}:2: SyntaxError" in capsys.readouterr().err
    assert run(["identifiers", "test", str(tmp_path / "absent.py")]) == 2
    assert run(["identifiers", "test", str(EXAMPLES / "greeting.py"), "--hex", "zz"]) == 2


def test_test_stops_a_runaway_identifier(tmp_path, capsys):
    path = tmp_path / "loop.py"
    path.write_text("def identify(data):\n    while True:\n        pass\n\nSAMPLES = {'match': [b'a']}\n")
    assert run(["identifiers", "test", str(path)]) == 1
    assert "ran longer than 50 ms" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["greeting.py", "minecraft.py", "stun.py"])
def test_every_shipped_example_passes_its_own_test(name, capsys):
    assert run(["identifiers", "test", str(EXAMPLES / name)]) == 0


def test_registered_in_the_passthru_command():
    from passthru import cli

    assert "passthru.commands.identifiers" in cli.COMMAND_MODULES
    result = subprocess.run(
        [sys.executable, "-m", "passthru.cli", "identifiers", "test", str(EXAMPLES / "stun.py")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "6 samples: 6 passed, 0 failed" in result.stdout
