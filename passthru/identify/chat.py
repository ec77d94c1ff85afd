"""Chat protocols whose client speaks first: XMPP (client or server stream) and IRC.

``xmpp``: an optional XML declaration, then the ``<stream:stream`` start tag, read to its ``>``;
its attributes must be well formed, ``xmlns:stream`` must be the XMPP streams namespace and
``xmlns`` ``jabber:client`` or ``jabber:server``. Reports ``to`` (the domain, lower case),
``namespace`` (client/server) and ``version``.

``irc``: the registration lines a client opens with -- ``CAP LS [302]``, ``PASS``, ``NICK``,
``USER`` -- each checked for its syntax (RFC 2812 nickname, USER with four parameters, ...).
Matches once a complete CAP LS, NICK or USER line has arrived and every line before it was one of
these. Reports ``nick`` and ``user`` when sent.
"""

from __future__ import annotations

import re

from passthru.identify.base import DEFAULT_PRECEDENCE, GENERIC_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.parsing import (
    Malformed,
    Truncated,
    ascii_text,
    complete_lines,
    expect_one_of,
    hostname,
    verdict_of,
)

XML_DECLARATION = re.compile(rb"<\?xml(?:\s+[A-Za-z:]+\s*=\s*(?:'[^'<>]*'|\"[^\"<>]*\"))*\s*\?>\s*")
STREAM_TAG = b"<stream:stream"
ATTRIBUTE = re.compile(rb"\s+([A-Za-z_][A-Za-z0-9_.:-]*)\s*=\s*(?:'([^'<]*)'|\"([^\"<]*)\")")
TAG_END = re.compile(rb"\s*>")
# What may follow the complete attributes while more bytes are coming: the start of one more
# attribute (of ATTRIBUTE's grammar: so a ">" inside a quoted value waits, as ATTRIBUTE accepts
# it once the quote closes), or white space before the tag end.
PARTIAL_ATTRIBUTE = re.compile(rb"(?:\s+(?:[A-Za-z_][A-Za-z0-9_.:-]*\s*(?:=\s*(?:'[^'<]*|\"[^\"<]*)?)?)?)?\Z")
STREAMS_NS = b"http://etherx.jabber.org/streams"
NAMESPACES = {b"jabber:client": "client", b"jabber:server": "server"}
MAX_HEADER = 4096


def parse_xmpp(data: bytes) -> Fields:
    expect_one_of(data, (b"<?xml", STREAM_TAG))
    offset = 0
    if data.startswith(b"<?xml"):
        if b"?>" not in data:
            if len(data) > MAX_HEADER or b">" in data:
                raise Malformed("bad XML declaration")
            raise Truncated(len(data) + 1)
        declaration = XML_DECLARATION.match(data)
        if declaration is None:
            raise Malformed("bad XML declaration")
        offset = declaration.end()
    available = data[offset : offset + len(STREAM_TAG)]
    if not STREAM_TAG.startswith(available):
        raise Malformed("not a stream:stream element")
    if len(available) < len(STREAM_TAG):
        raise Truncated(offset + len(STREAM_TAG))
    return stream_attributes(data, offset + len(STREAM_TAG))


def stream_attributes(data: bytes, offset: int) -> Fields:
    attributes: dict[bytes, bytes] = {}
    while True:
        end = TAG_END.match(data, offset)
        if end is not None:
            break
        attribute = ATTRIBUTE.match(data, offset)
        if attribute is None:
            if len(data) - offset > MAX_HEADER or PARTIAL_ATTRIBUTE.match(data, offset) is None:
                raise Malformed("bad stream attribute")
            raise Truncated(len(data) + 1)
        name = attribute.group(1)
        if name in attributes:
            raise Malformed("repeated attribute")
        attributes[name] = attribute.group(2) if attribute.group(2) is not None else attribute.group(3)
        offset = attribute.end()
    if attributes.get(b"xmlns:stream") != STREAMS_NS:
        raise Malformed("not the XMPP streams namespace")
    namespace = NAMESPACES.get(attributes.get(b"xmlns", b""))
    if namespace is None:
        raise Malformed("stream namespace is neither jabber:client nor jabber:server")
    fields: Fields = {"namespace": namespace}
    if attributes.get(b"to"):
        fields["to"] = hostname(attributes[b"to"])
    if attributes.get(b"version"):
        fields["version"] = ascii_text(attributes[b"version"])
    return fields


XMPP = Identifier(
    trusted=True,
    name="xmpp",
    identify=verdict_of(parse_xmpp),
    precedence=DEFAULT_PRECEDENCE,
    fields={"to": HOST, "namespace": TEXT, "version": TEXT},
    description="XMPP stream header: optional XML declaration, <stream:stream> with the streams and jabber namespaces",
)

IRC_COMMANDS = (b"CAP ", b"PASS ", b"NICK ", b"USER ")
IRC_MAX_LINE = 512
NICKNAME = re.compile(rb"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,63}")
USER_LINE = re.compile(rb"USER ([^\s@:]{1,64}) (\S+) (\S+) :?([^\r\n\0]*)")
CAP_LINE = re.compile(rb"CAP (LS(?: [0-9]{3})?|REQ :[^\r\n\0]*|END)")
PASS_LINE = re.compile(rb"PASS :?[^\s\0]+")


def parse_irc(data: bytes) -> Fields:
    expect_one_of(data, IRC_COMMANDS)
    fields: Fields = {}
    registered = False
    for line in complete_lines(data, 0, IRC_MAX_LINE):
        try:
            if not line.startswith(IRC_COMMANDS):
                raise Malformed("not an IRC registration line")
            registered = irc_line(line, fields) or registered
        except Malformed:
            if registered:
                break  # what follows the identifying lines does not change the verdict
            raise
    if not registered:
        if len(data) - data.rfind(b"\n") - 1 > IRC_MAX_LINE:
            raise Malformed("line too long")
        raise Truncated(len(data) + 1)
    return fields


def irc_line(line: bytes, fields: Fields) -> bool:
    """Check one registration line; record what it says; True when it identifies IRC."""
    if line.startswith(b"NICK "):
        if NICKNAME.fullmatch(line[5:].removeprefix(b":")) is None:
            raise Malformed("invalid nickname")
        fields.setdefault("nick", line[5:].removeprefix(b":").decode("ascii"))
        return True
    if line.startswith(b"USER "):
        user = USER_LINE.fullmatch(line)
        if user is None:
            raise Malformed("USER needs user, mode, unused and real name")
        fields.setdefault("user", user.group(1).decode("latin-1"))
        return True
    if line.startswith(b"CAP "):
        cap = CAP_LINE.fullmatch(line)
        if cap is None:
            raise Malformed("bad CAP line")
        return cap.group(1).startswith(b"LS")
    if PASS_LINE.fullmatch(line) is None:
        raise Malformed("bad PASS line")
    return False


IRC = Identifier(
    trusted=True,
    name="irc",
    identify=verdict_of(parse_irc),
    precedence=GENERIC_PRECEDENCE,
    fields={"nick": TEXT, "user": TEXT},
    description="IRC registration: CAP LS / PASS / NICK / USER lines with valid syntax (RFC 2812 nicknames)",
)
