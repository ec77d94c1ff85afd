"""The PROXY protocol (HAProxy's spec, v1 and v2) between Passthru and its neighbours. Sans-IO.

Two jobs, both pure functions over addresses and bytes (the handler does the socket work):

* **Out, to backends** (route ``proxy_protocol: v1 | v2``): :func:`header_for` builds the header
  that goes before the prefix, so nginx, Postfix or Dovecot see the real client. A v4/v6 mixed pair
  is sent as IPv6 with the IPv4 side mapped (``::ffff:a.b.c.d``) — ``PROXY TCP6`` in v1, family
  TCP over IPv6 in v2 — exactly as HAProxy does, since neither version can mix families.
* **In, from a load balancer** (listener ``proxy_protocol: accept``): :func:`is_trusted` says whether
  the peer may send a header at all, and :func:`parse_header` reads it from the first bytes. The
  header's own grammar is the ``proxy`` identifier's (``passthru.identify.proxy_protocol``); this
  module adds only what a receiver needs on top: how many bytes the header took, a size bound,
  and which addresses a LOCAL / UNKNOWN / non-TCP header leaves in place.

Addresses are normalised everywhere: an IPv4-mapped IPv6 address (``::ffff:10.1.2.3``) *is* the
IPv4 address, whether it came from a header (a LB that had to mix families) or from the caller;
so logs, per-source limits and trust checks see one client one way.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from passthru.identify.parsing import Malformed, Truncated
from passthru.identify.proxy_protocol import V1_MAX, V2_SIGNATURE, parse_proxy

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = tuple[str, int]

V2_FIXED = 16  # signature, version/command, family, length
#: The largest v2 header accepted, all of it (16 fixed bytes + addresses + TLVs). The spec allows
#: 16 + 65535, but real senders (HAProxy with its SSL/unique-id TLVs, AWS/GCP/Azure load balancers)
#: stay under a few hundred bytes; a bigger one is refused as soon as its length field arrives, so
#: a trusted-but-broken peer cannot make us buffer 64 KiB before routing starts.
V2_MAX = 4096
#: The most bytes a caller ever needs to read to get a whole header (v1 is at most 107).
MAX_HEADER_LENGTH = max(V1_MAX, V2_MAX)

_V2_PROXY = 0x21  # version 2, command PROXY
_V2_TCP4, _V2_TCP6 = 0x11, 0x21


@dataclass(frozen=True)
class ProxyHeader:
    """A complete header at the start of a stream.

    ``length`` is the bytes it took: the caller strips exactly that and keeps the rest (client
    bytes that arrived with it). ``source``/``destination`` are None when the header says "use the
    connection's own addresses": a v2 LOCAL (the LB's health checks), v1 ``UNKNOWN``, or a family
    other than TCP over IPv4/IPv6 (UNSPEC, UDP, unix), which the spec lets a receiver treat so.
    """

    version: int  # 1 or 2
    command: str  # "PROXY" or "LOCAL"
    source: Address | None
    destination: Address | None
    length: int


def header_v1(source: Address, destination: Address) -> bytes:
    """``PROXY TCP4|TCP6 src dst sport dport\\r\\n`` (TCP6 with the v4 side mapped if mixed)."""
    src, dst = _pair(source, destination)
    family = "TCP4" if src.version == 4 else "TCP6"
    line = f"PROXY {family} {_text(src)} {_text(dst)} {_port(source)} {_port(destination)}\r\n"
    return line.encode("ascii")


def header_v2(source: Address, destination: Address) -> bytes:
    """The binary header, command PROXY, TCP over IPv4 or IPv6, no TLVs."""
    src, dst = _pair(source, destination)
    family = _V2_TCP4 if src.version == 4 else _V2_TCP6
    block = src.packed + dst.packed + _port(source).to_bytes(2, "big") + _port(destination).to_bytes(2, "big")
    return V2_SIGNATURE + bytes((_V2_PROXY, family)) + len(block).to_bytes(2, "big") + block


def header_for(version: str, source: Address, destination: Address) -> bytes:
    """The header a route's ``proxy_protocol`` (``v1`` or ``v2``) asks for."""
    if version == "v1":
        return header_v1(source, destination)
    if version == "v2":
        return header_v2(source, destination)
    raise ValueError(f"unknown PROXY protocol version {version!r} (valid: v1, v2)")


