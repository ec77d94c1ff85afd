"""HTTP/1.x as servers accept it (issue 12): a valid request line followed by header lines an
origin server would still accept or answer 400 itself is ``http``, with the fields that parse.

Every case goes through the whole engine with every built-in (so no other identifier may claim
it either), whole and trickled a byte at a time.
"""

from __future__ import annotations

import pytest

from passthru.identify import BUILTINS
from passthru.identify.engine import Decision, Identification, identify
from passthru.identify.http import MAX_HEADER_LINE, MAX_HEADERS

GET = {"method": "GET", "path": "/", "version": "1.1"}

LENIENT: dict[str, tuple[bytes, dict]] = {
    "obsolete line folding (RFC 9112 5.2)": (
        b"GET / HTTP/1.1\r\nHost: fold.test\r\nX-Long: one\r\n two\r\n\tthree\r\nUpgrade:\r\n  WebSocket\r\n\r\n",
        {**GET, "host": "fold.test", "upgrade": "websocket"},
    ),
    "a folded Host header": (b"GET / HTTP/1.1\r\nHost:\r\n folded.test\r\n\r\n", {**GET, "host": "folded.test"}),
    "folding before any header is dropped": (
        b"GET / HTTP/1.1\r\n stray\r\nHost: after.test\r\n\r\n",
        {**GET, "host": "after.test"},
    ),
    "folding after a skipped line is dropped": (
        b"GET / HTTP/1.1\r\nHost: kept.test\r\nnot a header\r\n more\r\n\r\n",
        {**GET, "host": "kept.test"},
    ),
    "bare LF line ends (RFC 9112 2.2)": (b"GET / HTTP/1.1\nHost: lf.test\n\n", {**GET, "host": "lf.test"}),
    "mixed CRLF and bare LF": (
        b"GET / HTTP/1.0\r\nHost: mixed.test\nAccept: */*\r\n\n",
        {**GET, "version": "1.0", "host": "mixed.test"},
    ),
    "a header line without a colon": (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", GET),
    "a line without a colon among headers": (
        b"GET / HTTP/1.1\r\nHost a\r\nHost: colon.test\r\n\r\n",
        {**GET, "host": "colon.test"},
    ),
    "odd bytes in a header name": (
        b"GET / HTTP/1.1\r\nBad Name: x\r\nX-\x01: y\r\nHost: name.test\r\n\r\n",
        {**GET, "host": "name.test"},
    ),
    "odd bytes in a header value": (
        b"GET / HTTP/1.1\r\nHost: value.test\r\nX-Odd: \x00\x01\x7f\xff\xfe\r\ttab\r\n\r\n",
        {**GET, "host": "value.test"},
    ),
    "odd bytes in the Host value give no host": (b"GET / HTTP/1.1\r\nHost: bad\x00host\r\n\r\n", GET),
    "a Host with a bad port gives no host": (b"GET / HTTP/1.1\r\nHost: a.test:http\r\n\r\n", GET),
    "several spaces after the method": (
        b"GET   /index.html HTTP/1.1\r\nHost: spaces.test\r\n\r\n",
        {**GET, "path": "/index.html", "host": "spaces.test"},
    ),
    "spaces and tabs between the parts": (
        b"POST \t/form  \tHTTP/1.0\r\nHost: tabs.test\r\n\r\n",
        {"method": "POST", "path": "/form", "version": "1.0", "host": "tabs.test"},
    ),
    "absolute-form target with a bad Host header": (
        b"GET http://target.test/x HTTP/1.1\r\nHost: \xff\r\n\r\n",
        {**GET, "path": "http://target.test/x"},
    ),
}


def trickled(data: bytes) -> Decision:
    """The engine's decision when ``data`` arrives one byte per read."""
    identification = Identification(BUILTINS)
    for end in range(1, len(data) + 1):
        decision = identification.feed(data[:end])
        if decision.final:
            return decision
    return identification.feed(data, final=True)


@pytest.mark.parametrize("name", LENIENT)
def test_lenient_request_is_http_with_the_fields_that_parse(name: str) -> None:
    data, fields = LENIENT[name]
    for decision in (identify(BUILTINS, data), trickled(data)):
        assert (decision.protocol, decision.fields) == ("http", fields), name


def test_many_headers_are_decided_at_the_cap_on_the_first_ones() -> None:
    head = b"GET /many HTTP/1.1\r\nHost: many.test\r\n"
    data = head + b"X: y\r\n" * (MAX_HEADERS + 20)  # the block never ends
    decision = identify(BUILTINS, data)
    assert (decision.protocol, decision.fields) == ("http", {**GET, "path": "/many", "host": "many.test"})
    assert identify(BUILTINS, head + b"X: y\r\n" * (MAX_HEADERS - 2)).bytes_needed, "below the cap it waits"


def test_a_host_header_after_the_cap_is_not_seen() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * MAX_HEADERS + b"Host: late.test\r\n\r\n"
    assert identify(BUILTINS, data).fields == GET


def test_an_overlong_header_line_is_decided_on_the_fields_before_it() -> None:
    data = b"GET / HTTP/1.1\r\nHost: long.test\r\nCookie: " + b"c" * MAX_HEADER_LINE
    decision = identify(BUILTINS, data)
    assert (decision.protocol, decision.fields) == ("http", {**GET, "host": "long.test"})
    assert identify(BUILTINS, data[:-100]).bytes_needed, "a long line still within the limit is waited for"


STILL_NOT_HTTP = {
    "HTTP/2.0 in the request line": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "an unknown method": b"FETCH / HTTP/1.1\r\nHost: a\r\n\r\n",
    "no version": b"GET /\r\nHost: a\r\n\r\n",
    "a target with a control byte": b"GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n",
    "a space before the method": b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "four words": b"GET / x HTTP/1.1\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("name", STILL_NOT_HTTP)
def test_the_request_line_must_still_be_valid(name: str) -> None:
    decision = identify(BUILTINS, STILL_NOT_HTTP[name], final=True)
    assert decision.protocol != "http", name


def test_rtsp_reads_its_headers_leniently_and_stays_rtsp() -> None:
    data = b"OPTIONS rtsp://cam.test/a RTSP/1.0\nUser-Agent: old\n  player\nno colon\nCSeq: 2\n\n"
    decision = identify(BUILTINS, data)
    assert (decision.protocol, decision.fields) == (
        "rtsp",
        {"method": "OPTIONS", "url": "rtsp://cam.test/a", "version": "1.0", "host": "cam.test"},
    )


def test_stomp_headers_stay_strict() -> None:
    """STOMP frames are not HTTP: their header lines are still all ``name:value``."""
    assert identify(BUILTINS, b"CONNECT\naccept-version:1.2\nno colon\n\n", final=True).protocol is None
