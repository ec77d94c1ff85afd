"""The recorded corpus (``tests/corpus/<protocol>/*.bin``) and hand-written near-misses, shared by
the identifier tests."""

from __future__ import annotations

import struct
from pathlib import Path

from tests.corpus.record import rdp_request

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
UNIDENTIFIABLE = "unidentifiable"  # samples by design not identifiable (encrypted BitTorrent)


def samples() -> list[tuple[str, str, bytes]]:
    """(protocol, file name, bytes) for every corpus sample of a protocol."""
    found = []
    for path in sorted(CORPUS.glob("*/*.bin")):
        if path.parent.name != UNIDENTIFIABLE:
            found.append((path.parent.name, path.name, path.read_bytes()))
    return found


def unidentifiable() -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in sorted((CORPUS / UNIDENTIFIABLE).glob("*.bin"))]


def sample_id(sample: tuple[str, str, bytes]) -> str:
    return f"{sample[0]}/{sample[1]}"


def ixfr_query() -> bytes:
    """An IXFR query (RFC 1995): the client's SOA travels in the authority section."""
    qname = b"\x07example\x04test\x00"
    soa = b"\xc0\x0c" + struct.pack(">HHIH", 6, 1, 0, 22) + b"\x00\x00" + struct.pack(">5I", 7, 0, 0, 0, 0)
    message = struct.pack(">6H", 0x1234, 0, 1, 0, 1, 0) + qname + struct.pack(">HH", 251, 1) + soa
    return struct.pack(">H", len(message)) + message


def dns_message(flags: int, counts: tuple[int, int, int, int], body: bytes) -> bytes:
    """A length-prefixed DNS message with the given flags and section counts."""
    message = struct.pack(">6H", 0x4242, flags, *counts) + body
    return struct.pack(">H", len(message)) + message


ZONE_SOA = b"\x07example\x04test\x00" + struct.pack(">HH", 6, 1)
# an RFC 2136 prerequisite ("name is in use": class ANY, type ANY, ttl 0, no data) and an update
PREREQUISITE = b"\x04host\xc0\x0c" + struct.pack(">HHIH", 255, 255, 0, 0)
DELETE_RRSET = b"\x04host\xc0\x0c" + struct.pack(">HHIH", 1, 255, 0, 0)


def netbios_session_request(called: bytes = b"FILESERVER", calling: bytes = b"CLIENT") -> bytes:
    """A NetBIOS session request (RFC 1002 4.3.2), what SMB clients send first on port 139."""

    def encode(name: bytes, suffix: int) -> bytes:
        raw = name.ljust(15, b" ") + bytes([suffix])
        return b"\x20" + bytes(c for b in raw for c in (0x41 + (b >> 4), 0x41 + (b & 0x0F))) + b"\x00"

    body = encode(called, 0x20) + encode(calling, 0x00)
    return b"\x81\x00" + struct.pack(">H", len(body)) + body


