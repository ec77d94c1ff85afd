"""Listening sockets, made by hand so every option is explicit (gevent wraps them as-is)."""

from __future__ import annotations

import contextlib
import socket

BACKLOG = 1024


def listen_socket(family: int, sockaddr: tuple, *, reuse_port: bool = False, defer: float = 0) -> socket.socket:
    """A bound, listening TCP socket.

    ``SO_REUSEADDR`` so a restart does not wait for TIME_WAIT; ``SO_REUSEPORT`` when several
    worker processes share the port; ``IPV6_V6ONLY`` so ``[::]:443`` and ``0.0.0.0:443`` can
    both be listed, as in HAProxy and nginx; ``TCP_NODELAY``, which accepted sockets inherit
    (we forward whatever segments the client sent, as they come). ``defer``: ``TCP_DEFER_ACCEPT``
    (see ``defer_accept``), set before ``listen`` so no client is ever accepted without it.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(sockaddr)
        defer_accept(sock, defer)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def defer_accept(sock: socket.socket, seconds: float) -> None:
    """``TCP_DEFER_ACCEPT``: the kernel hands a client over only once it has sent bytes (or after
    ``seconds``), so the first read finds them. 0 turns it off (a route needs silent clients)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, max(0, round(seconds)))


def format_address(address: tuple) -> str:
    """``host:port`` for IPv4 and ``[host]:port`` for IPv6 socket addresses."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
