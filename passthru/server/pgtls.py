"""PostgreSQL by SNI: the two I/O steps around the sans-IO exchange in ``pgwire.py``.

Used only when a ``protocol: postgres`` route tests ``sni`` or ``alpn`` (``Router.postgres_tls``):

1. :func:`answer_client`, once the prefix was identified as a postgres SSLRequest (or
   GSSENCRequest): answer ``S`` (``N``), read the ClientHello that follows, and report its
   ``sni``/``alpn`` as postgres fields. The bytes kept for the backend are the SSLRequest and
   the ClientHello (an answered GSSENCRequest is dropped).
2. :func:`backend_starttls`, after connecting to the chosen backend and before the prefix is
   forwarded: send the SSLRequest (after any PROXY header), require ``S`` (consumed: the client
   had its ``S`` from us), and hand back the rest (the ClientHello) to forward. Anything else is
   an early failure of that backend.

TLS stays end to end between client and database; Passthru never holds a key.

Both steps are blocking-style (a gevent socket in a greenlet). A callback-driven connection uses
the sans-IO pieces of ``pgwire.py`` directly: feed each read to ``ClientStartTLS.receive`` and
write what it returns until ``done``; on the backend, send ``backend_opening(...)[0]``, wait for
one byte, check it with ``backend_answer_error``, then send ``backend_opening(...)[1]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from passthru.identify.base import Fields
from passthru.server.pgwire import ClientStartTLS, backend_answer_error, backend_opening, starts_exchange

#: Reads up to n client bytes before the identify deadline: b"" at end of file, None on timeout.
Read = Callable[[int], "bytes | None"]


@dataclass(frozen=True)
class ClientStep:
    """What routing sees after the exchange, and what the backend must be sent."""

    data: bytes
    protocol: str | None
    fields: Fields
    starttls: bool  # the backend must accept an SSLRequest before ``data[8:]`` goes to it
    stopped: str  # as the handler's prefix: identified, limit, timeout, eof


def answer_client(
    protocol: str | None, fields: Fields, data: bytes, read: Read, send: Callable[[bytes], None], limit: int
) -> ClientStep | None:
    """Step 1. None when the identified message is not a postgres SSL/GSSENC request (then
    nothing changes). ``data``: every byte the client sent so far."""
    if protocol != "postgres" or not starts_exchange(fields):
        return None
    exchange = ClientStartTLS()
    stopped = "identified"
    try:
        send(exchange.receive(data))
        while not exchange.done:
            if len(data) >= limit:
                stopped = "limit"
                break
            chunk = read(limit - len(data))
            if not chunk:
                stopped = "timeout" if chunk is None else "eof"
                break
            data += chunk
            answer = exchange.receive(data)
            if answer:
                send(answer)
    except OSError:  # the client went away while we answered it
        stopped = "eof"
    return ClientStep(exchange.data, exchange.protocol, exchange.fields, exchange.starttls, stopped)


def backend_starttls(upstream, first: bytes, data: bytes, timeout: float) -> tuple[bytes, str | None]:
    """Step 2, on a freshly connected backend socket. ``first``: a PROXY header or b"";
    ``data``: the prefix (SSLRequest + ClientHello). Returns what is left to forward and None,
    or b"" and why the backend refused (an early failure: try the next backend)."""
    opening, rest = backend_opening(first, data)
    upstream.sendall(opening)
    upstream.settimeout(timeout)
    try:
        answer = upstream.recv(1)
    except TimeoutError:
        return b"", "did not answer the SSLRequest in time"
    except OSError as exc:
        return b"", f"reset the connection while asked for TLS ({exc.strerror or exc})"
    error = backend_answer_error(answer)
    return (b"", error) if error is not None else (rest, None)
