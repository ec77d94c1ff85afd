"""The PostgreSQL STARTTLS exchange as bytes only (no sockets): what Passthru answers, what it
keeps for the backend, and what routing sees, whatever way the client's bytes arrive."""

from __future__ import annotations

import struct

import pytest

from passthru.server.pgwire import GSSENC_REQUEST, SSL_REQUEST, ClientStartTLS, backend_answer_error
from tests.support.hello import client_hello

HELLO = client_hello("db-a.example.test", ["postgresql"])
STARTUP_BODY = b"\x00\x03\x00\x00user\x00app\x00database\x00shop\x00\x00"
STARTUP = struct.pack("!I", len(STARTUP_BODY) + 4) + STARTUP_BODY


def feed(stream: bytes, step: int) -> tuple[ClientStartTLS, bytes]:
    """Feed ``stream`` in pieces of ``step`` bytes; collect every answer."""
    exchange, answers = ClientStartTLS(), b""
    for end in range(step, len(stream) + step, step):
        answers += exchange.receive(stream[:end])
        if exchange.done:
            break
    return exchange, answers


@pytest.mark.parametrize("step", [1, 7, 8, 1000])
def test_ssl_request_then_client_hello(step: int) -> None:
    exchange, answers = feed(SSL_REQUEST + HELLO, step)
    assert answers == b"S" and exchange.done and exchange.starttls
    assert exchange.fields == {"request": "ssl", "sni": "db-a.example.test", "alpn": ["postgresql"]}
    assert exchange.data == SSL_REQUEST + HELLO  # exactly what the backend gets, request first


@pytest.mark.parametrize("step", [1, 8, 1000])
def test_gssenc_refused_then_ssl_the_gssenc_request_is_not_forwarded(step: int) -> None:
    exchange, answers = feed(GSSENC_REQUEST + SSL_REQUEST + HELLO, step)
    assert answers == b"NS" and exchange.starttls
    assert exchange.data == SSL_REQUEST + HELLO
    assert exchange.fields["sni"] == "db-a.example.test"


@pytest.mark.parametrize("step", [1, 1000])
def test_gssenc_refused_then_a_startup_in_clear(step: int) -> None:
    exchange, answers = feed(GSSENC_REQUEST + STARTUP, step)
    assert answers == b"N" and exchange.done and not exchange.starttls
    assert exchange.data == STARTUP
    assert exchange.fields == {"request": "startup", "protocol": "3.0", "user": "app", "database": "shop"}


def test_not_tls_after_s_keeps_the_bytes_and_reports_no_sni() -> None:
    exchange, answers = feed(SSL_REQUEST + b"GET / HTTP/1.1\r\n\r\n", 1000)
    assert answers == b"S" and exchange.done and exchange.starttls
    assert exchange.fields == {"request": "ssl"}


def test_garbage_after_n_is_no_protocol() -> None:
    exchange, _ = feed(GSSENC_REQUEST + b"\xff" * 20, 1000)
    assert exchange.done and exchange.protocol is None


def test_backend_answers() -> None:
    assert backend_answer_error(b"S") is None
    assert "b'N'" in str(backend_answer_error(b"N"))
    assert "closed" in str(backend_answer_error(b""))


def test_a_client_that_stops_after_n_reports_no_request() -> None:
    exchange, answers = feed(GSSENC_REQUEST + SSL_REQUEST[:3], 1000)
    assert answers == b"N" and not exchange.done
    assert exchange.fields == {} and exchange.data == SSL_REQUEST[:3]
