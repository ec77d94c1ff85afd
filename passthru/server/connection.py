"""One connection, from accept to close: read the prefix, identify, route, dial, relay.

A :class:`Connection` owns its two sockets from accept to close, and :meth:`Connection.close`
is the one place that closes them, once. It runs on the hub's watcher callbacks, not in a
greenlet: a client whose first read decides is read, identified, routed and dialed within the
accept callback, the connect completes on a write watcher, and the relay takes over; nothing
blocks, so nothing needs a stack of its own. Every read is one callback, so a client whose bytes
keep arriving can never keep the worker from its other connections, and the CPU it may spend
identifying is bounded (``limits.identify_cpu``).

Its lifecycle (:class:`~passthru.server.lifecycle.State`) only moves forward, but for an early
backend failure (back to dialing the next backend); it ends with one
:class:`~passthru.server.lifecycle.End`. Counting lives in
:class:`~passthru.server.counting.Counting`; the log line, metrics and capture observe the
lifecycle through :class:`~passthru.server.lifecycle.Observers`.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from passthru import capture, proxyproto
from passthru.config import Endpoint, Listener, Route
from passthru.connlog import ConnectionRecord
from passthru.identify.engine import Decision, Identification, Preparing
from passthru.metrics import failure_reason
from passthru.plugins import UserIdentifiers
from passthru.routing import NO_GROUPS, Groups
from passthru.server.counting import Counting
from passthru.server.lifecycle import End, Observers, State
from passthru.server.listener import format_address
from passthru.server.pgwire import ClientStartTLS, backend_answer_error, backend_opening, starts_exchange
from passthru.server.relay import Relay, RelayResult, shutdown_write
from passthru.server.relay import reset as reset_close
from passthru.server.runtime import Runtime, connection_guard
from passthru.server.targets import TARGETS, Target
from passthru.server.upstream import (
    LOCAL_ERRNOS,
    Balancer,
    SourceAddressError,
    connect_error_text,
    connect_result,
    down_reason,
    start_connect,
)
from passthru.server.watchers import READ, WRITE, dispose, io, timer

log = logging.getLogger("passthru.server")

#: How long a rejected client may keep sending before we stop draining and close.
REJECT_DRAIN_SECONDS = 1.0
REJECT_DRAIN_BYTES = 64 * 1024
#: Errors of a read that mean the client is gone (not a bug of ours).
GONE = (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH)

#: One read buffer for all prefix reads of this process: a read and the copy out of it happen
#: in one callback, and a fresh 64 KiB object per read would fragment the heap.
_READ_BUFFER = bytearray(64 * 1024)
_READ_VIEW = memoryview(_READ_BUFFER)


@dataclass
class ConnectionContext:
    """What every connection of one process shares: where the current rules come from, the
    counting, the observers, and the identifier set prepared for the current rules."""

    runtime: Callable[[], Runtime]
    user: Callable[[], UserIdentifiers | None]
    counting: Counting
    observers: Observers
    worker: int = 0
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    preparing: Preparing = field(default_factory=Preparing)

    def accept(self, client: socket.socket, address: tuple, listener_key: tuple, listener_text: str) -> None:
        """A new client socket (non-blocking): its connection starts at once."""
        Connection(self, client, address, listener_key, listener_text).start()


@dataclass(slots=True)
class Prefix:
    """The bytes read before routing and why reading stopped."""

    data: bytes
    decision: Decision
    stopped: str  # "identified", "no_match", "limit", "timeout", "eof", "cpu_budget", "catch_all"


class Connection:
    """One accepted connection's sockets, state and record."""

    # Slots: thousands of these live as long as their connections (memory per idle connection).
    __slots__ = (
        "_drained",
        "_on_readable",
        "_postgres",
        "_postgres_stream",
        "_read_watcher",
        "_timer",
        "_upstream_watcher",
        "admitted",
        "attempts",
        "balancer",
        "client",
        "client_address",
        "context",
        "data",
        "destination",
        "end",
        "endpoint",
        "identification",
        "identifying",
        "listener_key",
        "record",
        "relay",
        "reset_client",
        "reset_upstream",
        "route",
        "runtime",
        "spent",
        "started",
        "starttls",
        "state",
        "tried",
        "unmatched",
        "upstream",
    )

    def __init__(
        self, context: ConnectionContext, client: socket.socket, address: tuple, listener_key: tuple, listener_text: str
    ) -> None:
        self.context = context
        self.runtime = context.runtime()
        self.client = client
        self.listener_key = listener_key
        self.record = ConnectionRecord(
            id=f"{context.worker}-{next(context.ids)}", client=format_address(address), listener=listener_text
        )
        self.started = time.monotonic()
        self.state = State.ACCEPTED
        self.end: End | None = None
        #: (host, port): the peer, or the client a trusted PROXY header names.
        self.client_address: tuple = address[:2]
        #: (host, port) the client dialed, from a trusted PROXY header (else asked of the socket
        #: the first time a route sends a PROXY header: one system call less per connection).
        self.destination: tuple | None = None
        self.admitted = False  # counted by the per-source limits
        self.unmatched = False  # it sent bytes no route rule matched: ``default`` took it
        self.identifying = False
        self.data = b""  # the prefix: every byte read before routing, sent first upstream
        self.identification: Identification | None = None
        self.spent = 0.0  # CPU spent reading and identifying
        self.route: Route | None = None
        self.balancer: Balancer | None = None
        self.endpoint: Endpoint | None = None
        self.tried: tuple[Endpoint, ...] = ()  # a route has a few backends: no hashing
        self.attempts: list[tuple[Endpoint, str]] = []
        self.upstream: socket.socket | None = None
        self.relay: Relay | None = None
        self.reset_client = self.reset_upstream = False
        self._read_watcher = None
        self._upstream_watcher = None  # the upstream's, while connecting
        self._timer = None
        self._on_readable: Callable[[], None] | None = None
        self._drained = 0
        #: PostgreSQL by SNI (pgwire.py): the exchange with the client, the bytes it sent so far,
        #: and whether the backend must accept an SSLRequest before the rest of the prefix.
        self._postgres: ClientStartTLS | None = None
        self._postgres_stream = b""
        self.starttls = False

    @property
    def source(self) -> str:
        """The client's address, as limits, balancing and logs use it."""
        return self.client_address[0]

    # -- start --------------------------------------------------------------------------
    def start(self) -> None:
        self.context.counting.accepted(self)
        self.context.observers.opened(self)
        self.identifying = True
        self._guarded(self._begin)

    def _begin(self) -> None:
        listener = self.runtime.listeners.get(self.listener_key)
        self.state = State.IDENTIFYING
        if listener is not None and listener.proxy_protocol == "accept":
            self._read_proxy_header(listener)
        else:
            self._admitted_then(self._identify_first)

    def _admitted_then(self, then: Callable[[], None]) -> None:
        """Apply the per-source limits (to the real client, after any PROXY header)."""
        refused = self.context.counting.admit(self.runtime.config.limits, self)
        if refused is not None:
            self.context.observers.refused(self, End(refused))
            self.close(End(refused))  # at once: nothing read, nothing sent
            return
        then()

    # -- reading ------------------------------------------------------------------------
    def _read(self, size: int) -> bytes | None:
        """Up to ``size`` bytes now: b"" at end of file (or a reset), None if none are there yet."""
        try:
            n = self.client.recv_into(_READ_VIEW[: min(size, len(_READ_BUFFER))])
        except BlockingIOError:
            return None
        except OSError as exc:
            if exc.errno in GONE:
                return b""
            raise
        return bytes(_READ_VIEW[:n])

    def _wait_readable(self, then: Callable[[], None], deadline: float | None) -> None:
        """Call ``then`` when the client has bytes (each wait lets the worker's other
        connections run), or ``_deadline_passed`` at ``deadline``."""
        self._on_readable = then
        watcher = self._read_watcher
        if watcher is None:
            watcher = self._read_watcher = io(self.client.fileno(), READ)
        if not watcher.active:
            watcher.start(self._guarded, self._readable)
        if deadline is not None and self._timer is None:
            self._timer = timer(max(0.0, deadline - time.monotonic()))
            self._timer.start(self._guarded, self._deadline_passed)

    def _readable(self) -> None:
        assert self._on_readable is not None
        self._on_readable()

    def _deadline_passed(self) -> None:
        self._stop_timer()
        if self.state is State.CLOSING:  # done draining a refused client
            self.close(self.end or End.REJECTED)
        elif self._postgres is not None:  # reading a ClientHello after answering an SSLRequest
            self._postgres_done("timeout")
        elif self.identification is None:  # still reading a PROXY header
            self._proxy_header_failed("timed out")
        else:
            self._prefix_read("timeout")

    def _stop_reading(self) -> None:
        dispose(self._read_watcher)
        self._read_watcher = None
        self._stop_timer()

    def _pause_reading(self) -> None:
        """Stop watching the client, but keep its watcher: the relay reads the client with it."""
        if self._read_watcher is not None:
            self._read_watcher.stop()
        self._stop_timer()

    def _stop_timer(self) -> None:
        dispose(self._timer)
        self._timer = None

    @property
    def _identify_deadline(self) -> float:
        return self.started + self.runtime.config.timeouts.identify

    # -- PROXY header (listeners with proxy_protocol: accept) ----------------------------
    def _read_proxy_header(self, listener: Listener) -> None:
        if not proxyproto.is_trusted(self.client_address[0], listener.trusted_proxies):
            self._proxy_header_failed(None, f"peer {self.client_address[0]} is not in trusted_proxies")
            return
        self._proxy_step()

    def _proxy_step(self) -> None:
        while True:
            verdict = proxyproto.parse_header(self.data)
            if isinstance(verdict, proxyproto.ProxyHeader):
                self._proxy_header_read(verdict)
                return
            if verdict is None:
                self._proxy_header_failed(None, "the trusted peer sent no valid PROXY header")
                return
            chunk = self._read(proxyproto.MAX_HEADER_LENGTH - len(self.data))
            if chunk is None:
                self._wait_readable(self._proxy_step, self._identify_deadline)
                return
            if not chunk:
                self._proxy_header_failed("closed")
                return
            self.data += chunk

    def _proxy_header_failed(self, how: str | None, error: str | None = None) -> None:
        if error is None:
            error = f"the trusted peer {how} before a complete header"
        self.record.error = f"PROXY protocol listener: {error}"
        log.warning("conn=%s %s", self.record.id, self.record.error)
        self._reject(End.PROXY_PROTOCOL_ERROR)

    def _proxy_header_read(self, header: proxyproto.ProxyHeader) -> None:
        self.client_address, self.destination = proxyproto.effective_addresses(
            header, self.client_address, self.client.getsockname()[:2]
        )
        self.record.client = format_address(self.client_address)
        self.data = self.data[header.length :]  # client bytes that came after the header
        self._stop_reading()
        self._admitted_then(self._identify_first)

    # -- identifying --------------------------------------------------------------------
    def _identify_first(self) -> None:
        runtime = self.runtime
        if runtime.catch_all is not None:  # nothing to identify: dial at once
            self._prefix_done(Prefix(self.data, Decision(None, {}, None), "catch_all"))
            return
        user = self.context.user()
        prepared = self.context.preparing(runtime.identifiers(user))
        self.identification = Identification((), guard=connection_guard(user), prepared=prepared)
        limit = runtime.config.limits.identify_bytes
        if self.data and len(self.data) < limit and self._fed():  # bytes that came after a PROXY header
            return
        self._identify_step()

    def _identify_step(self) -> None:
        """Read what is there, feed the identifiers, and decide or wait for more."""
        limit = self.runtime.config.limits.identify_bytes
        while True:
            started = self._clock()
            chunk = self._next_bytes(len(self.data), self._identify_step, self._prefix_read)
            if chunk is None:
                return
            self.data += chunk
            if len(self.data) >= limit:
                continue
            if self._fed(started):
                return
            # Undecided: wait for the next read (a callback of its own), even if bytes are
            # already there, so that this client takes turns with the worker's others.
            self._wait_readable(self._identify_step, self._identify_deadline)
            return

    def _next_bytes(self, have: int, step: Callable[[], None], stopped: Callable[[str], None]) -> bytes | None:
        """The client's next bytes before routing, ``have`` of them read so far; None when there
        are none to take now: at the byte limit or the end of the stream (``stopped`` was told
        which), or none arrived yet (``step`` runs again when some do, or the deadline comes)."""
        limit = self.runtime.config.limits.identify_bytes
        if have >= limit:
            stopped("limit")
            return None
        chunk = self._read(limit - have)
        if chunk is None:
            self._wait_readable(step, self._identify_deadline)
            return None
        if not chunk:
            stopped("eof")
            return None
        return chunk

    def _clock(self) -> float | None:
        """This thread's CPU time, from the second read on (the first read and its feed, one
        parse of what one read brings, are not charged: most connections make no other, and the
        clock is a system call)."""
        return time.thread_time() if self.identification is not None and self.identification.answers else None

    def _fed(self, started: float | None = None) -> bool:
        """Feed the prefix to the identifiers; True when that ended the reading. The CPU time
        since ``started`` (the read, then this) is charged to ``limits.identify_cpu``: CPU, not
        wall time, so a worker that the machine leaves waiting does not close honest clients."""
        assert self.identification is not None
        decision = self.identification.feed(self.data)
        if started is not None:
            self.spent += time.thread_time() - started
        if decision.final:
            self._prefix_done(Prefix(self.data, decision, "identified" if decision.protocol else "no_match"))
            return True
        if self.spent >= self.runtime.config.limits.identify_cpu:
            self._prefix_done(Prefix(self.data, Decision(None, {}, None), "cpu_budget"))
            return True
        return False

    def _prefix_read(self, stopped: str) -> None:
        """Reading stopped without a verdict (byte limit, identify timeout, end of file)."""
        assert self.identification is not None
        self._prefix_done(Prefix(self.data, self.identification.feed(self.data, final=True), stopped))

    def _prefix_done(self, prefix: Prefix) -> None:
        self._pause_reading()
        self.identification = None  # its parsers' state is not needed any more (memory per connection)
        if self._postgres is None and self.runtime.router.postgres_tls and self._postgres_begin(prefix):
            return  # PostgreSQL by SNI: answered its SSLRequest; the ClientHello comes next
        self._identified()
        record, observers = self.record, self.context.observers
        record.protocol, record.fields = prefix.decision.protocol, prefix.decision.fields
        if prefix.stopped == "cpu_budget":
            log.warning("conn=%s identification CPU budget spent after %d bytes: closed", record.id, len(prefix.data))
            observers.refused(self, End.IDENTIFY_BUDGET)
            self._reject(End.IDENTIFY_BUDGET)
            return
        if prefix.stopped == "timeout":
            observers.identify_timeout(self)
        elif prefix.data and prefix.stopped != "catch_all":
            observers.identified(self, time.monotonic() - self.started)
        route, groups = self._choose_route(prefix)
        observers.decided(self, route, capture.reasons(prefix.stopped, self.unmatched, route is None))
        if route is None:
            self._reject(End.CLIENT_CLOSED if prefix.stopped == "eof" and not prefix.data else End.REJECTED)
            return
        record.route = route.name
        if route.template is not None:  # to: "{x}.svc:443": rendered, checked, resolved (targets.py)
            target = TARGETS.resolve_then(
                route, groups, prefix.decision.fields, self.runtime.config.timeouts, self._target_later
            )
            if target is not None:
                self._target_ready(target)
            return
        self._dial_route(route)

    def _dial_route(self, route: Route) -> None:
        self.route, self.balancer = route, self.runtime.balancer(route)
        self._dial_next()

    def _target_later(self, target: Target) -> None:
        """From the greenlet that resolved a templated upstream: back to this connection."""
        if self.state is not State.CLOSED:
            self._guarded(lambda: self._target_ready(target))

    def _target_ready(self, target: Target) -> None:
        if target.route is not None:
            self._dial_route(target.route)
            return
        self.record.error = target.error
        log.warning("conn=%s route=%s %s; not dialed", self.record.id, self.record.route, target.error)
        self._reject(End(target.ended))

    # -- PostgreSQL by SNI (the byte logic is pgwire.py) ----------------------------------
    def _postgres_begin(self, prefix: Prefix) -> bool:
        """A postgres SSLRequest (or GSSENCRequest): answer it, then read the ClientHello."""
        decision = prefix.decision
        if decision.protocol != "postgres" or not starts_exchange(decision.fields):
            return False
        self._postgres, self._postgres_stream = ClientStartTLS(), prefix.data
        self._postgres_answer(self._postgres.receive(prefix.data))
        self._postgres_step()
        return True

    def _postgres_answer(self, answer: bytes) -> None:
        if answer:  # one or two bytes on a fresh connection: never a short write
            with contextlib.suppress(OSError):  # the client is gone: the next read says so
                self.client.send(answer)

    def _postgres_step(self) -> None:
        exchange = self._postgres
        assert exchange is not None
        while not exchange.done:
            chunk = self._next_bytes(len(self._postgres_stream), self._postgres_step, self._postgres_done)
            if chunk is None:
                return
            self._postgres_stream += chunk
            self._postgres_answer(exchange.receive(self._postgres_stream))
        self._postgres_done("identified")

    def _postgres_done(self, stopped: str) -> None:
        exchange = self._postgres
        assert exchange is not None
        self.data, self.starttls = exchange.data, exchange.starttls
        self._prefix_done(Prefix(exchange.data, Decision(exchange.protocol, exchange.fields, None), stopped))

    def _identified(self) -> None:
        if self.identifying:
            self.identifying = False
            self.context.counting.identified(self)

    def _choose_route(self, prefix: Prefix) -> tuple[Route | None, Groups]:
        """``on_timeout`` for a client that sent nothing in time; else the rules (with the groups
        their regexes captured), else ``default``."""
        config = self.runtime.config
        if prefix.stopped == "catch_all":
            return self.runtime.catch_all, NO_GROUPS
        if not prefix.data:
            return (config.on_timeout if prefix.stopped == "timeout" else None), NO_GROUPS
        decision = prefix.decision
        listener = self.runtime.listeners.get(self.listener_key)
        found = self.runtime.router.match(
            decision.protocol, decision.fields, self.source, listener.name if listener else None
        )
        if found is None:
            self.unmatched = True
            self.context.observers.unmatched(self)
            return config.default, NO_GROUPS
        return found.route, found.groups

    # -- dialing ------------------------------------------------------------------------
    def _dial_next(self) -> None:
        """Connect to the route's next untried backend, in balance order; when none is left,
        close the client (every attempt is in the error)."""
        if self.state is not State.DIALING:
            self.state = State.DIALING
        assert self.route is not None and self.balancer is not None
        transparent = self.client_address if self.route.transparent else None
        for endpoint in self.balancer.order(self.source):
            if endpoint in self.tried:
                continue
            self.tried += (endpoint,)
            try:
                sock = start_connect(endpoint, transparent)
            except OSError as exc:
                self._connect_failed(endpoint, exc)
                continue
            self.upstream, self.endpoint = sock, endpoint
            if self._sent_at_once():
                return
            self._upstream_watcher = io(sock.fileno(), WRITE)
            self._upstream_watcher.start(self._guarded, self._connect_done)
            self._timer = timer(self.runtime.config.timeouts.connect)
            self._timer.start(self._guarded, self._connect_timed_out)
            return
        self.record.error = "; ".join(f"{endpoint}: {reason}" for endpoint, reason in self.attempts)
        log.warning("conn=%s route=%s no backend reachable: %s", self.record.id, self.route.name, self.record.error)
        self._reject(End.UPSTREAM_UNAVAILABLE)

    def _stop_connecting(self) -> None:
        dispose(self._upstream_watcher)
        self._upstream_watcher = None
        self._stop_timer()

    def _sent_at_once(self) -> bool:
        """Send the preamble right after ``connect()``: a backend on this host has usually
        completed the handshake by the time the call returns (the kernel runs it within the
        call), and a write that succeeds proves the connect did. That saves the wait for
        writability, its watcher, the connect timer and the ``SO_ERROR`` query. False when the
        connect is still under way (a remote backend): the write watcher then waits for it.
        True also when the write showed that the connect failed: the next backend is tried."""
        if self.starttls:
            return False
        preamble = self._first_bytes() + self.data
        if not preamble:  # nothing to send would prove the connect: wait for writability
            return False
        assert self.upstream is not None
        try:
            sent = self.upstream.send(preamble)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            if exc.errno == errno.ENOTCONN:
                return False
            self._connect_failed(self._give_up_upstream(), exc)
            self._dial_next()
            return True
        self._connected()
        self._relay(None, preamble[sent:])
        return True

    def _connected(self) -> None:
        assert self.balancer is not None and self.endpoint is not None
        self.balancer.connected(self.endpoint)
        self.record.upstream = str(self.endpoint)

    def _connect_done(self) -> None:
        watcher, self._upstream_watcher = self._upstream_watcher, None
        watcher.stop()  # kept: the relay reuses it to read from the upstream
        self._stop_connecting()
        assert self.upstream is not None and self.endpoint is not None
        error = connect_result(self.upstream)
        if error is not None:
            watcher.close()
            self._connect_failed(self._give_up_upstream(), error)
            self._dial_next()
            return
        self._connected()
        if self.starttls:  # PostgreSQL by SNI: the backend must say S to our SSLRequest first
            self._backend_starttls(watcher)
            return
        self._relay(watcher)

    def _backend_starttls(self, upstream_watcher: object) -> None:
        """Send the PROXY header (if any) and the SSLRequest; the backend's one-byte answer
        decides: S goes on to relay the ClientHello, anything else is an early failure."""
        assert self.upstream is not None
        opening, rest = backend_opening(self._first_bytes(), self.data)
        try:
            self.upstream.send(opening)  # at most a PROXY header and 8 bytes on a fresh socket
        except OSError as exc:
            self._backend_refused(f"reset the connection ({exc.strerror or exc})")
            return
        self._upstream_watcher = io(self.upstream.fileno(), READ)
        self._upstream_watcher.start(self._guarded, lambda: self._backend_answered(upstream_watcher, rest))
        self._timer = timer(self.runtime.config.timeouts.connect)
        self._timer.start(self._guarded, lambda: self._backend_refused("did not answer the SSLRequest in time"))

    def _backend_answered(self, upstream_watcher: object, rest: bytes) -> None:
        assert self.upstream is not None
        try:
            answer = self.upstream.recv(1)
        except BlockingIOError:
            return
        except OSError as exc:
            answer, error = b"", f"reset the connection while asked for TLS ({exc.strerror or exc})"
        else:
            error = backend_answer_error(answer)
        self._stop_connecting()
        if error is not None:
            self._backend_refused(error)
            return
        self._relay(upstream_watcher, rest)

    def _backend_refused(self, reason: str) -> None:
        self._stop_connecting()
        assert self.route is not None
        if len(self.route.to) > len(self.tried):
            self._drop_backend(reason)
            self._dial_next()
            return
        self.record.error = reason
        log.warning("conn=%s backend %s %s", self.record.id, self.endpoint, reason)
        self._reject(End.UPSTREAM_REFUSED_TLS)

    def _connect_timed_out(self) -> None:
        self._stop_connecting()
        self._connect_failed(self._give_up_upstream(), TimeoutError("connect timed out"))
        self._dial_next()

    def _give_up_upstream(self) -> Endpoint:
        """Close an upstream socket whose connect failed (it was never counted as connected);
        returns the backend it was meant for."""
        assert self.upstream is not None and self.endpoint is not None
        endpoint = self.endpoint
        self.upstream.close()
        self.upstream = self.endpoint = None
        return endpoint

    def _connect_failed(self, endpoint: Endpoint, exc: OSError) -> None:
        assert self.balancer is not None and self.route is not None
        text = connect_error_text(exc)
        if self.route.transparent and isinstance(exc, TimeoutError):
            text += f" (transparent: are the backend's replies to {self.source} routed back to this host?)"
        self.attempts.append((endpoint, text))
        if exc.errno not in LOCAL_ERRNOS and not isinstance(exc, SourceAddressError):
            self.balancer.failed(endpoint, down_reason(exc))
        self.context.observers.upstream_failed(self, str(endpoint), failure_reason(exc))

    # -- relaying -----------------------------------------------------------------------
    def _first_bytes(self) -> bytes:
        """The PROXY header the route sends, or b"" (even with no prefix: server-speaks-first
        backends need it)."""
        assert self.route is not None
        if self.route.proxy_protocol is None:
            return b""
        if self.destination is None:  # asked once, though the header is built per dial
            self.destination = self.client.getsockname()[:2]
        return proxyproto.header_for(self.route.proxy_protocol, self.client_address, self.destination)

    def _relay(self, upstream_watcher: object, preamble: bytes | None = None) -> None:
        """``preamble``: what the upstream gets first (default: the PROXY header and the prefix)."""
        assert self.route is not None and self.upstream is not None
        if preamble is None:
            preamble = self._first_bytes() + self.data
        retry = self._early_failure if len(self.route.to) > len(self.tried) else None
        self.state = State.RELAYING
        client_watcher, self._read_watcher = self._read_watcher, None  # the relay's now
        self.relay = Relay(
            self.client,
            self.upstream,
            self.runtime.config.timeouts.idle,
            self._relay_done,
            retry,
            preamble,
            upstream_watcher,
            client_watcher,
        )
        self.context.counting.relaying(self.relay)
        self.relay.start()

    def _early_failure(self, relay: Relay, reason: str) -> bool:
        """The backend accepted, then closed or reset before answering, and the client has sent
        nothing beyond the prefix: take the client to the next backend (the prefix is replayed;
        the client notices nothing but the delay)."""
        self.context.counting.relay_over(relay)
        self.relay = None
        self._drop_backend(reason)
        self._guarded(self._dial_next)
        return True

    def _drop_backend(self, reason: str) -> None:
        """A backend failed before answering: log it, mark it down, count it, and let go of it."""
        assert self.upstream is not None and self.balancer is not None and self.endpoint is not None
        log.warning("conn=%s backend %s %s; trying the next one", self.record.id, self.endpoint, reason)
        self.balancer.failed(self.endpoint, reason)
        self.context.observers.upstream_failed(
            self, str(self.endpoint), "reset" if reason.startswith("reset") else "closed"
        )
        self.upstream.close()
        self.balancer.release(self.endpoint)
        self.upstream = self.endpoint = None

    def _relay_done(self, relay: Relay, result: RelayResult) -> None:
        """Called by the relay (in the hub) when it ends (``close`` stops counting it)."""
        self.record.bytes_up = len(self.data) + result.bytes_up
        self.record.bytes_down = result.bytes_down
        self.reset_client = result.reset == "client"
        self.reset_upstream = result.reset == "upstream"
        if result.error is not None:
            self.record.error = result.error
        self.close(result.ended)

    # -- ending -------------------------------------------------------------------------
    def _reject(self, end: End) -> None:
        """Close in order (FIN), sending nothing; drain briefly first, so bytes the client is
        still sending do not turn our close into a reset."""
        self._stop_reading()
        self._identified()
        self.end, self.state = end, State.CLOSING
        try:
            shutdown_write(self.client)
        except OSError:
            self.close(end)
            return
        self._wait_readable(self._drain, time.monotonic() + REJECT_DRAIN_SECONDS)
        self._drain()

    def _drain(self) -> None:
        while self._drained < REJECT_DRAIN_BYTES:
            chunk = self._read(16384)
            if chunk is None:
                return  # wait: the watcher or the deadline calls again
            if not chunk:
                break
            self._drained += len(chunk)
        self.close(self.end or End.REJECTED)

    def shut_down(self, end: End) -> None:
        """Shutdown: end this connection now, whatever it is doing."""
        if self.relay is not None:
            self.relay.finish(end)
        else:
            self.close(end)

    def close(self, end: End) -> None:
        """The one place both sockets are closed, once; then the observers hear of the end."""
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.end = end
        self._stop_reading()
        self._stop_connecting()
        self._identified()
        if self.relay is not None:
            if self.relay.ended is None:
                self.relay.stop(end)
            self.context.counting.relay_over(self.relay)
            self.relay = None
        if self.upstream is not None:
            _close(self.upstream, self.reset_upstream)
            if self.balancer is not None and self.endpoint is not None:
                self.balancer.release(self.endpoint)  # least_conn counts open connections
        _close(self.client, self.reset_client)
        self.context.counting.closed(self)
        self.record.ended = end  # an End is its own text (StrEnum)
        self.record.duration = time.monotonic() - self.started
        self.context.observers.closed(self)

    def _guarded(self, step: Callable[[], None]) -> None:
        """Run one step of the connection in a callback: whatever it raises is this connection's
        end (logged), never the worker's."""
        try:
            step()
        except Exception as exc:  # the last line of defence: log, never crash the server
            self.record.error = f"{type(exc).__name__}: {exc}"
            log.exception("conn=%s unexpected error", self.record.id)
            self.close(End.ERROR)


def _close(sock: socket.socket, reset: bool) -> None:
    if reset:  # RST rather than FIN: the peer sees the transfer was cut short
        reset_close(sock)
    else:
        sock.close()
