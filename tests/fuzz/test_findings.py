"""What the fuzzer found, each as a minimal plain test (and the fuzz input that found it).

Each was a broken promise of the identifier API (``passthru/identify/base.py``) and is fixed in
the identifier named; the fuzz input is replayed through the harness too.
"""

from __future__ import annotations

import pytest

from passthru.identify.chat import XMPP
from passthru.identify.databases import REDIS
from passthru.identify.engine import identify
from passthru.identify.http import HTTP, RTSP
from passthru.identify.registry import BUILTINS
from passthru.identify.tls import TLS
from tests.fuzz.harness import run


def test_redis_unknown_inline_word_stays_no_match_when_a_cr_or_space_follows() -> None:
    """ "no match" is final: an unknown word was rejected on its own, but asked for more bytes
    (waiting for the line end) once a CR or a space followed it. Fixed in ``parse_inline``:
    the word decides before the line end is waited for."""
    assert REDIS.identify(b"H" * 20) is None
    assert REDIS.identify(b"H" * 21 + b"\r") is None  # was 23 (need more)
    assert REDIS.identify(b"HELLOX ") is None  # was 8
    assert REDIS.identify(b"get ") is None  # a Memcached verb, decided by the word too
    # known commands still wait for their line end, then match
    assert REDIS.identify(b"PING\r") == 6
    assert REDIS.identify(b"PING\r\n") == {"command": "PING", "format": "inline"}
    assert REDIS.identify(b"GET key\r\n") == {"command": "GET", "format": "inline"}


@pytest.mark.parametrize(
    ("identifier", "data"),
    [
        (RTSP, b"OPTIONS rtsp://127.0.0.1:4[5/m1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
        (RTSP, b"DESCRIBE rtsp://[::1/stream RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
    ],
    ids=["rtsp-bracket-in-port", "rtsp-unclosed-ipv6"],
)
def test_unbalanced_bracket_in_a_url_is_no_match_not_an_exception(identifier, data: bytes) -> None:
    """``urllib.parse.urlsplit`` raises ValueError("Invalid IPv6 URL") for an unbalanced ``[``;
    it escaped ``rtsp`` and ``http`` (the engine hid it as "no match" and logged an error for
    every such connection). Fixed with ``split_url`` in ``http.py``."""
    assert identifier.identify(data) is None
    assert identify(BUILTINS, data, final=True).protocol is None


def test_unbalanced_bracket_in_an_http_target_is_http_without_a_host() -> None:
    """The same ``urlsplit`` error in an absolute-form HTTP target (no Host header): the request
    line is valid, so it is ``http`` (issue 12: the fields that parse), only without ``host``."""
    data = b"GET http://[x/ HTTP/1.1\r\n\r\n"
    assert HTTP.identify(data) == {"method": "GET", "path": "http://[x/", "version": "1.1"}
    assert identify(BUILTINS, data).protocol == "http"


def test_tls_whole_short_record_is_rejected_like_a_partial_one() -> None:
    """A handshake record whose whole fragment is shorter than 4 bytes: its first byte (not a
    ClientHello) was checked while the record was partial (no match) but not once it was whole
    (need more bytes: "no match" taken back). Fixed in ``handshake_bytes``."""
    assert TLS.identify(bytes.fromhex("160303000231")) is None
    assert TLS.identify(bytes.fromhex("16030300023100")) is None  # was 8 (need more)
    assert TLS.identify(bytes.fromhex("1603010003170000")) is None
    # a ClientHello split into 2-byte records still reassembles
    assert TLS.identify(bytes.fromhex("16030100020100")) == 8


def test_xmpp_gt_inside_an_unfinished_attribute_value_waits() -> None:
    """A ``>`` inside a quoted attribute value still being received was "no match", but the
    attribute grammar accepts it once the quote closes ("need more" after "no match"). Fixed in
    ``stream_attributes``: the unfinished rest must be the start of an attribute by the same
    grammar (``PARTIAL_ATTRIBUTE``)."""
    head = b"<stream:stream xmlns='jabber:client"
    assert XMPP.identify(head + b">") == len(head) + 2  # was None
    assert isinstance(XMPP.identify(head + b">'"), int)
    ok = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a>b'>"
    assert XMPP.identify(ok) == {"namespace": "client", "to": "a>b"}
    # still rejected early: garbage that no attribute can start with
    assert XMPP.identify(b"<stream:stream xmlns='jabber:client' >>") is None
    assert XMPP.identify(b"<stream:stream foo>") is None
    assert XMPP.identify(b"<stream:streamx") is None


# The fuzz inputs as found (byte 0: target, byte 1: how the bytes were cut, then the bytes).
FOUND = {
    "redis-cr-after-unknown-word": bytes.fromhex("0c48") + b"H" * 21 + b"\r\x0c",
    "rtsp-invalid-ipv6-url": bytes.fromhex("1b07")
    + b"OPTIONS rtsp://127.0.0.1:4[5/m1ac71 RTSP/1.0\r\nCSeq: 1\r\nUser-Agen0.1:455/m1act: Lavf59.SP/1.0\r\n"
    + b"CSeq: 1\r\nUser-Age\x92\xd3.1:455/m1act: Lavf59.27.10027.100\r\n\r\n",
    "tls-short-record": bytes.fromhex("0001160303000231000000"),
    "xmpp-gt-in-attribute-value": bytes.fromhex("0901") + b"<stream:stream xmlns='jabbercentl\x00\x00>\x00'e\x00",
}


@pytest.mark.parametrize("data", FOUND.values(), ids=FOUND.keys())
def test_found_inputs_replay(data: bytes) -> None:
    run(data)
