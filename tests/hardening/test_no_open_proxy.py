"""Nothing opened up: no client input chooses a destination, and nothing listens but the
configured addresses (no admin endpoint unless configured).

"Canary" listeners run on addresses the config never names — another loopback address, another
port of the backends' own address, and ::1 — and every identifier field that could name a
destination is pointed at them: CONNECT and absolute-form targets, Host headers, SOCKS 4/4a/5
requests, TLS SNI (an IP address too), PROXY headers (trusted and not), an RDP routing token, a
git ``host=``, an XMPP ``to``, a STOMP ``host``, a Minecraft server address. The canaries must
never see a connection; each client ends at a configured backend or is refused.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import struct
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.hardening.figures import figure
from tests.hardening.helpers import (
    Canary,
    Sink,
    connection_lines,
    listening_sockets,
    process_tree,
    wait_lines,
    wait_serving,
)
from tests.support.backends import TagServer
from tests.support.hello import client_hello
from tests.support.net import free_port, recv_all
from tests.support.passthru_process import PassthruProcess, tracebacks

REPO = Path(__file__).resolve().parents[2]


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def tls_hello_with_sni(name: str) -> bytes:
    """A TLS 1.2 ClientHello carrying ``name`` in server_name, whatever it is (OpenSSL will not
    put an IP address in SNI, an attacker will)."""
    host = name.encode()
    server_name = struct.pack("!HBH", len(host) + 3, 0, len(host)) + host
    extensions = struct.pack("!HH", 0, len(server_name)) + server_name
    extensions += struct.pack("!HHH", 0x000D, 4, 2) + b"\x04\x01"  # signature_algorithms
    body = b"\x03\x03" + bytes(range(32)) + b"\x00" + b"\x00\x02\xc0\x2f" + b"\x01\x00"
    body += struct.pack("!H", len(extensions)) + extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def socks4(ip: str, port: int, host: str | None = None) -> bytes:
    if host is None:
        return b"\x04\x01" + struct.pack("!H", port) + socket.inet_aton(ip) + b"attacker\x00"
    return b"\x04\x01" + struct.pack("!H", port) + b"\x00\x00\x00\x01" + b"attacker\x00" + host.encode() + b"\x00"


def socks5(host: str, port: int) -> bytes:
    greeting = b"\x05\x01\x00"
    try:
        address = ipaddress.ip_address(host)
        target = (b"\x01" if address.version == 4 else b"\x04") + address.packed
    except ValueError:
        target = b"\x03" + bytes([len(host)]) + host.encode()
    return greeting + b"\x05\x01\x00" + target + struct.pack("!H", port)


def varint(value: int) -> bytes:
    out = b""
    while True:
        byte = value & 0x7F
        value >>= 7
        out += bytes([byte | (0x80 if value else 0)])
        if not value:
            return out


def minecraft(host: str, port: int) -> bytes:
    packet = b"\x00" + varint(765) + varint(len(host)) + host.encode() + struct.pack("!H", port) + varint(1)
    return varint(len(packet)) + packet


def pkt_line(text: str) -> bytes:
    return f"{len(text) + 4:04x}".encode() + text.encode()


def proxy_v1(dst: str, dport: int) -> bytes:
    return f"PROXY TCP4 192.0.2.7 {dst} 40000 {dport}\r\n".encode()


def proxy_v2(dst: str, dport: int) -> bytes:
    block = socket.inet_aton("192.0.2.7") + socket.inet_aton(dst) + struct.pack("!HH", 40000, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11" + struct.pack("!H", len(block)) + block


def attacks(targets: list[tuple[str, int]]) -> dict[str, bytes]:
    """Every way we know for a client to name a destination, once per canary."""
    cases: dict[str, bytes] = {}
    for host, port in targets:
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        cases.update(
            {
                f"CONNECT {hostport}": f"CONNECT {hostport} HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode(),
                f"absolute-form {hostport}": f"GET http://{hostport}/ HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode(),
                f"Host {hostport}": f"GET / HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode(),
                f"Forwarded {hostport}": (
                    f"GET / HTTP/1.1\r\nHost: www.example.com\r\nForwarded: host={hostport}\r\n"
                    f"X-Forwarded-Host: {hostport}\r\nX-Forwarded-Port: {port}\r\n\r\n"
                ).encode(),
                f"socks5 {hostport}": socks5(host, port),
                f"tls sni {host}": tls_hello_with_sni(host),
                f"minecraft {hostport}": minecraft(host, port),
                f"git host={hostport}": pkt_line(f"git-upload-pack /x\x00host={hostport}\x00"),
                f"xmpp to={host}": (
                    f"<?xml version='1.0'?><stream:stream to='{host}' xmlns='jabber:client' "
                    "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>"
                ).encode(),
                f"stomp host:{hostport}": f"CONNECT\naccept-version:1.2\nhost:{hostport}\n\n\x00".encode(),
            }
        )
        if ":" not in host:
            # msts=<IPv4 as a little-endian integer>.<port, byte-swapped>.0000 (MS-RDPBCGR)
            address = int.from_bytes(socket.inet_aton(host), "little")
            token = f"{address}.{int.from_bytes(struct.pack('<H', port), 'big')}.0000"
            cases[f"socks4 {hostport}"] = socks4(host, port)
            cases[f"socks4a {hostport}"] = socks4("0.0.0.1", port, host)
            cases[f"rdp routing token {hostport}"] = (
                b"\x03\x00\x00\x00" + b"\x00\xe0\x00\x00\x00\x00\x00" + f"Cookie: msts={token}\r\n".encode()
            )
            cases[f"proxy v1 dst {hostport} (plain listener)"] = proxy_v1(host, port) + b"GET / HTTP/1.1\r\n\r\n"
    cases["socks4a localhost"] = socks4("0.0.0.1", targets[0][1], "localhost")
    cases["socks5 localhost"] = socks5("localhost", targets[0][1])
    cases["Host localhost"] = f"GET / HTTP/1.1\r\nHost: localhost:{targets[0][1]}\r\n\r\n".encode()
    cases["sni canary.example.com"] = client_hello("canary.example.com")
    return cases


def fix_rdp_length(data: bytes) -> bytes:
    """Fill in the TPKT and X.224 lengths of the RDP case."""
    if not data.startswith(b"\x03\x00\x00\x00"):
        return data
    x224 = bytes([len(data) - 5]) + data[5:]
    return b"\x03\x00" + struct.pack("!H", 4 + len(x224)) + x224


def catch_all(address: str) -> str:
    """A route per protocol that can carry a destination, all to one configured backend."""
    protocols = ["http", "socks4", "socks5", "minecraft", "rdp", "git", "xmpp", "stomp", "proxy"]
    return "".join(f"  - {{name: any-{p}, match: {{protocol: {p}}}, to: {address}}}\n" for p in protocols)


def exchange(port: int, data: bytes) -> tuple[bytes, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            return recv_all(sock), "eof"
        except ConnectionResetError:
            return b"", "reset"


@pytest.fixture
def canaries():
    hosts = ["127.0.0.9", "127.0.0.1"] + (["::1"] if ipv6_loopback() else [])
    opened = [Canary(host) for host in hosts]
    for canary in opened:
        canary.__enter__()
    try:
        yield opened
    finally:
        for canary in opened:
            canary.__exit__()


def test_no_client_input_reaches_an_address_outside_the_config(tmp_path: Path, canaries) -> None:
    (tmp_path / "identifiers").mkdir()
    shutil.copy(REPO / "identifiers" / "minecraft.py", tmp_path / "identifiers" / "minecraft.py")
    port, trusted_port, untrusted_port = free_port(), free_port(), free_port()
    targets = [(c.host, c.port) for c in canaries]
    with TagServer("web") as web, TagServer("any") as anything, Sink() as proxied, TagServer("default") as default:
        config = f"""listen:
  - 127.0.0.1:{port}
  - {{address: 127.0.0.1:{trusted_port}, proxy_protocol: accept, trusted_proxies: [127.0.0.0/8]}}
  - {{address: 127.0.0.1:{untrusted_port}, proxy_protocol: accept, trusted_proxies: [10.0.0.0/8]}}
