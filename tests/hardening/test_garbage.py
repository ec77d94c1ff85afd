"""Garbage and near-misses: random bytes, truncated protocol starts, absurd length fields and
nested PROXY headers. Each ends in ``default`` (an address backend receives the bytes exactly)
or ``reject`` (a clean close, nothing sent); never ``end=error``, never a traceback."""

from __future__ import annotations

import random
import socket
import struct
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.hardening.figures import figure
from tests.hardening.helpers import Sink, start_passthru, wait_lines
from tests.support.backends import TagServer
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import tracebacks

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src: str = "192.0.2.1", dst: str = "198.51.100.1") -> bytes:
    return f"PROXY TCP4 {src} {dst} 40000 443\r\n".encode()


def v2(command: int = 0x21, length: int | None = None) -> bytes:
    block = bytes([192, 0, 2, 1, 198, 51, 100, 1]) + struct.pack("!HH", 40000, 443)
    return V2_SIGNATURE + bytes([command, 0x11]) + struct.pack("!H", len(block) if length is None else length) + block


def absurd_lengths() -> dict[str, bytes]:
    """Protocol starts whose length fields claim far more than any sane client sends."""
    hello_body = b"\x03\x03" + bytes(32) + b"\x00\x00\x02\x13\x01\x01\x00"
    return {
        "tls record 64KiB": b"\x16\x03\x01\xff\xff\x01\x00\xff\xfb" + hello_body,
        "tls handshake 2^24-1": b"\x16\x03\x01\x00\x40\x01\xff\xff\xff"
        + hello_body
        + bytes(0x40 - 4 - len(hello_body)),
        "tls handshake 2^24-1 + 20KiB of records": b"\x16\x03\x01\x00\x40\x01\xff\xff\xff"
        + hello_body
        + bytes(0x40 - 4 - len(hello_body))
        + (b"\x16\x03\x01\x04\x00" + bytes(1024)) * 20,
        "sslv2 length 0x7fff": b"\xff\xff\x01\x03\x01\x00\x03\x00\x00\x00\x10",
        "postgres length 2^31": struct.pack("!II", 2**31, 196608) + b"user\x00x\x00\x00",
        "postgres length 2^31-1": struct.pack("!II", 2**31 - 1, 196608) + b"user\x00x\x00\x00",
        "postgres ssl length 2^31": struct.pack("!II", 2**31, 80877103),
        "dns length 0xffff, 2 bytes": b"\xff\xff\x12\x34",
        "mongo length 2^31": struct.pack("<iiii", -(2**31), 1, 0, 2013) + b"\x00" * 8,
        "mongo length 2^31-1": struct.pack("<iiii", 2**31 - 1, 1, 0, 2013) + b"\x00" * 8,
        "mqtt remaining length max": b"\x10\xff\xff\xff\x7f\x00\x04MQTT\x04\x02\x00\x3c",
        "smb netbios 0xffffff": b"\x00\xff\xff\xff\xfeSMB@\x00" + bytes(20),
        "rdp tpkt 0xffff": b"\x03\x00\xff\xff\x0e\xe0\x00\x00\x00\x00\x00",
        "openvpn length 0xffff": b"\xff\xff\x38" + bytes(8),
        "git pkt-line ffff": b"ffffgit-upload-pack /x\x00",
        "bitcoin payload 2^32-1": bytes.fromhex("f9beb4d9") + b"version\x00\x00\x00\x00\x00" + b"\xff" * 4 + bytes(4),
        "adb payload 2^32-1": b"CNXN" + struct.pack("<IIII", 0x01000000, 4096, 0xFFFFFFFF, 0) + b"\xbc\xb1\xa7\xb1",
        "socks5 255 methods, 3 given": b"\x05\xff\x00\x01\x02",
        "redis bulk 2^63": b"*1\r\n$9223372036854775807\r\nPING",
        "redis array 2^63": b"*9223372036854775807\r\n",
        "http 16KiB request line": b"GET /" + b"a" * 20000,
        "http content-length 10^30": b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 30 + b"\r\n\r\n",
        "http 10000 headers": b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 10000,
        "xmpp unclosed tag": b"<?xml version='1.0'?><stream:stream to='" + b"a" * 5000,
        "stomp without end": b"CONNECT\naccept-version:1.2\nhost:" + b"h" * 3000,
        "proxy v2 length 0xffff": v2(length=0xFFFF),
    }


