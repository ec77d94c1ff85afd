"""The ``admin:`` mapping form and ``capture:``: what they load to, and every refusal with its
file:line:column. The plain ``admin: ADDRESS`` form keeps loading as before."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from passthru.config import ConfigErrors, load_config_text
from tests.config.config_helpers import MINIMAL


def load(text: str, path: Path):  # type: ignore[no-untyped-def]
    return load_config_text(MINIMAL + text, path / "config.yaml")


def errors(text: str, path: Path) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        load(text, path)
    return [line.split("config.yaml:", 1)[1] for line in str(info.value).splitlines()]


def test_plain_admin_address_still_works(tmp_path: Path) -> None:
    config = load("admin: 127.0.0.1:9901\n", tmp_path)
    assert str(config.admin) == "127.0.0.1:9901"
    assert config.admin_access.allow == () and config.admin_access.token_file is None


def test_admin_off_when_absent(tmp_path: Path) -> None:
    config = load("", tmp_path)
    assert config.admin is None and config.capture is None


def test_admin_mapping(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token-0123456789\n")
    config = load("admin: {address: 0.0.0.0:9901, allow: [10.0.0.0/8, 'fd00::/8'], token_file: token}\n", tmp_path)
    assert str(config.admin) == "0.0.0.0:9901"
    assert config.admin_access.allow == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert config.admin_access.token_file == tmp_path / "token"


def test_admin_mapping_errors(tmp_path: Path) -> None:
    (tmp_path / "short").write_text("abc\n")
    assert errors("admin: {allow: [10.0.0.0/33], tokenfile: x}\n", tmp_path) == [
        "6:8: missing required key 'address' in admin",
        "6:17: admin.allow[1]: invalid network '10.0.0.0/33' ('10.0.0.0/33' does not appear to be an IPv4 or IPv6 "
        "network): expected an address or a network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32",
        "6:31: unknown key 'tokenfile' in admin (valid: address, allow, token_file); did you mean 'token_file'?",
    ]
    (line,) = errors("admin: {address: 127.0.0.1:9901, token_file: nope}\n", tmp_path)
    assert line.startswith("6:46: admin.token_file: cannot read ") and "No such file" in line
    assert errors("admin: {address: 127.0.0.1:9901, token_file: short}\n", tmp_path) == [
        f"6:46: admin.token_file: the token in {tmp_path / 'short'} is too short: use at least 16 characters"
    ]


def test_capture_defaults_and_values(tmp_path: Path) -> None:
    config = load("capture: {dir: captures/}\n", tmp_path)
    capture = config.capture
    assert capture.directory == tmp_path / "captures"
    assert (capture.when, capture.max_bytes, capture.max_files, capture.rate) == (("unmatched",), 4096, 1000, (10, 1.0))
    text = "capture:\n  dir: /var/lib/x\n  when: [timeout, rejected]\n  max_bytes: 1KiB\n  max_files: 5\n  rate: 60/m\n"
    capture = load(text, tmp_path).capture
    assert capture.directory == Path("/var/lib/x")
    assert (capture.when, capture.max_bytes, capture.max_files, capture.rate) == (
        ("timeout", "rejected"),
        1024,
        5,
        (60, 60.0),
    )


def test_capture_errors(tmp_path: Path) -> None:
    text = "capture:\n  when: [unmached]\n  max_bytes: 2MiB\n  max_files: 0\n  rate: fast\n"
    assert errors(text, tmp_path) == [
        "7:3: missing required key 'dir' in capture",
        "7:10: capture.when[1] is 'unmached'; valid: unmatched, timeout, rejected; did you mean 'unmatched'?",
        "8:14: capture.max_bytes: '2MiB' is out of range: use a size between 1B and 1MiB",
        "9:14: capture.max_files: invalid count 0: use a whole number, 1 or more",
        "10:9: capture.rate: invalid rate 'fast': use a count per period: 20/s, 600/m, 1000/h",
    ]
    assert errors("capture: captures/\n", tmp_path) == [
        "6:10: capture must be a mapping of keys to values, e.g. {dir: captures/, when: [unmatched]}, not 'captures/'"
    ]
    assert errors("capture: {dir: x, when: []}\n", tmp_path) == [
        "6:25: capture.when must name at least one of: unmatched, timeout, rejected"
    ]