workers: 2
timeouts: {{identify: 1s, connect: 1s, idle: 10s}}
routes:
  - {{name: web-http, match: {{protocol: http, host: "*.example.com"}}, to: {web.address}}}
  - {{name: web-tls, match: {{protocol: tls, sni: "*.example.com"}}, to: {web.address}}}
  - {{name: with-header, match: {{protocol: http, host: proxied.test}}, to: {proxied.address}, proxy_protocol: v1}}
{catch_all(anything.address)}default: {default.address}
"""
        proc = PassthruProcess(tmp_path, config, [("127.0.0.1", p) for p in (port, trusted_port, untrusted_port)])
        with proc:
            wait_serving(proc, 2)
            pids = process_tree(proc.process.pid)
            listening = {pid: listening_sockets(pid) for pid in pids}
            cases = {name: fix_rdp_length(data) for name, data in attacks(targets).items()}
            outcomes = {name: exchange(port, data) for name, data in cases.items()}
            canary_host, canary_port = targets[0]
            via_trusted = {
                "trusted v1 dst canary": proxy_v1(canary_host, canary_port)
                + b"GET / HTTP/1.1\r\nHost: proxied.test\r\n\r\n",
                "trusted v2 dst canary": proxy_v2(canary_host, canary_port)
                + b"GET / HTTP/1.1\r\nHost: proxied.test\r\n\r\n",
                "trusted v1 then CONNECT canary": proxy_v1(canary_host, canary_port)
                + f"CONNECT {canary_host}:{canary_port} HTTP/1.1\r\n\r\n".encode(),
            }
            for name, data in via_trusted.items():
                outcomes[name] = exchange(trusted_port, data)
            outcomes["untrusted v1 dst canary"] = exchange(untrusted_port, proxy_v1(canary_host, canary_port))
            total = len(outcomes)
            lines = wait_lines(proc, 3 + total, 10)  # three start-up probes
            time.sleep(0.3)
            log = proc.logs()
            headers = proxied.wait_received(2)
    hits = {f"{c.host}:{c.port}": len(c.hits) for c in canaries}
    routes = Counter(line["route"] for line in lines[3:])
    upstreams = {line["upstream"] for line in lines if line["upstream"] != "-"}
    configured = {web.address, anything.address, proxied.address, default.address}
    listen_expected = {("127.0.0.1", p) for p in (port, trusted_port, untrusted_port)}
    all_listening = set().union(*listening.values())
    figure(
        "no open proxy",
        f"{total} attempts naming {len(canaries)} canaries ({', '.join(hits)}) through HTTP CONNECT/absolute-form/"
        f"Host/Forwarded, SOCKS4/4a/5, TLS SNI, PROXY v1/v2 (plain, trusted, untrusted listener), RDP token, "
        f"git, XMPP, STOMP, Minecraft: canary connections {sum(hits.values())}; routes {dict(routes)}; "
        f"upstreams dialed {len(upstreams)} (all configured); listening sockets of supervisor+workers: "
        f"{sorted(f'{h}:{p}' for h, p in all_listening)} (no admin)",
    )
    assert sum(hits.values()) == 0, hits
    assert upstreams <= configured, upstreams - configured
    assert all(listening[pid] == listen_expected for pid in pids[1:]), listening
    assert listening[pids[0]] <= listen_expected, "the supervisor listens on nothing else"
    assert ("127.0.0.1", 9901) not in all_listening
    assert outcomes["untrusted v1 dst canary"] == (b"", "eof")
    assert routes["with-header"] == 2
    # what a trusted header's destination is used for: the PROXY header we send, never a dial
    assert all(
        header.startswith(f"PROXY TCP4 192.0.2.7 {canary_host} 40000 {canary_port}\r\n".encode()) for header in headers
    )
    assert tracebacks(log) == 0
    assert "end=error" not in log
    assert {line["end"] for line in connection_lines(log)} <= {"closed", "client_closed", "proxy_protocol_error"}
