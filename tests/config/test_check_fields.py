"""``passthru check`` refuses match keys a protocol never reports, using each identifier's own
declaration (built-ins, config rules, user files with FIELDS); a user file without FIELDS takes
any key. And the config layer imports neither the CLI, the commands nor the plugin loader."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.passthru_process import REPO, run_cli

DECLARED = 'NAME = "greet"\nFIELDS = {"who": "host"}\n\ndef identify(data):\n    return {"who": "x"}\n'
UNDECLARED = 'NAME = "loose"\n\ndef identify(data):\n    return {}\n'


def check(tmp_path: Path, routes: str) -> tuple[int, str]:
    (tmp_path / "identifiers").mkdir(exist_ok=True)
    (tmp_path / "identifiers" / "greet.py").write_text(DECLARED)
    (tmp_path / "identifiers" / "loose.py").write_text(UNDECLARED)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"listen: 127.0.0.1:1\nidentifiers:\n  - {{name: rule, regex: '^R (?P<code>[0-9]+)'}}\nroutes:\n{routes}"
    )
    result = run_cli("check", "-c", str(config))
    return result.returncode, (result.stdout + result.stderr).decode()


def test_check_refuses_unreported_keys_with_position_and_suggestion(tmp_path: Path) -> None:
    code, out = check(
        tmp_path,
        "  - {name: a, match: {protocol: tls, snii: x}, to: 127.0.0.1:2}\n"
        "  - {name: b, match: {protocol: greet, whom: x}, to: 127.0.0.1:2}\n"
        "  - {name: c, match: {protocol: rule, cod: '7'}, to: 127.0.0.1:2}\n",
    )
    assert code == 1
    config = tmp_path / "config.yaml"
    assert f"{config}:5:38: routes[1].match: protocol 'tls' never reports 'snii'" in out
    assert "did you mean 'sni'?" in out
    assert f"{config}:6:40: routes[2].match: protocol 'greet' never reports 'whom'" in out
    assert "did you mean 'who'?" in out
    assert f"{config}:7:39: routes[3].match: protocol 'rule' never reports 'cod'" in out
    assert "did you mean 'code'?" in out


def test_check_accepts_declared_keys_and_any_key_of_an_undeclared_user_file(tmp_path: Path) -> None:
    code, out = check(
        tmp_path,
        "  - {name: a, match: {protocol: greet, who: '*.Example.com'}, to: 127.0.0.1:2}\n"
        "  - {name: b, match: {protocol: loose, whatever: x}, to: 127.0.0.1:2}\n"
        "  - {name: c, match: {protocol: rule, code: {regex: '[0-9]+'}}, to: 127.0.0.1:2}\n",
    )
    assert code == 0, out
    assert "3 route(s), 2 user identifier(s)" in out


FORBIDDEN = ("passthru.cli", "passthru.commands", "passthru.plugins")


def test_the_config_layer_imports_no_cli_commands_or_plugins() -> None:
    offenders = []
    for path in sorted((REPO / "passthru" / "config").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert offenders == []
