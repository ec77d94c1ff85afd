"""The connection lifecycle without a subprocess (issue 11), the way h11 tests its Connection:
drive one :class:`Connection` through each path in this process, on loopback sockets served by
gevent, and assert the states it went through, that each of its two sockets was closed exactly
once, and its end reason."""

from __future__ import annotations

import socket
import struct

import gevent
import pytest
from gevent import socket as gsocket

from passthru.config import load_config_text
from passthru.server import connection as connection_module
from passthru.server.connection import Connection, ConnectionContext
from passthru.server.counting import Counting
from passthru.server.lifecycle import End, NullObserver, Observers, State
from passthru.server.runtime import Runtime

REQUEST = b"GET / HTTP/1.1\r\nHost: web.test\r\n\r\n"
HAPPY = [State.ACCEPTED, State.IDENTIFYING, State.DIALING, State.RELAYING, State.CLOSED]
REFUSED = [State.ACCEPTED, State.IDENTIFYING, State.CLOSING, State.CLOSED]


class CountingSocket(socket.socket):
    """A socket that counts how often it is closed (only the first close releases the fd)."""

    closes = 0

    def close(self) -> None:
        self.closes += 1
        super().close()


def adopt(sock: socket.socket) -> CountingSocket:
    adopted = CountingSocket(sock.family, sock.type, fileno=sock.detach())
    adopted.setblocking(False)
    return adopted


class Recorder(NullObserver):
    def __init__(self) -> None:
        self.closed_connections: list[Connection] = []

    def closed(self, connection: Connection) -> None:
        self.closed_connections.append(connection)


class Traced(Connection):
    """Records every state it enters."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "state":
            self.__dict__.setdefault("trace", []).append(value)
        super().__setattr__(name, value)


class Harness:
    """One config, a listening socket for clients, and the connections it started."""

    def __init__(self, config_text: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.config = load_config_text(config_text, "config.yaml")
        self.runtime = Runtime.build(self.config)
        self.recorder = Recorder()
        self.counting = Counting()
        self.worker = ConnectionContext(lambda: self.runtime, lambda: None, self.counting, Observers([self.recorder]))
        self.listener = gsocket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.upstreams: list[CountingSocket] = []
        real_start = connection_module.start_connect

        def counted_start(*args, **kwargs):
            sock = adopt(real_start(*args, **kwargs))
            self.upstreams.append(sock)
            return sock

        monkeypatch.setattr(connection_module, "start_connect", counted_start)

    def connect(self) -> tuple[gsocket.socket, Traced]:
        """A client, and the connection Passthru starts for it."""
        client = gsocket.create_connection(self.listener.getsockname())
        accepted, address = self.listener.accept()
        connection = Traced(self.worker, adopt(accepted), address, ("test",), "127.0.0.1:test")
        connection.start()
        return client, connection

    def wait_closed(self, connection: Connection, timeout: float = 5.0) -> None:
        with gevent.Timeout(timeout, AssertionError(f"connection still {connection.state}")):
            while connection.state is not State.CLOSED:
                gevent.sleep(0.01)


def assert_closed_once(connection: Traced, harness: Harness, upstreams: int) -> None:
    assert connection.client.closes == 1
    assert len(harness.upstreams) == upstreams
    assert [sock.closes for sock in harness.upstreams] == [1] * upstreams
    assert harness.recorder.closed_connections.count(connection) == 1
    assert len(harness.counting) == 0 and harness.counting.identifying == 0 and not harness.counting.relays


def config(backends: list[int], extra: str = "") -> str:
    to = ", ".join(f"127.0.0.1:{port}" for port in backends)
    return f"""
listen: [127.0.0.1:1]
timeouts: {{identify: 300ms, connect: 1s, idle: 300ms}}
routes:
  - name: web
    match: {{protocol: http, host: web.test}}
    to: [{to}]