def parse_header(data: bytes) -> ProxyHeader | int | None:
    """A header at the start of ``data``, the total bytes needed to decide (int), or None.

    None means the bytes are not a valid header, however many more arrive: the connection must
    be dropped. Bytes after the header are allowed and not looked at. A v2 header is only
    decoded once all of it is there (the spec forbids acting on part of it), so "need more"
    for v2 is exact once its 16 fixed bytes have arrived.
    """
    v2 = data.startswith(V2_SIGNATURE)
    v2_length = V2_FIXED + int.from_bytes(data[14:16], "big") if v2 and len(data) >= V2_FIXED else V2_FIXED
    if v2 and v2_length > V2_MAX:
        return None
    try:
        fields = parse_proxy(data)
    except Truncated as short:
        return max(short.needed, v2_length if v2 else 0, len(data) + 1)
    except Malformed:
        return None
    version = int(fields["version"])
    length = v2_length if v2 else data.index(b"\n") + 1
    command = fields["command"].upper()
    if command != "PROXY" or fields["family"] not in ("tcp4", "tcp6"):
        return ProxyHeader(version, command, None, None, length)
    source = (_normalise(fields["source"]), fields["source_port"])
    destination = (_normalise(fields["destination"]), fields["destination_port"])
    return ProxyHeader(version, command, source, destination, length)


def is_trusted(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    """True when the peer ``address`` lies in one of ``networks`` (never for an unparsable one).

    An IPv4 peer is also compared as ``::ffff:a.b.c.d`` and an IPv4-mapped IPv6 peer as plain
    IPv4, so ``10.0.0.0/8`` trusts ``::ffff:10.1.2.3`` (a dual-stack socket's view of 10.1.2.3).
    """
    try:
        peer = _address(address)
    except ValueError:
        return False
    candidates = {peer, _mapped(peer)} if peer.version == 4 else {peer}
    return any(c.version == n.version and c in n for c in candidates for n in networks)


def effective_addresses(header: ProxyHeader, peer: Address, local: Address) -> tuple[Address, Address]:
    """(client, original destination) for a connection accepted from a trusted proxy.

    A PROXY header's addresses replace the socket's (the destination is what the real client
    dialed, e.g. the LB's public address; HAProxy's ``accept-proxy`` does the same); a LOCAL or
    address-less header leaves the socket's peer and local address in place.
    """
    if header.source is None or header.destination is None:
        return (_normalise(peer[0]), peer[1]), (_normalise(local[0]), local[1])
    return header.source, header.destination


def _address(text: str) -> IPAddress:
    """``text`` as an address: brackets and an IPv6 zone dropped, IPv4-mapped unmapped."""
    address = ipaddress.ip_address(text.strip("[]").partition("%")[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _normalise(text: str) -> str:
    return str(_address(text))


def _pair(source: Address, destination: Address) -> tuple[IPAddress, IPAddress]:
    """Both addresses in one family: mixed pairs become IPv6 with the IPv4 one mapped."""
    src, dst = _address(source[0]), _address(destination[0])
    if src.version != dst.version:
        src, dst = (_mapped(a) if a.version == 4 else a for a in (src, dst))
    return src, dst


def _mapped(address: IPAddress) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(f"::ffff:{address}")


def _text(address: IPAddress) -> str:
    """Canonical text; a mapped IPv4 in dotted form (``::ffff:1.2.3.4``, as inet_ntop writes it)."""
    if address.version == 6 and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def _port(address: Address) -> int:
    port = address[1]
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"not a TCP port: {port!r}")
    return port
