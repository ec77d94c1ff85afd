"""Chat protocols whose client speaks first: XMPP (client or server stream) and IRC.

``xmpp``: an optional UTF-8 byte order mark, an optional XML declaration (either quote style),
optional white space, then the ``<stream:stream`` start tag, read to its ``>``; its attributes
(single- or double-quoted, any order) must be well formed, ``xmlns:stream`` must be the XMPP
streams namespace and ``xmlns`` ``jabber:client`` (a client) or ``jabber:server`` (a server
opening a server-to-server stream). Reports ``to`` (the domain, lower case; an internationalised
domain as its ``xn--`` A-label; left out when it is not a domain), ``namespace`` (client/server)
and ``version``.

``irc``: the registration lines a client opens with -- ``CAP LS [302]``, ``PASS``, ``NICK``,
``USER``, and ``WEBIRC`` (IRCv3, sent first by web gateways) -- each checked for its syntax
(RFC 2812 nickname, USER with four parameters, ...). Matches once a complete CAP LS, NICK or
USER line has arrived and every line before it was one of these (at most 64 lines are read: then
it matches if one of them identified IRC). Reports ``nick`` and ``user`` when sent.
"""

from __future__ import annotations

import re

from passthru.identify.base import DEFAULT_PRECEDENCE, GENERIC_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.incremental import LineScanner, Resumable
from passthru.identify.parsing import (
    Malformed,
    Truncated,
    ascii_text,
    expect_one_of,
    expect_prefix,
    hostname,
    verdict_of,
)

XML_DECLARATION = re.compile(rb"<\?xml(?:\s+[A-Za-z:]+\s*=\s*(?:'[^'<>]*'|\"[^\"<>]*\"))*\s*\?>\s*")
STREAM_TAG = b"<stream:stream"
BOM = b"\xef\xbb\xbf"
LEADING_SPACE = re.compile(rb"[ \t\r\n]{0,64}")
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
    offset = 0
    if data[:1] == BOM[:1]:
        expect_prefix(data, BOM)
        offset = len(BOM)
    offset = LEADING_SPACE.match(data, offset).end()  # type: ignore[union-attr]
    try:
        expect_one_of(data[offset:], (b"<?xml", STREAM_TAG))
    except Truncated:
        raise Truncated(len(data) + 1) from None
    if data.startswith(b"<?xml", offset):
        if b"?>" not in data:
            if len(data) > MAX_HEADER or b">" in data:
                raise Malformed("bad XML declaration")
            raise Truncated(len(data) + 1)
        declaration = XML_DECLARATION.match(data, offset)
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
    domain = stream_domain(attributes.get(b"to", b""))
    if domain:
        fields["to"] = domain
    if attributes.get(b"version"):
        fields["version"] = ascii_text(attributes[b"version"])
    return fields


def stream_domain(raw: bytes) -> str | None:
    """The ``to`` domain as routes compare host names (A-labels, lower case); None when absent
    or not a domain: the stream is still XMPP, there is just no ``to`` to route on."""
    try:
        text = raw.decode("utf-8")
        return hostname(text.encode("idna") if not text.isascii() else raw) if text else None
    except (UnicodeError, Malformed):
        return None


XMPP = Identifier(
    trusted=True,
    name="xmpp",
    identify=verdict_of(parse_xmpp),
    precedence=DEFAULT_PRECEDENCE,
    fields={"to": HOST, "namespace": TEXT, "version": TEXT},
    description="XMPP stream header: optional XML declaration, <stream:stream> with the streams and jabber namespaces",
)

IRC_COMMANDS = (b"CAP ", b"PASS ", b"NICK ", b"USER ", b"WEBIRC ")
IRC_MAX_LINE = 512
IRC_MAX_LINES = 64  # a registration is a handful of lines; decide after this many, like HTTP's header cap
NICKNAME = re.compile(rb"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,63}")
USER_LINE = re.compile(rb"USER ([^\s@:]{1,64}) (\S+) (\S+) :?([^\r\n\0]*)")
CAP_LINE = re.compile(rb"CAP (LS(?: [0-9]{3})?|REQ :[^\r\n\0]*|END)")
PASS_LINE = re.compile(rb"PASS :?[^\s\0]+")
# IRCv3 WEBIRC, sent first by web gateways (KiwiIRC, The Lounge): password gateway hostname ip [:options]
WEBIRC_LINE = re.compile(rb"WEBIRC [^\s\0:]\S* \S+ \S+ [0-9A-Fa-f.:]+(?: :?[^\r\n\0]*)?")


class IrcRegistration(Resumable):
    """The registration lines, read resumably (``incremental``): each complete line is checked
    once, so a client trickling thousands of ``PASS`` lines costs time linear in what it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = LineScanner()
        self.fields: Fields = {}
        self.registered = False
        self.count = 0  # lines read

    @property
    def examined(self) -> int:
        return self.lines.examined

    def parse(self, data: bytes) -> Fields:
        expect_one_of(data, IRC_COMMANDS)
        try:
            while self.count < IRC_MAX_LINES:
                line = self.lines.next(data, IRC_MAX_LINE)
                self.count += 1
                if not line.startswith(IRC_COMMANDS):
                    raise Malformed("not an IRC registration line")
                self.registered = irc_line(line, self.fields) or self.registered
        except Truncated:
            if not self.registered:
                raise
        except Malformed:
            if not self.registered:
                raise
            # what follows the identifying lines (even an over-long line) does not change the verdict
        if not self.registered:
            raise Malformed(f"no NICK, USER or CAP LS in the first {IRC_MAX_LINES} lines")
        return self.fields


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
    if line.startswith(b"WEBIRC "):
        if WEBIRC_LINE.fullmatch(line) is None:
            raise Malformed("bad WEBIRC line")
        return False
    if PASS_LINE.fullmatch(line) is None:
        raise Malformed("bad PASS line")
    return False


IRC = Identifier(
    trusted=True,
    name="irc",
    identify=IrcRegistration.once,
    session=IrcRegistration,
    precedence=GENERIC_PRECEDENCE,
    fields={"nick": TEXT, "user": TEXT},
    description="IRC registration: CAP LS / PASS / WEBIRC / NICK / USER lines with valid syntax (RFC 2812 nicknames)",
)
