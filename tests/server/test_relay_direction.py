"""One relay direction on real loopback sockets: small transfers are copied through the scratch
buffer (no pipe), a read that fills it turns the direction bulk (splice through a pipe), and
bytes the destination cannot take yet are kept out of the scratch buffer."""

from __future__ import annotations

import errno
import socket

import pytest

from passthru.server import relay
from passthru.server.relay import READ, SCRATCH_SIZE, WRITE, Direction


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """Two connected loopback TCP sockets (ours non-blocking, the peer blocking)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    ours.setblocking(False)
    return ours, peer


@pytest.fixture
def direction():  # type: ignore[no-untyped-def]
    source, client = tcp_pair()
    destination, reader = tcp_pair()
    made = Direction(source, destination, "client", "upstream", use_splice=True)
    yield made, client, reader
    made.discard()
    for sock in (source, client, destination, reader):
        sock.close()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def test_small_transfer_is_copied_without_a_pipe(direction) -> None:  # type: ignore[no-untyped-def]
    made, client, reader = direction
    client.sendall(b"x" * 300)
    assert made.step() == READ  # a short read: wait rather than read again
    assert (made.moved, made.bulk, made.pipe, made.pending) == (300, False, None, None)
    assert read_exactly(reader, 300) == b"x" * 300


def test_a_full_read_turns_the_direction_bulk(direction) -> None:  # type: ignore[no-untyped-def]
    made, client, reader = direction
    payload = bytes(range(256)) * (3 * SCRATCH_SIZE // 256)
    client.sendall(payload[:SCRATCH_SIZE])  # exactly one scratch buffer
    got = b""
    while not made.bulk:
        made.step()
        got += reader.recv(1 << 20)
    client.sendall(payload[SCRATCH_SIZE:])
    client.shutdown(socket.SHUT_WR)
    while not made.done:
        made.step()
        if made.pipe is not None:
            assert made.bulk  # a pipe only once bulk
        got += reader.recv(1 << 20)
    reader.settimeout(5)
    while chunk := reader.recv(1 << 20):
        got += chunk
    assert got == payload and made.moved == len(payload)


class FullDestination:
    """A destination that takes ``room`` bytes, then would block (until given more room)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.received = b""

    def send(self, data: memoryview) -> int:
        if not self.room:
            raise BlockingIOError(errno.EAGAIN, "would block")
        taken = bytes(data[: self.room])
        self.room -= len(taken)
        self.received += taken
        return len(taken)


def test_what_the_destination_cannot_take_leaves_the_scratch_buffer() -> None:
    source, client = tcp_pair()
    destination = FullDestination(room=1000)
    made = Direction(source, destination, "client", "upstream", use_splice=False)  # type: ignore[arg-type]
    payload = bytes(range(256)) * 40
    client.sendall(payload)
    try:
        while made.moved == 0:
            assert made.step() in (READ, WRITE)
        assert made.step() == WRITE  # 1000 bytes went out; the rest is held
        assert made.pending is not None and made.pending.obj is not relay.SCRATCH_BUFFER
        relay.SCRATCH[:] = bytes(SCRATCH_SIZE)  # another connection's read overwrites the scratch
        destination.room = len(payload)
        while made.moved < len(payload):
            made.step()
        assert destination.received == payload
    finally:
        source.close()
        client.close()