default: reject
{extra}"""


def backend(handle) -> tuple[int, gevent.Greenlet]:  # type: ignore[no-untyped-def]
    """A one-connection backend on loopback, run by ``handle(sock)`` in a greenlet."""
    server = gsocket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve() -> None:
        sock, _ = server.accept()
        with sock:
            handle(sock)
        server.close()

    return server.getsockname()[1], gevent.spawn(serve)


def read_to_eof(sock: gsocket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def echo_then_close(sock: gsocket.socket) -> None:
    sock.sendall(b"[answer]" + read_to_eof(sock))


def test_identified_relayed_half_closed(monkeypatch) -> None:
    port, served = backend(echo_then_close)
    harness = Harness(config([port]), monkeypatch)
    client, connection = harness.connect()
    client.sendall(REQUEST)
    client.shutdown(socket.SHUT_WR)  # half-close: the answer must still arrive
    assert read_to_eof(client) == b"[answer]" + REQUEST
    harness.wait_closed(connection)
    served.join()
    assert connection.trace == HAPPY
    assert connection.end is End.CLOSED
    assert connection.record.route == "web" and connection.record.bytes_up == len(REQUEST)
    assert_closed_once(connection, harness, upstreams=1)


@pytest.mark.parametrize("noticed", ["by_the_first_write", "by_the_write_watcher"])
def test_the_connect_is_noticed_either_way(monkeypatch, noticed: str) -> None:
    """A loopback backend has accepted by the time connect() returns: the preamble goes at once.
    A remote one has not: the write watcher notices the connect (forced here). Same outcome."""
    port, served = backend(echo_then_close)
    harness = Harness(config([port]), monkeypatch)
    watched: list[Connection] = []
    real_connect_done = Connection._connect_done

    def connect_done(self: Connection) -> None:
        watched.append(self)
        real_connect_done(self)

    monkeypatch.setattr(Connection, "_connect_done", connect_done)
    if noticed == "by_the_write_watcher":
        monkeypatch.setattr(Connection, "_sent_at_once", lambda self: False)
    client, connection = harness.connect()
    client.sendall(REQUEST)
    client.shutdown(socket.SHUT_WR)
    assert read_to_eof(client) == b"[answer]" + REQUEST
    harness.wait_closed(connection)
    served.join()
    assert watched == ([] if noticed == "by_the_first_write" else [connection])
    assert connection.trace == HAPPY and connection.end is End.CLOSED
    assert connection.record.upstream == f"127.0.0.1:{port}"
    assert_closed_once(connection, harness, upstreams=1)


def test_silent_client_times_out_and_is_rejected(monkeypatch) -> None:
    harness = Harness(config([9]), monkeypatch)
    client, connection = harness.connect()
    assert read_to_eof(client) == b""  # closed in order, nothing sent
    harness.wait_closed(connection)
    assert connection.trace == REFUSED
    assert connection.end is End.REJECTED
    assert_closed_once(connection, harness, upstreams=0)


def test_unmatched_bytes_are_rejected(monkeypatch) -> None:
    harness = Harness(config([9]), monkeypatch)
    client, connection = harness.connect()
    client.sendall(b"GET / HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n")
    client.shutdown(socket.SHUT_WR)
    assert read_to_eof(client) == b""
    harness.wait_closed(connection)
    assert connection.trace == REFUSED and connection.end is End.REJECTED
    assert connection.record.protocol == "http"
    assert_closed_once(connection, harness, upstreams=0)


@pytest.mark.parametrize("noticed", ["by_the_first_write", "by_the_write_watcher"])
def test_refused_backend_ends_upstream_unavailable(monkeypatch, noticed: str) -> None:
    if noticed == "by_the_write_watcher":
        monkeypatch.setattr(Connection, "_sent_at_once", lambda self: False)
    closed = gsocket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    harness = Harness(config([port]), monkeypatch)
    client, connection = harness.connect()
    client.sendall(REQUEST)
    assert read_to_eof(client) == b""
    harness.wait_closed(connection)
    assert connection.trace == [State.ACCEPTED, State.IDENTIFYING, State.DIALING, State.CLOSING, State.CLOSED]
    assert connection.end is End.UPSTREAM_UNAVAILABLE
    assert "Connection refused" in (connection.record.error or "")
    assert_closed_once(connection, harness, upstreams=1)


def test_early_failure_replays_the_prefix_to_the_next_backend(monkeypatch) -> None:
    def close_at_once(sock: gsocket.socket) -> None:
        pass  # accepts, answers nothing, closes

    def answer_then_close(sock: gsocket.socket) -> None:
        sock.sendall(b"[answer]" + sock.recv(len(REQUEST)))
        read_to_eof(sock)

    first, _ = backend(close_at_once)
    second, served = backend(answer_then_close)
    harness = Harness(
        config([first, second]).replace("default: reject", "    balance: first\ndefault: reject"), monkeypatch
    )
    client, connection = harness.connect()
    client.sendall(REQUEST)
    answer = b"[answer]" + REQUEST
    assert client.recv(len(answer), socket.MSG_WAITALL) == answer  # the client notices nothing
    client.shutdown(socket.SHUT_WR)  # (only now: once its end is passed on, nothing is replayed)
    assert read_to_eof(client) == b""
    harness.wait_closed(connection)
    served.join()
    assert connection.trace == [
        State.ACCEPTED,
        State.IDENTIFYING,
        State.DIALING,
        State.RELAYING,
        State.DIALING,
        State.RELAYING,
        State.CLOSED,
    ]
    assert connection.end is End.CLOSED
    assert connection.record.upstream == f"127.0.0.1:{second}"
    assert_closed_once(connection, harness, upstreams=2)


def reset(sock: gsocket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_client_reset_is_passed_on_as_a_reset(monkeypatch) -> None:
    seen: list[str] = []

    def read_until_reset(sock: gsocket.socket) -> None:
        sock.sendall(b"[hello]")
        try:
            read_to_eof(sock)
            seen.append("eof")
        except ConnectionResetError:
            seen.append("reset")

    port, served = backend(read_until_reset)
    harness = Harness(config([port]), monkeypatch)
    client, connection = harness.connect()
    client.sendall(REQUEST)
    assert client.recv(7) == b"[hello]"
    reset(client)
    harness.wait_closed(connection)
    served.join()
    assert connection.trace == HAPPY and connection.end is End.CLIENT_RESET
    assert seen == ["reset"]
    assert_closed_once(connection, harness, upstreams=1)


def test_backend_reset_is_passed_on_as_a_reset(monkeypatch) -> None:
    def answer_then_reset(sock: gsocket.socket) -> None:
        sock.recv(len(REQUEST))
        sock.sendall(b"[partial]")
        gevent.sleep(0.05)
        reset(sock)

    port, served = backend(answer_then_reset)
    harness = Harness(config([port]), monkeypatch)
    client, connection = harness.connect()
    client.sendall(REQUEST)
    assert client.recv(9) == b"[partial]"
    with pytest.raises(ConnectionResetError):
        read_to_eof(client)
    harness.wait_closed(connection)
    served.join()
    assert connection.trace == HAPPY and connection.end is End.UPSTREAM_RESET
    assert_closed_once(connection, harness, upstreams=1)


def test_idle_relay_is_closed_by_the_sweep(monkeypatch) -> None:
    def hold(sock: gsocket.socket) -> None:
        read_to_eof(sock)

    port, served = backend(hold)
    harness = Harness(config([port]), monkeypatch)
    client, connection = harness.connect()
    client.sendall(REQUEST)
    harness.wait_closed(connection)  # the counting's sweep ends it after timeouts.idle
    served.join()
    assert connection.trace == HAPPY and connection.end is End.IDLE_TIMEOUT
    assert_closed_once(connection, harness, upstreams=1)
    harness.counting.stop()


def test_identification_budget_closes_a_trickling_client(monkeypatch) -> None:
    harness = Harness(config([9], "limits: {identify_cpu: 1ms}\n"), monkeypatch)
    client, connection = harness.connect()
    client.sendall(b"GET / HTTP/1.1\r\n")
    with gevent.Timeout(5):
        try:
            while connection.state is State.IDENTIFYING:
                client.sendall(b"A: b\r\n")
                gevent.sleep(0.001)
        except OSError:
            pass
    harness.wait_closed(connection)
    assert connection.trace == REFUSED and connection.end is End.IDENTIFY_BUDGET
    assert_closed_once(connection, harness, upstreams=0)