def truncated_corpus() -> dict[str, bytes]:
    """Every recorded real-client start, cut at a few points (never whole)."""
    cases = {}
    for path in sorted(CORPUS.glob("*/*.bin")):
        data = path.read_bytes()
        for cut in sorted({1, 2, 3, 5, 8, len(data) // 4, len(data) // 2, len(data) - 1}):
            if 0 < cut < len(data):
                cases[f"{path.parent.name}/{path.stem}[:{cut}]"] = data[:cut]
    return cases


def random_blobs(count: int = 300) -> dict[str, bytes]:
    rng = random.Random(8)
    firsts = b"\x16\x80GPHCSDOTROMEBUN\x03\x00\x04\x05\x13*$<\x0e\x10\xf9\xfe\xff\r"
    blobs = {}
    for index in range(count):
        size = rng.choice([1, 2, 3, 7, 24, 100, rng.randrange(1, 4096), rng.randrange(1, 20000)])
        data = rng.randbytes(size)
        if index % 2:  # half of them start like a protocol, to reach deeper into the identifiers
            data = bytes([firsts[index % len(firsts)]]) + data
        blobs[f"random#{index}"] = data
    return blobs


def send(port: int, data: bytes, half_close: bool) -> tuple[bytes, str]:
    """Send, half-close (at once, or only after the 1 s identify timeout has run out), read to
    the end. Returns (reply, how it ended)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        try:
            sock.sendall(data)
            if not half_close:
                time.sleep(1.5)  # Passthru decides on what it has: timeout or byte limit
            sock.shutdown(socket.SHUT_WR)
            return recv_all(sock), "eof"
        except ConnectionResetError:
            return b"", "reset"


def run_all(port: int, cases: dict[str, bytes], half_close: bool) -> dict[str, tuple[bytes, str]]:
    with ThreadPoolExecutor(32 if half_close else len(cases)) as pool:
        futures = {name: pool.submit(send, port, data, half_close) for name, data in cases.items()}
        return {name: future.result(timeout=60) for name, future in futures.items()}


ROUTES = """routes:
  - {{name: known-tls, match: {{protocol: tls, sni: known.example}}, to: {tag}}}
  - {{name: known-http, match: {{protocol: http, host: known.example}}, to: {tag}}}
"""


def test_garbage_goes_to_default_byte_for_byte(tmp_path: Path) -> None:
    eof_cases = {**random_blobs(), **truncated_corpus(), **absurd_lengths()}
    # without a half-close the need-more cases end by the identify timeout or the byte limit
    silent_cases = {f"{name} (no FIN)": data for name, data in absurd_lengths().items()}
    with TagServer("known") as known, Sink() as sink:
        body = ROUTES.format(tag=known.address) + f"default: {sink.address}\n"
        proc = start_passthru(tmp_path, body, identify="1s")
        try:
            started = time.monotonic()
            results = run_all(proc.port, eof_cases, half_close=True)
            results.update(run_all(proc.port, silent_cases, half_close=False))
            seconds = time.monotonic() - started
            total = len(eof_cases) + len(silent_cases)
            received = sink.wait_received(total)
            lines = wait_lines(proc, 1 + total)
            log = proc.logs()
        finally:
            proc.stop()
    sent = {**eof_cases, **silent_cases}
    ends = Counter(line["end"] for line in lines[1:])
    routes = Counter(line["route"] for line in lines[1:])
    by_cause = Counter("limit" if len(data) >= 16384 else "eof" for data in eof_cases.values())
    figure(
        "garbage default",
        f"{len(sent)} cases ({len(random_blobs())} random, {len(truncated_corpus())} truncated real starts, "
        f"{len(absurd_lengths())} absurd lengths with and without FIN; {by_cause['limit']} over the 16 KiB "
        f"prefix limit) in {seconds:.1f}s: routes {dict(routes)}, ends {dict(ends)}, "
        f"backend got {len(received)} streams, {sum(map(len, received))} bytes, all exact; tracebacks "
        f"{tracebacks(log)}",
    )
    assert tracebacks(log) == 0
    assert "end=error" not in log
    assert routes == {"default": len(sent)}, routes
    assert ends == {"closed": len(sent)}, ends
    assert sorted(received) == sorted(sent.values()), "the default backend got every byte, unchanged"
    assert all(reply == b"" and how == "eof" for reply, how in results.values())
    assert known.connections == 0


def test_garbage_is_rejected_cleanly(tmp_path: Path) -> None:
    cases = {**dict(list(random_blobs().items())[:100]), **truncated_corpus(), **absurd_lengths()}
    with TagServer("known") as known:
        proc = start_passthru(tmp_path, ROUTES.format(tag=known.address) + "default: reject\n", identify="1s")
        try:
            results = run_all(proc.port, cases, half_close=True)
            silent = {f"{k} (no FIN)": v for k, v in absurd_lengths().items() if len(v) < 100}
            results.update(run_all(proc.port, silent, half_close=False))
            lines = wait_lines(proc, 1 + len(results))
            log = proc.logs()
        finally:
            proc.stop()
    ends = Counter(line["end"] for line in lines[1:])
    resets = [name for name, (_, how) in results.items() if how == "reset"]
    figure(
        "garbage reject",
        f"{len(results)} cases with default: reject: ends {dict(ends)}, {len(resets)} client resets, "
        f"{sum(1 for reply, _ in results.values() if reply)} replies with bytes, tracebacks {tracebacks(log)}",
    )
    assert tracebacks(log) == 0
    assert ends == {"rejected": len(results)}, ends
    assert all(reply == b"" for reply, _ in results.values()), "reject sends nothing"
    # over the 64 KiB reject drain, a client still sending may see a reset: none of ours is that big
    assert not resets, f"closed with a reset instead of a FIN: {resets[:10]}"
    assert known.connections == 0


HTTP = b"GET / HTTP/1.1\r\nHost: nested.example\r\n\r\n"


@pytest.fixture
def two_listeners(tmp_path: Path):
    """A plain listener (``proc.port``) and a ``proxy_protocol: accept`` one trusting 127.0.0.0/8,
    both defaulting to a Sink."""
    accept_port = free_port()
    with Sink() as sink:
        entry = f"{{address: 127.0.0.1:{accept_port}, proxy_protocol: accept, trusted_proxies: [127.0.0.0/8]}}"
        proc = start_passthru(
            tmp_path,
            f"routes:\n  - {{name: never, match: {{protocol: ssh}}, to: {sink.address}}}\ndefault: {sink.address}\n",
            extra_listen=((accept_port, entry),),
            identify="1s",
        )
        try:
            yield proc, accept_port, sink
        finally:
            proc.stop()


def test_nested_and_repeated_proxy_headers(two_listeners) -> None:
    proc, accept_port, sink = two_listeners
    garbage = random.Random(3).randbytes(500)
    # on the plain listener a PROXY header is just bytes: identified as `proxy`, no route: default
    plain = {
        "v1 v1 http": v1() + v1() + HTTP,
        "v2 v2 http": v2() + v2() + HTTP,
        "v1 v2 v1": v1() + v2() + v1(),
        "v1 garbage": v1() + garbage,
        "v2 garbage": v2() + garbage,
        "v1 x 50": v1() * 50,
    }
    # on the accept listener the first header is consumed; what follows is the client's
    accepted = {
        "v1 v1 http": (v1() + v1("203.0.113.9") + HTTP, v1("203.0.113.9") + HTTP),
        "v2 v1": (v2() + v1(), v1()),
        "v2 v2 v2": (v2() + v2() + v2(), v2() + v2()),
        "v1 garbage": (v1() + garbage, garbage),
        "v2 garbage": (v2() + garbage, garbage),
        "v2 local garbage": (v2(command=0x20) + garbage, garbage),
        "v1 unknown garbage": (b"PROXY UNKNOWN\r\n" + garbage, garbage),
    }
    refused = {  # an invalid first header on the accept listener: closed, end=proxy_protocol_error
        "garbage": garbage,
        "v1 without CRLF": v1()[:-2],
        "v1 too long": b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
        "v2 length 0xffff": v2(length=0xFFFF) + bytes(100),
        "v2 bad version": V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12),
        "http first": HTTP,
    }
    outcomes = {}
    for name, data in plain.items():
        outcomes[f"plain {name}"] = send(proc.port, data, half_close=True)
    for name, (data, _) in accepted.items():
        outcomes[f"accept {name}"] = send(accept_port, data, half_close=True)
    outcomes["accept header only"] = send(accept_port, v1(), half_close=True)
    for name, data in refused.items():
        outcomes[f"refused {name}"] = send(accept_port, data, half_close=True)
    expected = [*plain.values(), *(rest for _, rest in accepted.values())]
    received = sink.wait_received(len(expected))
    lines = wait_lines(proc, 2 + len(outcomes))  # two start-up probes
    log = proc.logs()
    ends = Counter(line["end"] for line in lines[2:])
    figure(
        "nested PROXY",
        f"{len(plain)} on a plain listener -> default, {len(accepted)} after a trusted header -> default "
        f"with the bytes after the first header, 1 header only -> client_closed, {len(refused)} invalid "
        f"-> proxy_protocol_error: ends {dict(ends)}, tracebacks {tracebacks(log)}",
    )
    assert tracebacks(log) == 0
    assert "end=error" not in log
    assert sorted(received) == sorted(expected)
    assert ends == {"closed": len(expected), "client_closed": 1, "proxy_protocol_error": len(refused)}, ends
    assert all(reply == b"" for reply, _ in outcomes.values())
    accepted_lines = [
        line for line in lines if line["listener"].endswith(f":{accept_port}") and line["end"] == "closed"
    ]
    assert {line["client"].split(":")[0] for line in accepted_lines} >= {"192.0.2.1"}, "the header's client is logged"