# Bytes that look like a protocol but are not: no identifier may claim them.
NEAR_MISSES: dict[str, bytes] = {
    "http: GET without a space": b"GET/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "http: unknown method": b"GETX / HTTP/1.1\r\nHost: a\r\n\r\n",
    "http: HTTP/2.0 request line": b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    "http: no version": b"GET /\r\n\r\n",
    "ssh: no version": b"SSH-\r\n",
    "ssh: version 3.0": b"SSH-3.0-OpenSSH_9\r\n",
    "ssh: empty software": b"SSH-2.0-\r\n",
    "ssh: space instead of dash": b"SSH-2.0 OpenSSH\r\n",
    "tls: record length 0": bytes.fromhex("1603010000") + bytes(60),
    "tls: record length too large": bytes.fromhex("160301ffff01"),
    "tls: ServerHello": bytes.fromhex("16030300310200002d0303") + bytes(41),
    "tls: DTLS 1.2 record": bytes.fromhex("16fefd0000000000000000003c010000300000000000000030fefd") + bytes(48),
    "tls: hello length larger than record": bytes.fromhex("160301002c010000ff0303") + bytes(40),
    "tls: sslv2 lengths do not add up": bytes.fromhex("8020010301000600000010") + bytes(23),
    "h2c: HEADERS before SETTINGS": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + bytes.fromhex("000005010400000001")
    + bytes(5),
    "socks5: no methods": b"\x05\x00",
    "socks5: repeated method": b"\x05\x02\x00\x00",
    "socks5: method 0xff offered": b"\x05\x01\xff",
    "socks5: unassigned method": b"\x05\x01\x42",
    "socks4: command 3": b"\x04\x03\x00\x50\x7f\x00\x00\x01\x00",
    "socks4: port 0": b"\x04\x01\x00\x00\x7f\x00\x00\x01\x00",
    "socks4: non-printable user": b"\x04\x01\x00\x50\x7f\x00\x00\x01\x01\x02\x00",
    "proxy: v1 missing port": b"PROXY TCP4 192.0.2.1 192.0.2.2 4000\r\n",
    "proxy: v1 wrong family": b"PROXY TCP4 ::1 ::1 4000 80\r\n",
    "proxy: v1 leading zero": b"PROXY TCP4 192.0.2.1 192.0.2.2 04000 80\r\n",
    "proxy: v1 bare LF": b"PROXY TCP4 192.0.2.1 192.0.2.2 4000 80\n",
    "proxy: v2 version 1": b"\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x0c" + bytes(12),
    "proxy: v2 unknown family": b"\r\n\r\n\x00\r\nQUIT\n\x21\x13\x00\x0c" + bytes(12),
    "proxy: v2 length too short": b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x08" + bytes(8),
    "openvpn: key id 1": bytes.fromhex("000e39") + bytes(8) + bytes(5),
    "openvpn: server reset opcode": bytes.fromhex("000e40") + bytes(8) + bytes(5),
    "openvpn: non-zero ack count": bytes.fromhex("000e38") + bytes(8) + b"\x01" + bytes(4),
    "openvpn: length too small": bytes.fromhex("000838") + bytes(8),
    "tinc: name with a dash": b"0 bad-name 17\n",
    "tinc: protocol 16": b"0 alice 16\n",
    "xmpp: no streams namespace": b"<stream:stream xmlns='jabber:client' to='a.example'>",
    "xmpp: html": b"<?xml version='1.0'?><html>",
    "xmpp: component namespace": (
        b"<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='a'>"
    ),
    "rdp: length indicator mismatch": bytes.fromhex("0300000b07e000000000000000"),
    "rdp: X.224 connection confirm": bytes.fromhex("0300000b06d00000123400"),
    "postgres: unknown request code": b"\x00\x00\x00\x08\x04\xd2\x16\x31",
    "postgres: protocol 2.0": b"\x00\x00\x00\x13\x00\x02\x00\x00user\x00alice\x00\x00",
    "postgres: startup without user": b"\x00\x00\x00\x15\x00\x03\x00\x00database\x00x\x00\x00",
    "postgres: length mismatch": b"\x00\x00\x00\x20\x00\x03\x00\x00user\x00alice\x00\x00",
    "redis: unknown command": b"*1\r\n$4\r\nPONG\r\n",
    "redis: empty array": b"*0\r\n",
    "redis: bulk length mismatch": b"*1\r\n$3\r\nPING\r\n",
    "redis: bare LF in RESP": b"*1\n$4\nPING\n",
    "mqtt: reserved flag": b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",
    "mqtt: level 6": b"\x10\x0c\x00\x04MQTT\x06\x02\x00\x3c\x00\x00",
    "mqtt: MQTT name with level 3": b"\x10\x0c\x00\x04MQTT\x03\x02\x00\x3c\x00\x00",
    "mqtt: length mismatch": b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
    "mqtt: bridge bit on level 5": b"\x10\x0d\x00\x04MQTT\x85\x02\x00\x3c\x00\x00\x00",
    "dns: response": bytes.fromhex("001d12348180000100000000000003777777076578616d706c6503636f6d0000010001")[:31],
    "dns: two questions": bytes.fromhex("001d12340100000200000000000003777777076578616d706c6503636f6d0000010001")[:31],
    "dns: pointer in question": bytes.fromhex("0012123401000001000000000000c00c00010001"),
    "adb: bad magic": b"CNXN" + bytes.fromhex("01000001 00001000 09000000 00000000 00000000") + b"host::x\0\0",
    "adb: bad checksum": b"CNXN" + bytes.fromhex("00000001 00001000 08000000 01000000 bcb1a7b1") + b"host::xy",
    "syslog: PRI 192": b"<192>1 2024-01-01T00:00:00Z host app - - - msg\n",
    "syslog: PRI with a leading zero": b"<013>1 2024-01-01T00:00:00Z host app - - - msg\n",
    "syslog: bad month": b"<13>Foo 25 02:30:01 host app: x\n",
    "syslog: version 2": b"<13>2 2024-01-01T00:00:00Z host app - - - msg\n",
    "syslog: day 00": b"<13>Jan 00 12:00:00 host app: x\n",
    "syslog: timestamp then a dash": b"<13>Jan 10 12:00:00-host app: x\n",
    "syslog: forward format with a bad date": b"<13>2024-13x01T00:00:00Z host app: msg\n",
    "bittorrent: wrong case": b"\x13BitTorrent protocoL" + bytes(28),
    "git: wrong pkt-line length": b"0040git-upload-pack /x\x00host=a\x00",
    "git: upper-case hex": b"001Agit-upload-pack /x\x00host=a\x00",
    "git: unknown service": b"001agit-upload-pax /x\x00host=a\x00",
    "rtsp: no CSeq": b"OPTIONS rtsp://a.example/ RTSP/1.0\r\nUser-Agent: x\r\n\r\n",
    "rtsp: http URL": b"OPTIONS http://a.example/ RTSP/1.0\r\nCSeq: 1\r\n\r\n",
    "smb: SMB2 SESSION_SETUP": b"\x00\x00\x00\x48\xfeSMB\x40\x00" + bytes(6) + b"\x01\x00" + bytes(54),
    "smb: SMB1 command 0x73": b"\x00\x00\x00\x23\xffSMB\x73" + bytes(30),
    "smb: session request with a bad name": netbios_session_request()[:10] + b"z" + netbios_session_request()[11:],
    "mongodb: responseTo set": b"\x20\x00\x00\x00\x01\x00\x00\x00\x05\x00\x00\x00\xdd\x07\x00\x00" + bytes(16),
    "mongodb: OP_REPLY": b"\x20\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00" + bytes(16),
    "amqp: 0-9-2": b"AMQP\x00\x00\x09\x02",
    "memcached: get without key": b"get\r\n",
    "memcached: set without bytes": b"set k 0 0\r\n",
    "stomp: neither host nor accept-version, and no frame end": b"CONNECT\nlogin:a\n\nx",
    "stomp: server frame": b"CONNECTED\nversion:1.2\n\n\x00",
    "bitcoin: bad checksum": b"\xf9\xbe\xb4\xd9version\x00\x00\x00\x00\x00\x56\x00\x00\x00\x00\x00\x00\x00" + bytes(86),
    "bitcoin: verack": b"\xf9\xbe\xb4\xd9verack\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x5d\xf6\xe0\xe2",
    "irc: nickname starts with a digit": b"NICK 9lives\r\n",
    "irc: USER with two parameters": b"USER alice 0\r\n",
    "irc: PASS alone": b"PASS secret\r\nQUIT\r\n",
    "irc: WEBIRC without an address": b"WEBIRC secret kiwiirc host\r\nNICK alice\r\n",
    # first lines of SMTP, POP3, FTP, IMAP and other line protocols that start with a Redis command word
    "redis: SMTP AUTH PLAIN": b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    "redis: SMTP AUTH LOGIN": b"AUTH LOGIN\r\n",
    "redis: FTP AUTH TLS": b"AUTH TLS\r\n",
    "redis: POP3 AUTH": b"AUTH\r\n",
    "redis: POP3/SMTP/FTP QUIT": b"QUIT\r\n",
    "redis: FTP TYPE": b"TYPE I\r\n",
    "redis: POP3 CAPA": b"CAPA\r\n",
    "redis: POP3/FTP USER": b"USER alice\r\n",
    "redis: SMTP NOOP": b"NOOP\r\n",
    "redis: inline AUTH is ambiguous": b"AUTH secret\r\n",
    "redis: beanstalkd watch": b"watch jobs\r\n",
    "redis: ZooKeeper dump": b"dump\r\n",
    "redis: SIP PUBLISH": b"PUBLISH sip:alice@example.test SIP/2.0\r\n",
    "redis: a command that needs arguments, alone": b"MOVE\r\n",
    "redis: STOMP SUBSCRIBE frame": b"SUBSCRIBE\nid:0\ndestination:/queue/a\n\n\x00",
    "dns: UPDATE with two zones": dns_message(0x2800, (2, 0, 0, 0), ZONE_SOA + ZONE_SOA),
    "dns: UPDATE zone of type A": dns_message(0x2800, (1, 0, 0, 0), ZONE_SOA[:-4] + struct.pack(">HH", 1, 1)),
    "dns: UPDATE with a record missing": dns_message(0x2800, (1, 0, 2, 0), ZONE_SOA + DELETE_RRSET),
    "dns: UPDATE response": dns_message(0xA800, (1, 0, 0, 0), ZONE_SOA),
    "dns: NOTIFY with authority records": dns_message(0x2400, (1, 0, 1, 0), ZONE_SOA + DELETE_RRSET),
    "dns: opcode 2 (STATUS)": dns_message(0x1000, (1, 0, 0, 0), ZONE_SOA),
    "dns: no question and no OPT": dns_message(0x0100, (0, 0, 0, 0), bytes(6)),
    "dns: UPDATE without a zone": dns_message(0x2800, (0, 0, 0, 1), b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)),
    "adb: empty message then garbage": bytes(20) + b"\xff\xff\xff\xffXXXX" + bytes(20),
    "adb: empty message with a payload length": bytes(12) + b"\x05\x00\x00\x00" + bytes(4) + b"\xff" * 4,
    "rdp: token line without CRLF": rdp_request(b"tsv://MS Terminal Services Plugin.1.Sales\n", 0x01),
    "rdp: token line with a control byte": rdp_request(b"tsv://MS\x07Plugin\r\n", 0x01),
    "rdp: empty token line": rdp_request(b"\r\n", 0x01),
    "xmpp: BOM then html": b"\xef\xbb\xbf<html>",
    "openvpn: tls-auth HMAC of 40 bytes": bytes.fromhex("003e38")
    + bytes(8)
    + bytes(40)
    + bytes.fromhex("00000001 5f000000")
    + bytes(5),
}


