"""The shipped examples in identifiers/: they load, pass their samples, agree with independent
encoders (and a real Minecraft client), and never hold back or steal the built-in protocols."""

from __future__ import annotations

import socket
import ssl
import struct
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from passthru.identify import Identification
from passthru.plugins import ACTIVE, UserIdentifiers
from tests.plugins.helpers import EXAMPLES


def client_hello() -> bytes:
    """A real ClientHello, from Python's TLS client writing into memory."""
    context = ssl.create_default_context()
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="example.com")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


BUILTIN_TRAFFIC = {
    "http": lambda: b"GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n",
    "ssh": lambda: b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n",
    "tls": client_hello,
}


@pytest.fixture(scope="module")
def examples() -> UserIdentifiers:
    users = UserIdentifiers(EXAMPLES)
    users.load_all()
    return users


def example(users: UserIdentifiers, name: str):
    return next(i for i in users.current() if i.name == name).identify


def test_every_example_loads_with_its_samples(examples):
    statuses = examples.statuses()
    assert {s.name for s in statuses} == {"greeting", "minecraft", "stun"}
    assert all(s.status == ACTIVE for s in statuses), statuses
    for identifier in examples.current():
        assert identifier.samples_match and identifier.samples_no_match, identifier.name


@pytest.mark.parametrize("protocol", sorted(BUILTIN_TRAFFIC))
def test_examples_neither_steal_nor_delay_builtin_protocols(examples, protocol):
    data = BUILTIN_TRAFFIC[protocol]()
    for size in (1, 2, 4, 8, len(data)):  # early answers matter: user identifiers are asked first
        for identifier in examples.current():
            verdict = identifier.identify(data[:size])
            assert verdict is None or (isinstance(verdict, int) and size < 8), (identifier.name, size, verdict)
    identification = Identification(list(examples.combined()), guard=examples.connection_guard())
    assert identification.feed(data).protocol == protocol


# -- greeting -------------------------------------------------------------------------------


def test_greeting(examples):
    identify = example(examples, "greeting")
    assert identify(b"HEL") == 6
    assert identify(b"HELLO alice\r\nmore") == {"who": "alice"}
    assert identify(b"HELP") is None


# -- minecraft ------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    """An independent VarInt encoder (two's complement for negatives, as the protocol does)."""
    value &= 0xFFFFFFFF
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def handshake(address: str, port: int, version: int, state: int) -> bytes:
    raw = address.encode()
    body = b"\x00" + varint(version) + varint(len(raw)) + raw + struct.pack(">H", port) + varint(state)
    return varint(len(body)) + body


hostnames = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True)


@given(
    address=hostnames,
    port=st.integers(0, 65535),
    version=st.integers(-(2**31), 2**31 - 1),
    state=st.sampled_from([1, 2, 3]),
    trailer=st.binary(max_size=8),
)
def test_minecraft_reads_any_handshake_fed_byte_by_byte(examples, address, port, version, state, trailer):
    identify = example(examples, "minecraft")
    packet = handshake(address, port, version, state)
    expected = {"server_address": address, "port": port, "protocol_version": version, "next_state": state}
    assert identify(packet + trailer) == expected
    size = 1
    while size < len(packet):  # the engine's way: ask again once the bytes asked for are there
        verdict = identify(packet[:size])
        assert isinstance(verdict, int) and size < verdict <= len(packet), (size, verdict)
        size = verdict
    assert identify(packet) == expected


@given(st.binary(min_size=1, max_size=64))
def test_minecraft_answers_every_input_with_a_valid_verdict(examples, data):
    verdict = example(examples, "minecraft")(data)
    assert verdict is None or isinstance(verdict, dict) or (isinstance(verdict, int) and verdict > len(data))
    if isinstance(verdict, int):
        assert verdict <= 2 + 1100, "never asks for more than one handshake"


def test_minecraft_normalises_the_address(examples):
    identify = example(examples, "minecraft")
    assert identify(handshake("MC.Example.COM.", 25565, 767, 2))["server_address"] == "mc.example.com"
    assert identify(handshake("mc.example.com\0FML2\0", 25565, 340, 2))["server_address"] == "mc.example.com"
    assert identify(handshake("mc.example.com", 25565, 767, 4)) is None
    assert identify(handshake("mc.example.com", 25565, 767, 2)[:-1] + b"\x02\x00")["next_state"] == 2


def test_minecraft_with_a_real_client(examples):
    """mcstatus (a real Java Edition client library) opens a status ping against a socket here."""
    import mcstatus  # pinned in requirements-test.txt: missing is a failure

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = bytearray()

    def serve():
        conn, _ = listener.accept()
        conn.settimeout(0.5)
        try:
            while chunk := conn.recv(4096):
                received.extend(chunk)
        except TimeoutError:
            pass
        conn.close()

    server = threading.Thread(target=serve)
    server.start()
    with pytest.raises(Exception):  # noqa: B017 - nobody answers; only the bytes it sent matter
        mcstatus.JavaServer("localhost", port, timeout=1).status(tries=1, version=767)
    server.join()
    listener.close()
    assert example(examples, "minecraft")(bytes(received)) == {
        "server_address": "localhost",
        "port": port,
        "protocol_version": 767,
        "next_state": 1,
    }


# -- stun -----------------------------------------------------------------------------------


def stun_header(method: int, klass: int, length: int = 0) -> bytes:
    """RFC 8489 section 5: M11-M7, C1, M6-M4, C0, M3-M0 (written out bit by bit, independently)."""
    bits = 0
    for i in range(12):
        position = i + (i >= 4) + (i >= 7)  # skip the class bits at 4 and 8
        bits |= ((method >> i) & 1) << position
    bits |= (klass & 1) << 4 | ((klass >> 1) & 1) << 8
    return struct.pack(">HHI", bits, length, 0x2112A442) + bytes(range(12))


@pytest.mark.parametrize(
    ("method", "name"), [(1, "binding"), (3, "allocate"), (4, "refresh"), (9, "channel_bind"), (0x0FF, "255")]
)
@pytest.mark.parametrize(("klass", "class_name"), [(0, "request"), (1, "indication"), (2, "success"), (3, "error")])
def test_stun_reads_method_and_class(examples, method, name, klass, class_name):
    identify = example(examples, "stun")
    message = stun_header(method, klass, 8) + b"\x00\x19\x00\x04\x11\x00\x00\x00"
    assert identify(message) == {"method": name, "class": class_name}
    assert identify(message[:5]) == 8


def test_stun_rejects_early(examples):
    identify = example(examples, "stun")
    assert identify(b"\x80") is None  # top bits set
    assert identify(b"\x00\x01\x00\x05") is None  # length not a multiple of 4
    assert identify(b"\x00\x01\x00\x04\x21\x13") is None  # cookie differs
