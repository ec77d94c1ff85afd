"""The list of built-in identifiers. Adding a protocol family means adding its module here.

Cost: a built-in that asks for one more byte at a time while it reads up to a terminator (a line
end, a tag end, a record end) offers a resumable ``session`` (see ``incremental.py``): http,
rtsp, stomp, irc, redis and tls do, so a client trickling bytes costs time linear in what it
sent. ``tests/identify/test_linear_cost.py`` audits every built-in for it.

How one protocol is chosen when several could claim the same bytes
-------------------------------------------------------------------
The engine (``engine.py``) consults identifiers by (precedence, name) and lets the best
precedence that matches win once no better-precedence identifier is still waiting for bytes. So
the verdict never depends on the order of ``BUILTINS``; ``tests/identify/test_confusion.py``
shuffles it to prove that. The built-ins are written so that, on real traffic, at most one of
them matches (the confusion test checks every corpus sample against every identifier); the
precedence classes only decide the rare cases where a deliberately loose rule and a strict one
both fit, and when the engine may stop waiting:

* ``SPECIFIC`` (10) -- wrappers and complete fixed-form openings that must not wait for others:
  ``proxy`` (a PROXY header precedes any protocol), ``h2c`` (the fixed 24-byte preface; more
  specific than ``http``, though ``http`` never accepts ``PRI``), ``socks5`` (its greeting is
  a complete message of 3+ bytes that decides on its own, whatever follows; most clients then
  wait, and a length-prefixed identifier such as ``mongodb`` would otherwise hold the decision
  until the identify timeout).
* ``DEFAULT`` (50) -- every protocol with a structural check (lengths that add up, magic numbers,
  checksums, a request line with a known method and version).
* ``GENERIC`` (90) -- one-line text protocols whose syntax is plausible in other text protocols:
  ``memcached``, ``irc``, ``syslog``. Any ``DEFAULT`` match beats them.

Conflicts resolved (by making the rules disjoint, not by precedence):

* ``http`` vs ``rtsp``: both accept ``OPTIONS``; the version (``HTTP/1.x`` vs ``RTSP/x.0``) decides.
* ``http`` vs ``h2c``: ``PRI`` is not an HTTP/1 method and ``HTTP/2.0`` not an HTTP/1 version.
* ``http`` vs ``stomp``: HTTP's ``CONNECT host:port HTTP/1.1`` has a space, STOMP's ``CONNECT`` ends
  the line.
* ``redis`` inline commands vs every other line protocol: Redis clients send RESP arrays, which
  are always claimed; an inline line (telnet, ``nc`` health checks) is claimed only when no other
  text protocol's client could send it as its first line. So never ``AUTH``, ``QUIT`` or
  ``TYPE`` in any case (SMTP/POP3/FTP ``AUTH PLAIN``/``AUTH TLS``, everyone's ``QUIT``, FTP
  ``TYPE I``; ``CAPA``, ``USER``, ``PASS``, ``NOOP`` are no Redis commands at all), never a
  lower-case verb of a lower-case protocol (Memcached's ``get k``/``set ...``, its verbs being
  case-sensitive; beanstalkd's ``watch``; ZooKeeper's ``dump``; Gearman's ``shutdown``), never a
  line ending like ``GET / HTTP/1.1`` or ``... SIP/2.0``. ``PING``, ``INFO``, ``SET k v`` inline
  are Redis's. Ambiguous inline lines are given up (``AUTH secret`` typed into telnet is not
  identified) rather than taken from SMTP, POP3 or FTP.
* ``dns`` vs ``openvpn`` vs ``postgres`` vs ``smb`` (all start with a zero byte and a length):
  DNS needs a request header (QR=0; QUERY or NOTIFY with one question and at most 1024 bytes,
  or UPDATE with one SOA zone) and records that fill the length exactly; OpenVPN needs opcode
  7/10 at byte 2 and a fitting layout; PostgreSQL needs a 4-byte length and a 3.x/request code;
  SMB needs ``\\xffSMB``/``\\xfeSMB`` at byte 4.
* ``tls`` SSLv2-format hellos vs anything with a high first byte: the hello's three lengths must
  add up to the 15-bit record length.
* ``memcached`` binary requests vs ``tls`` SSLv2-format hellos (both start with 0x80): the
  hello's message type 1 and version major (bytes 2-3) read as a key length of 256 or more,
  over memcached's 250.
* ``adb`` after adb 26's empty message vs ``dns``/``postgres``/``smb`` (zero bytes first): the
  whole 24-byte empty message, ending 0xffffffff, then ``CNXN``.
* ``tinc`` vs ``syslog`` octet counting: ``0 `` then a node name vs a non-zero count then ``<``.
"""

from __future__ import annotations

from passthru.identify.adb import ADB
from passthru.identify.base import Identifier
from passthru.identify.chat import IRC, XMPP
from passthru.identify.databases import MEMCACHED, MONGODB, POSTGRES, REDIS
from passthru.identify.dns import DNS
from passthru.identify.git import GIT
from passthru.identify.http import H2C, HTTP, RTSP
from passthru.identify.messaging import AMQP, MQTT, STOMP
from passthru.identify.peer import BITCOIN, BITTORRENT_HANDSHAKE
from passthru.identify.proxy_protocol import PROXY
from passthru.identify.socks import SOCKS4, SOCKS5
from passthru.identify.ssh import SSH
from passthru.identify.syslog import SYSLOG
from passthru.identify.tls import TLS
from passthru.identify.vpn import OPENVPN, TINC
from passthru.identify.windows import RDP, SMB

BUILTINS: tuple[Identifier, ...] = (
    TLS,
    HTTP,
    H2C,
    SSH,
    SOCKS4,
    SOCKS5,
    PROXY,
    OPENVPN,
    TINC,
    XMPP,
    RDP,
    POSTGRES,
    REDIS,
    MQTT,
    DNS,
    BITTORRENT_HANDSHAKE,
    GIT,
    RTSP,
    SMB,
    MONGODB,
    AMQP,
    MEMCACHED,
    STOMP,
    BITCOIN,
    IRC,
    SYSLOG,
    ADB,
)


def builtin_names() -> frozenset[str]:
    return frozenset(i.name for i in BUILTINS)
