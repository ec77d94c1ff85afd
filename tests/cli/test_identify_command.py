"""``passthru identify``: the JSON contract of DESIGN.md, for hex, file, stdin and --batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.identify.corpus import CORPUS
from tests.support.hello import client_hello
from tests.support.passthru_process import run_cli

TLS_HELLO_HEX = client_hello("example.com", ["h2", "http/1.1"]).hex()


def identify(*args: str, stdin: bytes | None = None) -> tuple[int, list[dict]]:
    result = run_cli("identify", *args, stdin=stdin)
    lines = result.stdout.decode().splitlines()
    return result.returncode, [json.loads(line) for line in lines]


def test_tls_hex_reports_sni_alpn_version() -> None:
    code, [out] = identify("--hex", TLS_HELLO_HEX)
    assert code == 0
    assert out == {
        "protocol": "tls",
        "fields": {"sni": "example.com", "alpn": ["h2", "http/1.1"], "version": "1.3"},
        "bytes_needed": None,
    }


def test_http_from_stdin_and_ssh_from_file(tmp_path: Path) -> None:
    code, [out] = identify(stdin=b"GET /x HTTP/1.1\r\nHost: API.example.com:8080\r\n\r\n")
    assert code == 0
    assert out["protocol"] == "http"
    assert out["fields"] == {"method": "GET", "path": "/x", "version": "1.1", "host": "api.example.com"}
    sample = tmp_path / "ssh.bin"
    sample.write_bytes(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    code, [out] = identify("--file", str(sample))
    assert (code, out["protocol"], out["fields"]["software"]) == (0, "ssh", "OpenSSH_9.2p1")


def test_truncated_input_reports_bytes_needed_and_unknown_reports_null() -> None:
    code, [out] = identify("--hex", TLS_HELLO_HEX[:40])
    assert code == 0
    assert out["protocol"] is None and out["bytes_needed"] == int(TLS_HELLO_HEX[6:10], 16) + 5
    code, [out] = identify("--hex", "00ff00ff00ff00ff")
    assert code == 0 and out == {"protocol": None, "fields": {}, "bytes_needed": None}


def test_bad_input_exits_2() -> None:
    assert run_cli("identify", "--hex", "zz").returncode == 2
    assert run_cli("identify", "--file", "/nonexistent/sample.bin").returncode == 2


def test_batch_one_line_out_per_line_in_with_errors_inline() -> None:
    lines = [TLS_HELLO_HEX, "not hex at all", "", b"SSH-2.0-x\r\n".hex(), "474554"]
    code, out = identify("--batch", stdin=("\n".join(lines) + "\n").encode())
    assert code == 0
    assert len(out) == len(lines)
    assert out[0]["protocol"] == "tls"
    assert "error" in out[1]
    assert out[2]["protocol"] is None
    assert out[3]["protocol"] == "ssh"
    assert out[4]["protocol"] is None and out[4]["bytes_needed"] is not None  # "GET" could still be HTTP


def test_explain_lists_every_identifier() -> None:
    _code, [out] = identify("--explain", "--hex", b"SSH-2.0-x\r\n".hex())
    answers = {a["identifier"]: a["answer"] for a in out["explain"]}
    assert answers["ssh"] == "match"
    assert answers["tls"] == "no match" and answers["http"] == "no match"


def test_with_config_reports_the_route(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        """listen: [127.0.0.1:9]
routes:
  - name: web
    match: {protocol: tls, sni: "*.com"}
    to: 127.0.0.1:1
default: 127.0.0.1:2
"""
    )
    code, [out] = identify("-c", str(config), "--hex", TLS_HELLO_HEX)
    assert (code, out["route"]) == (0, "web")
    code, [out] = identify("-c", str(config), "--hex", b"SSH-2.0-x\r\n".hex())
    assert (code, out["protocol"], out["route"]) == (0, "ssh", "default")


# One corpus sample of each class of real-world opening added for issue 12, answered through the CLI.
NEW_CLASSES = [
    "socks5/spec-pipelined-connect.bin",
    "rdp/xfreerdp-load-balance.bin",
    "openvpn/openvpn-tls-auth-md5-sha1.bin",
    "dns/nsupdate-add.bin",
    "dns/dig-notify.bin",
    "mongodb/spec-op-query-find.bin",
    "xmpp/spec-server-dialback.bin",
    "adb/spec-adb-26-empty-message.bin",
]


@pytest.mark.parametrize("sample", NEW_CLASSES)
def test_hex_answers_the_new_classes_with_their_fields(sample: str) -> None:
    protocol, name = sample.split("/")
    expected = json.loads((CORPUS / protocol / "fields.json").read_text())[name]
    code, [out] = identify("--hex", (CORPUS / sample).read_bytes().hex())
    assert code == 0
    assert out == {"protocol": protocol, "fields": expected, "bytes_needed": None}


def test_hex_leaves_other_text_protocols_auth_lines_to_nothing() -> None:
    """SMTP's ``AUTH PLAIN ...`` is not an inline Redis command; as a RESP array it is Redis."""
    code, [out] = identify("--hex", b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n".hex())
    assert (code, out["protocol"]) == (0, None)
    code, [out] = identify("--hex", b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n".hex())
    assert (code, out["protocol"], out["fields"]) == (0, "redis", {"command": "AUTH", "format": "resp"})
