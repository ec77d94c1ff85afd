"""One connection, start to end: read the prefix, identify, route, dial, forward, relay, log.

Plain blocking-style gevent code; every way a connection can end is caught here and turned
into a log line, so no client or backend behaviour can take the server down.
"""

from __future__ import annotations

import errno
import itertools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

import gevent
from gevent import socket as gsocket

from passthru import capture, metrics, proxyproto
from passthru.config import Endpoint, Listener, Route
from passthru.connlog import ConnectionRecord, emit
from passthru.identify.engine import Decision, Identification, Preparing
from passthru.plugins import UserIdentifiers
from passthru.server.admission import Admission
from passthru.server.connections import Connections
from passthru.server.listener import format_address
from passthru.server.relay import Relay, RelayResult, shutdown_write
from passthru.server.runtime import TRUSTED_SOURCES, Runtime, connection_guard
from passthru.server.upstream import Balancer, UpstreamUnavailable, dial_any

log = logging.getLogger("passthru.server")

#: How long a rejected client may keep sending before we stop draining and close.
REJECT_DRAIN_SECONDS = 1.0
REJECT_DRAIN_BYTES = 64 * 1024


class AcceptingServer(Protocol):
    """What the handler needs of the listener that accepted a connection."""

    open: int
    listener_key: tuple
    address_text: str  # the listen address, as the log names it


@dataclass
class Connection:
    """One accepted connection's sockets and record, from accept to log line."""

    client: gsocket.socket
    record: ConnectionRecord
    runtime: Runtime
    started: float
    client_address: tuple  # (host, port): the peer, or the client a trusted PROXY header names
    server: AcceptingServer
    #: (host, port) the client dialed: a trusted PROXY header's, else our socket's (looked up
    #: only when a PROXY header needs it: one system call less per connection)
    destination: tuple | None = None
    identifying: bool = True
    admitted: bool = False  # counted by the per-source limits
    upstream: gsocket.socket | None = None
    balancer: Balancer | None = None
    endpoint: Endpoint | None = None
    route: Route | None = None
    prefix: bytes = b""  # what was read before routing: sent first to whichever backend takes it
    tried: set[Endpoint] = field(default_factory=set)
    prefix_bytes: int = 0
    relayed: bool = False  # handed to a Relay, which closes and logs it when it ends

    @property
    def source(self) -> str:
        """The client's address, as limits, balancing and logs use it."""
        return self.client_address[0]


@dataclass
class Prefix:
    """The bytes read before routing and why reading stopped."""

    data: bytes
    decision: Decision
    stopped: str  # "identified", "no_match", "limit", "timeout", "eof"
    unmatched: bool = False  # no route rule matched the bytes: ``default`` applies


