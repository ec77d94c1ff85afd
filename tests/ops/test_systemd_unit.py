"""``deploy/systemd/passthru.service`` passes ``systemd-analyze verify`` with no warning at all, and
says what the README promises (Type=notify, reload by SIGHUP, port 443 without root, hardening).

``verify`` checks that ExecStart's program exists, so the test points a copy of the unit at this
checkout's ``passthru`` (the one thing it changes)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.passthru_process import REPO

UNIT = REPO / "deploy" / "systemd" / "passthru.service"
INSTALLED = "/opt/passthru/bin/passthru"


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def passthru_program() -> str:
    program = Path(sys.executable).with_name("passthru")
    if not program.exists():
        pytest.skip("no passthru script beside this Python (pip install -e . first)")
    return str(program)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze (Debian: systemd) not installed")
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    unit = tmp_path / "passthru.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, passthru_program()))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", f"systemd-analyze warns:\n{result.stderr}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze (Debian: systemd) not installed")
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported."""
    unit = tmp_path / "passthru.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, passthru_program()).replace("Type=notify", "Typ=notify"))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "Unknown key 'Typ'" in result.stderr


def test_unit_says_what_the_readme_promises() -> None:
    found = directives(UNIT.read_text())
    assert found["Type"] == ["notify"]
    assert found["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert found["ExecStart"] == [f"{INSTALLED} run -c /etc/passthru/config.yaml"]
    assert "CAP_NET_BIND_SERVICE" in found["AmbientCapabilities"][0]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "StateDirectory": "passthru",
        "User": "passthru",
    }.items():
        assert found[key] == [value], key