# Bytes that are the protocol even though they look unusual.
TRICKY_MATCHES: dict[str, tuple[bytes, str]] = {
    "ssh: 1.99 banner": (b"SSH-1.99-OpenSSH_3.9p1\r\n", "ssh"),
    "ssh: 1.5 banner": (b"SSH-1.5-PuTTY_Release_0.60\r\n", "ssh"),
    "redis: upper-case inline GET": (b"GET session\r\n", "redis"),
    "memcached: lower-case get": (b"get session\r\n", "memcached"),
    "http: OPTIONS is HTTP with HTTP/1.1": (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "http"),
    "rtsp: OPTIONS is RTSP with RTSP/1.0": (b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n", "rtsp"),
    "http: CONNECT with a space": (b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", "http"),
    "stomp: CONNECT alone on its line": (b"CONNECT\naccept-version:1.2\nhost:a.example\n\n\x00", "stomp"),
    "socks5: pipelined CONNECT": (b"\x05\x01\x00\x05\x01\x00\x03\x09a.example\x01\xbb", "socks5"),
    # the greeting is a complete first message: it decides whatever follows in the same read
    "socks5: greeting then other bytes": (b"\x05\x02\x00\x02ABCDEF", "socks5"),
    "socks5: greeting then half a request": (b"\x05\x01\x00\x05\x01\x00\x03\x09a.ex", "socks5"),
    "proxy: v1 UNKNOWN": (b"PROXY UNKNOWN\r\n", "proxy"),
    "proxy: v1 TCP6": (b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n", "proxy"),
    "syslog: octet-counted BSD": (b"34 <13>Jan  5 02:30:01 host app: x", "syslog"),
    "syslog: Cisco ASA, year and colon": (b"<166>Jan 01 2024 12:00:00: %ASA-6-302013: Built\n", "syslog"),
    "syslog: zero-padded day, milliseconds": (b"<14>Mar 05 09:00:00.123 edge01 app: x\n", "syslog"),
    "syslog: rsyslog forward format": (b"<13>2024-05-01T12:00:00.123456+02:00 web1 nginx[42]: up\n", "syslog"),
    "irc: PASS then NICK": (b"PASS secret\r\nNICK alice\r\nUSER alice 0 * :A\r\n", "irc"),
    "irc: WEBIRC from a web gateway": (
        b"WEBIRC secret kiwiirc client.example.test 2001:db8::7 :secure\r\nNICK alice\r\nUSER alice 0 * :A\r\n",
        "irc",
    ),
    "dns: IXFR with SOA in authority": (ixfr_query(), "dns"),
    "smb: NetBIOS session request (port 139)": (netbios_session_request(), "smb"),
    "stomp: 1.0 CONNECT with login only": (b"CONNECT\nlogin:alice\npasscode:secret\n\n\x00", "stomp"),
    "stomp: 1.0 CONNECT without headers": (b"CONNECT\r\n\r\n\x00", "stomp"),
    "amqp: 0-8 as py-amqplib sends it": (b"AMQP\x01\x01\x09\x01", "amqp"),
    "amqp: 0-10 (Qpid)": (b"AMQP\x01\x01\x00\x0a", "amqp"),
    "rdp: user name in the ANSI code page": (rdp_request(b"Cookie: mstshash=Jos\xe9\r\n", 0x03), "rdp"),
    "rdp: empty mstshash cookie": (rdp_request(b"Cookie: mstshash=\r\n", 0x01), "rdp"),
    "socks5: methods 1-4 (sslh's test greeting)": (b"\x05\x04\x01\x02\x03\x04", "socks5"),
    "socks5: four methods, a request and its data in one write (scanners)": (
        b"\x05\x04\x00\x01\x02\x80\x05\x01\x00\x03\x0bexample.net\x00\x50GET / HTTP/1.0\r\n\r\n",
        "socks5",
    ),
    "redis: lower-case inline ping": (b"ping\r\n", "redis"),
    "redis: inline INFO": (b"INFO replication\r\n", "redis"),
    "redis: AUTH as a RESP array": (b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", "redis"),
    "dns: UPDATE with prerequisite and delete": (
        dns_message(0x2800, (1, 1, 1, 0), ZONE_SOA + PREREQUISITE + DELETE_RRSET),
        "dns",
    ),
    "dns: NOTIFY from a primary (AA set)": (dns_message(0x2400, (1, 0, 0, 0), ZONE_SOA), "dns"),
    "rdp: routing token line and no negotiation request": (
        rdp_request(b"tsv://MS Terminal Services Plugin.1.A\r\n"),
        "rdp",
    ),
    "xmpp: UTF-8 byte order mark": (
        b"\xef\xbb\xbf<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='a'>",
        "xmpp",
    ),
}