class ConnectionHandler:
    """Called by the StreamServer for each accepted socket (gevent spawns a greenlet for it)."""

    def __init__(
        self,
        runtime: Callable[[], Runtime],
        user: Callable[[], UserIdentifiers | None] = lambda: None,
        worker: int = 0,
        log_format: str | None = None,
    ) -> None:
        self.log_format = log_format
        self.runtime = runtime
        self.user = user
        self.ids = itertools.count(1)
        self.worker = worker
        self.connections = Connections()
        self.admission = Admission()
        self.preparing = Preparing(lambda identifier: identifier.source in TRUSTED_SOURCES)
        #: Called after each close so listeners paused at ``max_connections`` resume.
        self.on_capacity: Callable[[], None] = lambda: None
        #: Client sockets now owned by a relay: the accept loop must not close them when the
        #: handler greenlet returns (see ``PassthruServer.do_close``).
        self.handed_over: set[gsocket.socket] = set()

    def __call__(self, client: gsocket.socket, address: tuple, server: AcceptingServer) -> None:
        runtime = self.runtime()
        record = ConnectionRecord(
            id=f"{self.worker}-{next(self.ids)}",
            client=format_address(address),
            listener=server.address_text,
        )
        connection = Connection(client, record, runtime, time.monotonic(), address[:2], server)
        metrics.connection_opened()
        server.open += 1
        self.connections.begin_identifying()
        try:
            self.serve(connection)
        except Exception as exc:  # the last line of defence: log, never crash the server
            record.ended = "error"
            record.error = f"{type(exc).__name__}: {exc}"
            log.exception("conn=%s unexpected error", record.id)
        finally:
            self.leave_identification(connection)
            if not connection.relayed:
                self.close(connection)

    def admit(self, connection: Connection) -> bool:
        """Apply the per-source limits (to the real client, after any PROXY header)."""
        limits = connection.runtime.config.limits
        refused = self.admission.admit(limits, connection.source, self.connections.identifying - 1)
        if refused is not None:
            connection.record.ended = refused
            metrics.limit_hit(refused)
            return False
        connection.admitted = True
        return True

    def leave_identification(self, connection: Connection) -> None:
        """Once per connection: identification is over (routed, refused, or failed)."""
        if connection.identifying:
            connection.identifying = False
            self.connections.end_identifying()
            if connection.admitted:
                self.admission.identified(connection.source)

    def serve(self, connection: Connection) -> None:
        """Identify, route, dial and forward the prefix; then hand the sockets to a relay."""
        client, record, runtime = connection.client, connection.record, connection.runtime
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = connection.started + runtime.config.timeouts.identify
        initial = b""
        listener = runtime.listeners.get(connection.server.listener_key)
        if listener is not None and listener.proxy_protocol == "accept":
            received = self.accept_proxy_header(connection, listener, deadline)
            if received is None:
                reject(client)
                return
            initial = received
        if not self.admit(connection):
            return  # closed at once by close(): nothing read, nothing sent
        if runtime.catch_all is not None:
            prefix = Prefix(initial, Decision(None, {}, None), "catch_all")
        else:
            prefix = self.read_prefix(client, runtime, deadline, initial)
            if prefix.stopped == "timeout":
                metrics.identify_timeout(len(prefix.data))
            elif prefix.data:
                metrics.identified(time.monotonic() - connection.started)
        self.leave_identification(connection)
        record.protocol = prefix.decision.protocol
        record.fields = prefix.decision.fields
        route = self.choose_route(runtime, prefix)
        if runtime.capture is not None:
            why = capture.reasons(prefix.stopped, prefix.unmatched, route is None)
            runtime.capture.offer(prefix.data, why, record.client, record.listener, record.id)
        if route is None:
            record.ended = "client_closed" if prefix.stopped == "eof" and not prefix.data else "rejected"
            reject(client)
            return
        record.route = route.name
        metrics.routed(route.name, record.protocol)
        connection.route, connection.prefix = route, prefix.data
        self.forward(connection)

    def forward(self, connection: Connection) -> bool:
        """Dial the route's next untried backend, send the PROXY header and the prefix, and hand
        the sockets to a relay; False when that failed (recorded; the caller closes). A backend
        that resets while the first bytes go out is treated like one that refused: the next
        untried backend of the route gets them."""
        while True:
            sent = self.dial_and_send(connection)
            if sent is not None:
                return sent

    def dial_and_send(self, connection: Connection) -> bool | None:
        """One attempt of ``forward``; None: the chosen backend failed early, try the next."""
        client, record, runtime, route = connection.client, connection.record, connection.runtime, connection.route
        assert route is not None
        balancer = runtime.balancer(route)
        try:
            upstream, endpoint = dial_any(
                balancer,
                connection.source,
                runtime.config.timeouts.connect,
                on_failure=lambda backend, exc: metrics.upstream_failed(
                    route.name, str(backend), metrics.failure_reason(exc)
                ),
                exclude=connection.tried,
                source=connection.client_address if route.transparent else None,
            )
        except UpstreamUnavailable as exc:
            record.ended = "upstream_unavailable"
            record.error = str(exc)
            log.warning("conn=%s route=%s no backend reachable: %s", record.id, route.name, exc)
            reject(client)
            return False
        connection.upstream, connection.balancer, connection.endpoint = upstream, balancer, endpoint
        connection.tried.add(endpoint)
        record.upstream = str(endpoint)
        first = b""
        if route.proxy_protocol is not None:  # first, even with no prefix: server-speaks-first backends need it
            destination = connection.destination or client.getsockname()[:2]
            first = proxyproto.header_for(route.proxy_protocol, connection.client_address, destination)
        try:
            upstream.sendall(first + connection.prefix)
        except OSError as exc:
            if len(route.to) > len(connection.tried):
                self.drop_backend(connection, f"reset the connection ({exc.strerror or exc})")
                return None
            record.ended = "upstream_reset"
            record.error = f"sending the first bytes: {exc}"
            return False
        connection.prefix_bytes = len(connection.prefix)
        connection.relayed = True
        self.handed_over.add(client)
        retry = partial(self.upstream_failed_early, connection) if len(route.to) > len(connection.tried) else None
        relay = Relay(client, upstream, runtime.config.timeouts.idle, partial(self.relay_done, connection), retry)
        self.connections.add_relay(relay)
        relay.start()
        return True

    def upstream_failed_early(self, connection: Connection, relay: Relay, reason: str) -> bool:
        """The backend accepted, then closed or reset before answering, and the client has sent
        nothing beyond the prefix: take the client to the next backend (the prefix is replayed;
        the client notices nothing but the delay). In the hub: no blocking here."""
        self.connections.remove_relay(relay)
        self.drop_backend(connection, reason)
        gevent.spawn(self.redial, connection)
        return True

    def drop_backend(self, connection: Connection, reason: str) -> None:
        """A backend failed before answering: log it, mark it down, count it, and let go of it."""
        assert connection.upstream is not None and connection.balancer is not None and connection.endpoint is not None
        route = connection.route.name if connection.route else "none"
        log.warning("conn=%s backend %s %s; trying the next one", connection.record.id, connection.endpoint, reason)
        connection.balancer.failed(connection.endpoint, reason)
        metrics.upstream_failed(route, str(connection.endpoint), "reset" if reason.startswith("reset") else "closed")
        connection.upstream.close()
        connection.balancer.release(connection.endpoint)
        connection.upstream = connection.balancer = connection.endpoint = None

    def redial(self, connection: Connection) -> None:
        """In its own greenlet: forward to the next backend, or close."""
        connection.relayed = False
        try:
            forwarded = self.forward(connection)
        except Exception as exc:  # never leave the client hanging
            connection.record.ended = "error"
            connection.record.error = f"{type(exc).__name__}: {exc}"
            log.exception("conn=%s unexpected error", connection.record.id)
            forwarded = False
        if not forwarded:
            self.handed_over.discard(connection.client)
            self.close(connection)

    def relay_done(self, connection: Connection, relay: Relay, result: RelayResult) -> None:
        """Called by the relay (in the hub) when it ends: account, close, log."""
        self.connections.remove_relay(relay)
        self.handed_over.discard(connection.client)
        record = connection.record
        record.bytes_up = connection.prefix_bytes + result.bytes_up
        record.bytes_down = result.bytes_down
        record.ended = result.ended
        self.close(connection)

    def close(self, connection: Connection) -> None:
        """Close both sockets and write the connection's log line."""
        if connection.upstream is not None:
            connection.upstream.close()
        if connection.balancer is not None and connection.endpoint is not None:
            connection.balancer.release(connection.endpoint)  # least_conn counts open connections
        connection.client.close()
        if connection.admitted:
            self.admission.closed(connection.source)
        connection.server.open -= 1
        self.on_capacity()
        record = connection.record
        record.duration = time.monotonic() - connection.started
        emit(record, self.log_format or connection.runtime.config.log_format)
        metrics.connection_closed(record)

    def read_prefix(self, client: gsocket.socket, runtime: Runtime, deadline: float, initial: bytes = b"") -> Prefix:
        """Read until the identifiers decide, the byte limit, the identify timeout, or EOF.
        ``initial`` holds client bytes already read (those that came after a PROXY header)."""
        user = self.user()
        prepared = self.preparing(runtime.identifiers(user))
        identification = Identification((), guard=connection_guard(user), prepared=prepared)
        limit = runtime.config.limits.identify_bytes
        data = initial  # all of it is forwarded, even beyond the limit (it was read already)
        if data and len(data) < limit:
            decision = identification.feed(data)
            if decision.final:
                return Prefix(data, decision, "identified" if decision.protocol else "no_match")
        while True:
            if len(data) >= limit:
                return Prefix(data, identification.feed(data, final=True), "limit")
            chunk = read_until(client, deadline, limit - len(data))
            if not chunk:
                stopped = "timeout" if chunk is None else "eof"
                return Prefix(data, identification.feed(data, final=True), stopped)
            data += chunk
            if len(data) >= limit:
                continue
            decision = identification.feed(data)
            if decision.final:
                return Prefix(data, decision, "identified" if decision.protocol else "no_match")

    def accept_proxy_header(self, connection: Connection, listener: Listener, deadline: float) -> bytes | None:
        """On a ``proxy_protocol: accept`` listener: take the PROXY header from a trusted peer and
        make its addresses the connection's. Returns the client bytes that followed the header,
        or None when the connection must be refused (untrusted peer, no valid header in time)."""
        record = connection.record
        peer = connection.client_address
        header: proxyproto.ProxyHeader | None = None
        data = b""
        if not proxyproto.is_trusted(peer[0], listener.trusted_proxies):
            error = f"PROXY protocol listener: peer {peer[0]} is not in trusted_proxies"
        else:
            error = None
            while header is None and error is None:
                verdict = proxyproto.parse_header(data)
                if isinstance(verdict, proxyproto.ProxyHeader):
                    header = verdict
                    break
                if verdict is None:
                    error = "PROXY protocol listener: the trusted peer sent no valid PROXY header"
                    break
                chunk = read_until(connection.client, deadline, proxyproto.MAX_HEADER_LENGTH - len(data))
                if not chunk:
                    reason = "timed out" if chunk is None else "closed"
                    error = f"PROXY protocol listener: the trusted peer {reason} before a complete header"
                else:
                    data += chunk
        if error is not None or header is None:
            record.ended = "proxy_protocol_error"
            record.error = error
            log.warning("conn=%s %s", record.id, error)
            return None
        connection.client_address, connection.destination = proxyproto.effective_addresses(
            header, connection.client_address, connection.client.getsockname()[:2]
        )
        record.client = format_address(connection.client_address)
        return data[header.length :]

    @staticmethod
    def choose_route(runtime: Runtime, prefix: Prefix) -> Route | None:
        """``on_timeout`` for a client that sent nothing in time; else the rules, else ``default``."""
        config = runtime.config
        if prefix.stopped == "catch_all":
            return runtime.catch_all
        if not prefix.data:
            return config.on_timeout if prefix.stopped == "timeout" else None
        decision = prefix.decision
        route = runtime.router.route(decision.protocol, decision.fields)
        if route is None:
            prefix.unmatched = True
            metrics.unmatched(decision.protocol)
            return config.default
        return route


#: One read buffer for all prefix reads of this process: a read and the copy out of it happen
#: without a greenlet switch in between, and a fresh 16 KiB bytes object per read (shrunk to
#: the bytes received) fragments the heap of a process holding thousands of connections.
_READ_BUFFER = bytearray(64 * 1024)


def read_until(client: gsocket.socket, deadline: float, size: int) -> bytes | None:
    """Up to ``size`` bytes, read before ``deadline``: b"" at end-of-file (or a reset), None
    on timeout. Reads go through the shared buffer."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    client.settimeout(remaining)
    view = memoryview(_READ_BUFFER)[: min(size, len(_READ_BUFFER))]
    try:
        n = client.recv_into(view)
    except TimeoutError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT):
            return b""
        raise
    return bytes(view[:n])


def reject(client: gsocket.socket) -> None:
    """Close in order (FIN), sending nothing. Drain briefly so unread bytes do not cause a RST."""
    try:
        shutdown_write(client)
        client.settimeout(REJECT_DRAIN_SECONDS)
        drained = 0
        deadline = time.monotonic() + REJECT_DRAIN_SECONDS
        while drained < REJECT_DRAIN_BYTES and time.monotonic() < deadline:
            chunk = client.recv(16384)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass
