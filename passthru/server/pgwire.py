"""PostgreSQL's STARTTLS, as bytes: what Passthru answers and what it reads. Sans-IO.

A libpq client that wants TLS sends an 8-byte SSLRequest and waits for one byte: ``S`` (go on
with a TLS ClientHello) or ``N``. Before that, it may send a GSSENCRequest, also answered with
one byte (``G`` or ``N``); after ``N`` it goes on with an SSLRequest or a plain StartupMessage.
To route by SNI, Passthru plays the server's part of this exchange (``S`` for SSL, ``N`` for
GSSAPI encryption, which it cannot offer), reads the ClientHello, and later replays the
SSLRequest to the chosen backend (the I/O steps are in ``connection.py``, "PostgreSQL by SNI").

:class:`ClientStartTLS` is the client side as a state machine over the bytes received.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from passthru.identify.base import Fields
from passthru.identify.databases import POSTGRES
from passthru.identify.tls import TLS

SSL_REQUEST = struct.pack("!II", 8, 80877103)
GSSENC_REQUEST = struct.pack("!II", 8, 80877104)
REQUEST_LENGTH = 8
ACCEPT_SSL = b"S"
REFUSE = b"N"  # "no GSSAPI encryption here": libpq then asks for SSL (or goes on in clear)

#: The fields of the ClientHello that become ``postgres`` fields.
HELLO_FIELDS = ("sni", "alpn")


@dataclass
class ClientStartTLS:
    """Feed everything the client sent so far (from its first byte); each call returns what to
    answer (bytes to write to the client, possibly none) and sets ``done`` once routing can decide.

    ``data`` is what the backend must get: an answered GSSENCRequest is dropped (the backend never
    sees it, Passthru answered it); after an SSLRequest it is that request and the ClientHello.
    ``fields`` is what routing sees; ``starttls`` is true once the client's SSLRequest was answered
    with ``S`` (the chosen backend must then accept the same request, see ``backend_opening``).
    """

    data: bytes = b""
    fields: Fields = field(default_factory=dict)
    protocol: str | None = "postgres"
    starttls: bool = False
    done: bool = False
    skipped: int = 0  # bytes of answered GSSENCRequests at the start of the stream

    def receive(self, stream: bytes) -> bytes:
        answer = b""
        while not self.done:
            rest = self.data = stream[self.skipped :]
            if self.starttls:  # SSLRequest + ClientHello
                verdict = TLS.identify(rest[REQUEST_LENGTH:]) if len(rest) > REQUEST_LENGTH else REQUEST_LENGTH + 1
                if isinstance(verdict, dict):
                    self.fields.update({k: verdict[k] for k in HELLO_FIELDS if k in verdict})
                self.done = not isinstance(verdict, int)
                break
            head = rest[:REQUEST_LENGTH]
            if head == GSSENC_REQUEST:
                self.skipped += REQUEST_LENGTH
                answer += REFUSE
                continue
            if head == SSL_REQUEST:
                self.starttls, self.fields = True, {"request": "ssl"}
                answer += ACCEPT_SSL
                continue
            if len(head) < REQUEST_LENGTH and (GSSENC_REQUEST.startswith(head) or SSL_REQUEST.startswith(head)):
                break  # the next request is still arriving
            verdict = POSTGRES.identify(rest)  # the client went on in clear after our N
            self.fields = verdict if isinstance(verdict, dict) else {}
            self.protocol = "postgres" if isinstance(verdict, dict | int) else None
            self.done = not isinstance(verdict, int)
            break
        return answer


def starts_exchange(fields: Fields) -> bool:
    """The identified ``postgres`` message is one Passthru answers when routing by SNI."""
    return fields.get("request") in ("ssl", "gssenc")


def backend_opening(first: bytes, data: bytes) -> tuple[bytes, bytes]:
    """What a backend gets, in two parts: right after connecting (``first``, a PROXY header or
    b"", then the SSLRequest), and once it answered ``S`` (the ClientHello and anything after)."""
    return first + data[:REQUEST_LENGTH], data[REQUEST_LENGTH:]


def backend_answer_error(answer: bytes) -> str | None:
    """None when the backend accepted our SSLRequest (``S``), else what went wrong."""
    if answer == ACCEPT_SSL:
        return None
    if not answer:
        return "closed the connection instead of answering the SSLRequest"
    return f"answered the SSLRequest with {answer!r} instead of b'S' (is TLS enabled on it?)"
