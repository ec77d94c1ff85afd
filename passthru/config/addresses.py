"""Addresses in config: ``host:port`` / ``[IPv6]:port``, resolved once at load time.

Numeric addresses are converted without touching DNS (``AI_NUMERICHOST``); only names are
looked up, and a name that does not resolve is a config error rather than a failure on the first
connection. Each function raises ValueError with a message that shows the expected form.
"""

from __future__ import annotations

import ipaddress
import socket

from passthru.config.checker import describe
from passthru.config.model import Endpoint, IPNetwork

ADDRESS_HINT = "expected host:port or [IPv6]:port, e.g. 127.0.0.1:22, example.com:443 or [::1]:22"
NETWORK_HINT = "expected an address or a network, e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32"


def split_host_port(value: object) -> tuple[str, int]:
    """``"[::1]:22"`` -> ``("::1", 22)``; the host is not looked up here."""
    if not isinstance(value, str):
        raise ValueError(f"invalid address {describe(value)}: {ADDRESS_HINT}")
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
        if not bracket or port_text is None or not _is_ipv6(host):
            raise ValueError(f"invalid address {value!r}: {ADDRESS_HINT}")
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon or not host:
            raise ValueError(f"invalid address {value!r}: {ADDRESS_HINT}")
        if ":" in host:
            raise ValueError(f"invalid address {value!r}: IPv6 addresses go in brackets, e.g. [{host}]:{port_text}")
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ValueError(f"invalid port in {value!r}: the port must be a number from 1 to 65535 ({ADDRESS_HINT})")
    return host, int(port_text)


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host)
    except ValueError:
        return False
    return True


def resolve(host: str, port: int) -> Endpoint:
    """The first stream address for ``host``; numeric hosts never reach the resolver."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(f"cannot resolve host {host!r}: {reason}") from None
    family, _type, _proto, _canonname, sockaddr = infos[0]
    return Endpoint(host=host, port=port, family=family, sockaddr=sockaddr)


def parse_endpoint(value: object) -> Endpoint:
    return resolve(*split_host_port(value))


def parse_network(value: object) -> IPNetwork:
    if not isinstance(value, str):
        raise ValueError(f"invalid network {describe(value)}: {NETWORK_HINT}")
    try:
        return ipaddress.ip_network(value)
    except ValueError as exc:
        raise ValueError(f"invalid network {value!r} ({exc}): {NETWORK_HINT}") from None
