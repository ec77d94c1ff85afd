"""The PROXY protocol codec (``passthru.proxyproto``): exact bytes against HAProxy's spec
(proxy-protocol.txt) and real senders' captures, truncation, garbage, mapped addresses, and
hypothesis properties (never raises; what we write we read back)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from passthru.proxyproto import (
    MAX_HEADER_LENGTH,
    V2_MAX,
    ProxyHeader,
    effective_addresses,
    header_for,
    header_v1,
    header_v2,
    is_trusted,
    parse_header,
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "proxy"
HTTP = b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
F6 = ":".join(["ffff"] * 8)


def v2(command: int, family: int, body: bytes) -> bytes:
    return SIG + bytes((command, family)) + len(body).to_bytes(2, "big") + body


def tlv(kind: int, value: bytes) -> bytes:
    return bytes((kind,)) + len(value).to_bytes(2, "big") + value


V4_BLOCK = bytes([192, 168, 0, 1, 192, 168, 0, 11]) + (56324).to_bytes(2, "big") + (443).to_bytes(2, "big")


# -- writing: exact bytes --------------------------------------------------------------------


def test_v1_spec_example() -> None:
    assert header_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == (
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    )


def test_v1_spec_worst_cases_fit_the_bound() -> None:
    tcp4 = header_v1(("255.255.255.255", 65535), ("255.255.255.255", 65535))
    assert tcp4 == b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
    assert len(tcp4) == 56
    tcp6 = header_v1((F6, 65535), (F6, 65535))
    assert tcp6 == f"PROXY TCP6 {F6} {F6} 65535 65535\r\n".encode()
    assert len(tcp6) == 104


def test_v1_ipv6_is_canonical_text() -> None:
    assert header_v1(("2001:DB8:0:0::1", 1), ("::1", 2)) == b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"


def test_v2_spec_layout_ipv4() -> None:
    assert header_v2(("192.168.0.1", 56324), ("192.168.0.11", 443)) == v2(0x21, 0x11, V4_BLOCK)


def test_v2_spec_layout_ipv6() -> None:
    header = header_v2(("2001:db8::1", 1234), ("::1", 443))
    assert header[:12] == SIG
    assert header[12:16] == b"\x21\x21\x00\x24"  # v2 PROXY, TCP over IPv6, 36 bytes
    expected = ipaddress.ip_address("2001:db8::1").packed + ipaddress.ip_address("::1").packed + b"\x04\xd2\x01\xbb"
    assert header[16:] == expected


def test_v2_matches_haproxy_send_proxy_v2_capture() -> None:
    """HAProxy 2.6 ``send-proxy-v2`` for 127.0.0.1:57882 -> 127.0.0.1:50643, byte for byte."""
    capture = (CORPUS / "haproxy-send-proxy-v2.bin").read_bytes()
    header = header_v2(("127.0.0.1", 57882), ("127.0.0.1", 50643))
    assert capture.startswith(header)


def test_header_for_dispatches_on_the_route_setting() -> None:
    pair = (("10.0.0.1", 1000), ("10.0.0.2", 443))
    assert header_for("v1", *pair) == header_v1(*pair)
    assert header_for("v2", *pair) == header_v2(*pair)
    with pytest.raises(ValueError, match="v1, v2"):
        header_for("v3", *pair)


@pytest.mark.parametrize("port", [-1, 65536, "80", True])
def test_bad_ports_are_refused(port) -> None:
    with pytest.raises(ValueError):
        header_v1(("10.0.0.1", port), ("10.0.0.2", 443))


# -- mixed and mapped addresses --------------------------------------------------------------


def test_mixed_pair_is_sent_as_ipv6_with_the_v4_side_mapped() -> None:
    assert header_v1(("10.1.2.3", 5000), ("2001:db8::1", 443)) == b"PROXY TCP6 ::ffff:10.1.2.3 2001:db8::1 5000 443\r\n"
    header = header_v2(("2001:db8::1", 5000), ("10.1.2.3", 443))
    assert header[13] == 0x21
    assert header[32:48] == ipaddress.ip_address("::ffff:10.1.2.3").packed


def test_mapped_inputs_are_ipv4() -> None:
    assert header_v1(("::ffff:10.1.2.3", 1), ("::ffff:10.0.0.1", 2)) == b"PROXY TCP4 10.1.2.3 10.0.0.1 1 2\r\n"


def test_parsed_mapped_addresses_are_unmapped() -> None:
    parsed = parse_header(header_v2(("10.1.2.3", 5000), ("2001:db8::1", 443)))
    assert isinstance(parsed, ProxyHeader)
    assert parsed.source == ("10.1.2.3", 5000)
    assert parsed.destination == ("2001:db8::1", 443)
    parsed = parse_header(b"PROXY TCP6 ::ffff:10.1.2.3 ::1 5000 443\r\n")
    assert isinstance(parsed, ProxyHeader)
    assert parsed.source == ("10.1.2.3", 5000)


# -- reading ---------------------------------------------------------------------------------


def test_v1_spec_example_before_a_request() -> None:
    data = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n" + HTTP
    assert parse_header(data) == ProxyHeader(1, "PROXY", ("192.168.0.1", 56324), ("192.168.0.11", 443), 47)
    assert data[47:] == HTTP


def test_v2_with_client_bytes_after_it() -> None:
    parsed = parse_header(v2(0x21, 0x11, V4_BLOCK) + HTTP)
    assert parsed == ProxyHeader(2, "PROXY", ("192.168.0.1", 56324), ("192.168.0.11", 443), 28)


@pytest.mark.parametrize(
    ("name", "source", "destination"),
    [
        ("haproxy-send-proxy.bin", ("127.0.0.1", 36534), ("127.0.0.1", 41045)),
        ("haproxy-send-proxy-v2.bin", ("127.0.0.1", 57882), ("127.0.0.1", 50643)),
        ("curl-haproxy-v1.bin", ("127.0.0.1", 39298), ("127.0.0.1", 36129)),
    ],
)
def test_real_senders_captures(name: str, source, destination) -> None:
    data = (CORPUS / name).read_bytes()
    parsed = parse_header(data)
    assert isinstance(parsed, ProxyHeader)
    assert (parsed.source, parsed.destination) == (source, destination)
    assert data[parsed.length :].startswith(b"GET /")


def test_v2_local_health_check_keeps_the_socket_addresses() -> None:
    data = (CORPUS / "spec-v2-local.bin").read_bytes()
    assert data == SIG + b"\x20\x00\x00\x00"
    header = parse_header(data)
    assert header == ProxyHeader(2, "LOCAL", None, None, 16)
    assert effective_addresses(header, ("10.0.0.9", 4000), ("10.0.0.1", 443)) == (
        ("10.0.0.9", 4000),
        ("10.0.0.1", 443),
    )


def test_v2_local_with_addresses_still_ignores_them() -> None:
    assert parse_header(v2(0x20, 0x11, V4_BLOCK)) == ProxyHeader(2, "LOCAL", None, None, 28)


def test_effective_addresses_of_a_proxy_header_are_the_headers() -> None:
    header = parse_header(header_v2(("203.0.113.7", 51000), ("198.51.100.1", 443)))
    assert isinstance(header, ProxyHeader)
    peer, local = ("10.0.0.9", 4000, 0, 0), ("::ffff:10.0.0.1", 443, 0, 0)  # IPv6 4-tuples are fine
    assert effective_addresses(header, peer, local) == (("203.0.113.7", 51000), ("198.51.100.1", 443))
    local_header = ProxyHeader(2, "LOCAL", None, None, 16)
    assert effective_addresses(local_header, peer, local) == (("10.0.0.9", 4000), ("10.0.0.1", 443))


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY UNKNOWN\r\n",  # the spec's short form: 15 bytes
        f"PROXY UNKNOWN {F6} {F6} 65535 65535\r\n".encode(),  # the spec's worst case: 107 bytes
    ],
)
def test_v1_unknown_uses_the_real_endpoints(line: bytes) -> None:
    assert parse_header(line + HTTP) == ProxyHeader(1, "PROXY", None, None, len(line))


@pytest.mark.parametrize(
    ("family", "body"),
    [(0x00, b""), (0x00, tlv(0x04, b"pad")), (0x12, V4_BLOCK), (0x31, bytes(216)), (0x32, bytes(216))],
)
def test_v2_families_other_than_tcp_use_the_real_endpoints(family: int, body: bytes) -> None:
    assert parse_header(v2(0x21, family, body)) == ProxyHeader(2, "PROXY", None, None, 16 + len(body))


def test_v2_tlvs_are_skipped_but_counted() -> None:
    tlvs = tlv(0x02, b"example.com") + tlv(0x01, b"h2") + tlv(0x04, bytes(40)) + tlv(0x05, b"id-1234")
    data = v2(0x21, 0x11, V4_BLOCK + tlvs)
    parsed = parse_header(data + HTTP)
    assert isinstance(parsed, ProxyHeader)
    assert parsed.length == len(data)
    assert parsed.source == ("192.168.0.1", 56324)


def test_v2_bound() -> None:
    largest = v2(0x21, 0x11, V4_BLOCK + tlv(0x04, bytes(V2_MAX - 16 - 12 - 3)))
    assert len(largest) == V2_MAX
    assert isinstance(parse_header(largest), ProxyHeader)
    too_long = v2(0x21, 0x11, V4_BLOCK + tlv(0x04, bytes(V2_MAX - 16 - 12 - 2)))
    assert parse_header(too_long[:16]) is None, "refused as soon as the length field arrives"
    assert parse_header(too_long) is None
    assert parse_header(SIG + b"\x21\x11\xff\xff") is None
    assert MAX_HEADER_LENGTH == V2_MAX


def test_v1_bound_is_107_bytes() -> None:
    almost = b"PROXY UNKNOWN " + b"x" * 91  # 105 bytes: CRLF would make 107
    assert parse_header(almost + b"\r\n") == ProxyHeader(1, "PROXY", None, None, 107)
    assert isinstance(parse_header(almost + b"\r"), int)
    assert parse_header(almost + b"xx") is None, "no CRLF in the first 107 bytes"
    assert parse_header(almost + b"x\r\n") is None


@pytest.mark.parametrize(
    "header",
    [
        header_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)),
        header_v1((F6, 65535), ("::1", 1)),
        header_v2(("192.168.0.1", 56324), ("192.168.0.11", 443)),
        header_v2(("2001:db8::1", 1), ("::1", 2)),
        v2(0x21, 0x11, V4_BLOCK + tlv(0x02, b"example.com")),
        v2(0x20, 0x00, b""),
        b"PROXY UNKNOWN\r\n",
    ],
)
def test_every_truncation_asks_for_more(header: bytes) -> None:
    assert isinstance(parse_header(header), ProxyHeader)
    for cut in range(len(header)):
        verdict = parse_header(header[:cut])
        assert isinstance(verdict, int) and cut < verdict <= len(header), (cut, verdict)
    if header.startswith(SIG) and len(header) > 16:
        assert parse_header(header[:16]) == len(header), "v2 knows its exact length after 16 bytes"


@pytest.mark.parametrize(
    "data",
    [
        HTTP,
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  # lower case
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # bare LF
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",  # two spaces
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",  # leading zero in a port
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",  # leading zero in an address
        b"PROXY TCP4 ::1 ::1 1 2\r\n",  # family and address disagree
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY\r\n",
        SIG + b"\x11\x11\x00\x0c" + bytes(12),  # version 1 in a v2 header
        SIG + b"\x22\x11\x00\x0c" + bytes(12),  # unassigned command
        SIG + b"\x21\x13\x00\x0c" + bytes(12),  # unassigned family
        SIG + b"\x21\x21\x00\x0c" + bytes(12),  # TCP6 with a block too short for its addresses
        v2(0x21, 0x11, V4_BLOCK + b"\x04\x00\x09xx"),  # a TLV overrunning the header
        SIG[:-1] + b"X",
    ],
)
def test_garbage_is_not_a_header(data: bytes) -> None:
    assert parse_header(data) is None


def test_empty_input_needs_a_byte() -> None:
    assert parse_header(b"") == 1


# -- trust -----------------------------------------------------------------------------------

NETS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


@pytest.mark.parametrize(
    ("address", "trusted"),
    [
        ("10.1.2.3", True),
        ("::ffff:10.1.2.3", True),  # a dual-stack socket's view of an IPv4 peer
        ("11.0.0.1", False),
        ("::ffff:11.0.0.1", False),
        ("2001:db8::5", True),
        ("[2001:db8::5]", True),
        ("fe80::1%eth0", False),
        ("2001:db9::1", False),
        ("::a00:1", False),  # not mapped: 10.0.0.1's bits in another place
        ("not-an-address", False),
        ("", False),
    ],
)
def test_is_trusted(address: str, trusted: bool) -> None:
    assert is_trusted(address, NETS) is trusted


def test_ipv6_mapped_network_trusts_ipv4_peers() -> None:
    assert is_trusted("10.1.2.3", (ipaddress.ip_network("::ffff:10.0.0.0/104"),))
    assert not is_trusted("10.1.2.3", ())


# -- properties ------------------------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).filter(lambda a: a.ipv4_mapped is None).map(str)
ports = st.integers(0, 65535)
addresses = st.tuples(st.one_of(ipv4, ipv6), ports)
PROPS = settings(max_examples=300, deadline=None, derandomize=True)


@st.composite
def near_headers(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid header cut, extended, or with one byte changed."""
    kind = draw(st.sampled_from(["random", "prefixed", "cut", "mutate"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "prefixed":
        return draw(st.sampled_from([SIG, b"PROXY "])) + draw(st.binary(max_size=200))
    source, destination = draw(addresses), draw(addresses)
    header = draw(st.sampled_from([header_v1, header_v2]))(source, destination)
    if kind == "cut":
        return header[: draw(st.integers(0, len(header)))]
    at = draw(st.integers(0, len(header) - 1))
    return header[:at] + bytes([draw(st.integers(0, 255))]) + header[at + 1 :] + draw(st.binary(max_size=20))


@PROPS
@given(near_headers())
def test_never_raises_and_answers_in_bounds(data: bytes) -> None:
    verdict = parse_header(data)
    if isinstance(verdict, ProxyHeader):
        assert 0 < verdict.length <= min(len(data), MAX_HEADER_LENGTH)
        assert parse_header(data[: verdict.length]) == verdict, "the header alone says the same"
    elif isinstance(verdict, int):
        assert len(data) < verdict <= MAX_HEADER_LENGTH
    else:
        assert verdict is None


@PROPS
@given(near_headers(), st.binary(min_size=1, max_size=64))
def test_no_is_final_and_yes_is_stable(data: bytes, more: bytes) -> None:
    verdict = parse_header(data)
    if verdict is None or isinstance(verdict, ProxyHeader):
        assert parse_header(data + more) == verdict


@PROPS
@given(addresses, addresses, st.sampled_from(["v1", "v2"]), st.binary(max_size=32))
def test_what_we_write_we_read_back(source, destination, version: str, after: bytes) -> None:
    header = header_for(version, source, destination)
    parsed = parse_header(header + after)
    assert parsed == ProxyHeader(int(version[1]), "PROXY", source, destination, len(header))
