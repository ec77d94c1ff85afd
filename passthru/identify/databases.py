"""Databases and caches whose client speaks first: PostgreSQL, Redis, MongoDB, Memcached.

``postgres``: the first message of the frontend protocol -- a StartupMessage for protocol 3.x
with NUL-terminated parameter pairs ending in an empty name and filling the declared length
exactly, ``user`` among them; or an SSLRequest, GSSENCRequest (8 bytes) or CancelRequest (16
bytes and up, for 3.2's longer keys). Reports ``request`` (startup/ssl/gssenc/cancel) and, for a
startup, ``user``, ``database``, ``application_name`` and ``protocol``.

``redis``: a RESP array ``*N\r\n$L\r\nNAME\r\n`` whose first element is a known command (or
a module command ``NS.CMD``) -- what every Redis client library and ``redis-cli`` send -- or an
inline command line (``PING\r\n``, typed into telnet or sent by ``nc`` health checks) starting
with a known command, but only where the line cannot be another text protocol's first line:

* not a word other line protocols' clients also send first: ``AUTH`` (SMTP, POP3, FTP
  ``AUTH TLS``), ``QUIT`` (all of them), ``TYPE`` (FTP), in any case; and not the lower-case
  verbs of lower-case protocols: Memcached's (``get k``, ``touch``, its commands are
  case-sensitive), beanstalkd's ``watch``, ZooKeeper's four-letter ``dump``, Gearman's admin
  ``shutdown``;
* not a line ending like a request line of another protocol (``GET / HTTP/1.1``, SIP's
  ``... SIP/2.0``, HTTP/0.9's ``GET /path``), and ASCII only;
* not a command that needs arguments standing alone (``MOVE``, ``LCS``: Redis refuses them).

So ``AUTH secret`` or ``QUIT`` typed into telnet are left to the other identifiers (a Redis
client library sends them as RESP arrays, which are claimed). Reports ``command`` (upper case)
and ``format`` (resp/inline).

``mongodb``: a wire-protocol message header (length 17 B..1 MiB, since a connection opens with
the small handshake; responseTo 0) with OP_MSG (2013: only defined flag bits, exactly one body
section, every BSON document well formed and filling its section) or OP_QUERY (2004, the
legacy opcode older drivers and the 3.x shell still open with: flags of bits 1-7 only, a
``db.collection`` name, a well-formed query document and optional field selector filling the
message). Reports ``opcode``, ``command`` (the body's first key, e.g. ``hello``/``isMaster``; for an
OP_QUERY on ``db.$cmd`` wrapped as ``{$query: {...}, $readPreference: ...}`` the wrapped
command; ``find`` for a legacy query on a collection, also reported as ``collection``) and
``database``.

``memcached``: one text-protocol command line (``get``, ``set``, ``stats``, ``version``, meta
commands, ...) with the verb's argument syntax checked (keys up to 250 bytes, no control
characters; numeric fields numeric), or a binary-protocol request (``memcached_binary.py``).
Reports ``command``, ``key`` and ``format`` (text/binary).
"""

from __future__ import annotations

import re

from passthru.identify.base import DEFAULT_PRECEDENCE, GENERIC_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.incremental import LineScanner, Resumable
from passthru.identify.memcached_binary import REQUEST_MAGIC, parse_binary_request
from passthru.identify.parsing import (
    Malformed,
    Reader,
    Truncated,
    ascii_text,
    decimal,
    is_printable_ascii,
    peek_u8,
    prefix_of_any,
    read_crlf_line,
    read_line,
    verdict_of,
)

# ---------------------------------------------------------------------------------- PostgreSQL
PG_MAX_STARTUP = 10000  # MAX_STARTUP_PACKET_LENGTH in the server
PG_SPECIAL = {80877103: ("ssl", 8, 8), 80877104: ("gssenc", 8, 8), 80877102: ("cancel", 16, 12 + 256)}
PG_REPORTED = (b"user", b"database", b"application_name")
PG_MAX_MINOR = 2


def parse_postgres(data: bytes) -> Fields:
    message = Reader(data)
    message.expect_zero(2)  # the length is at most 10000
    length = message.u16()
    if length < 8:
        raise Malformed("message shorter than its header")
    code = message.u32()
    if code in PG_SPECIAL:
        request, shortest, longest = PG_SPECIAL[code]
        if not shortest <= length <= longest:
            raise Malformed("request of the wrong length")
        message.skip(length - 8)
        return {"request": request}
    if code >> 16 != 3 or code & 0xFFFF > PG_MAX_MINOR:
        raise Malformed("not protocol 3.x")
    body = Reader(data, 8, length)
    fields: Fields = {"request": "startup", "protocol": f"3.{code & 0xFFFF}"}
    names: set[bytes] = set()
    while True:
        name = body.cstring(PG_MAX_STARTUP)
        if not name:
            body.finish()
            break
        value = body.cstring(PG_MAX_STARTUP)
        if name in names or not is_printable_ascii(name):
            raise Malformed("bad or repeated startup parameter name")
        names.add(name)
        if name in PG_REPORTED:
            fields[name.decode()] = value.decode("utf-8", "replace")
    if b"user" not in names:
        raise Malformed("startup message without user")
    return fields


POSTGRES = Identifier(
    trusted=True,
    name="postgres",
    identify=verdict_of(parse_postgres),
    precedence=DEFAULT_PRECEDENCE,
    # sni/alpn come from the ClientHello behind an SSLRequest, read by the server when a route
    # needs them (passthru/server/pgwire.py), not from these bytes
    fields={
        "request": TEXT,
        "user": TEXT,
        "database": TEXT,
        "application_name": TEXT,
        "protocol": TEXT,
        "sni": HOST,
        "alpn": TEXT,
    },
    description="PostgreSQL StartupMessage (protocol 3.x, parameters incl. user) or SSL/GSSENC/Cancel request",
)

# ------------------------------------------------------------------------------------- Redis
REDIS_COMMANDS = frozenset(
    b"""
    ACL APPEND ASKING AUTH BGREWRITEAOF BGSAVE BITCOUNT BITFIELD BITFIELD_RO BITOP BITPOS BLMOVE
    BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN CLIENT CLUSTER COMMAND CONFIG COPY DBSIZE
    DEBUG DECR DECRBY DEL DISCARD DUMP ECHO EVAL EVALSHA EVALSHA_RO EVAL_RO EXEC EXISTS EXPIRE
    EXPIREAT EXPIRETIME FAILOVER FCALL FCALL_RO FLUSHALL FLUSHDB FUNCTION GEOADD GEODIST GEOHASH
    GEOPOS GEORADIUS GEORADIUSBYMEMBER GEORADIUSBYMEMBER_RO GEORADIUS_RO GEOSEARCH GEOSEARCHSTORE GET
    GETBIT GETDEL GETEX GETRANGE GETSET HDEL HELLO HEXISTS HEXPIRE HEXPIREAT HEXPIRETIME HGET HGETALL
    HGETDEL HGETEX HINCRBY HINCRBYFLOAT HKEYS HLEN HMGET HMSET HPERSIST HPEXPIRE HPEXPIREAT
    HPEXPIRETIME HPTTL HRANDFIELD HSCAN HSET HSETEX HSETNX HSTRLEN HTTL HVALS INCR INCRBY INCRBYFLOAT
    INFO KEYS LASTSAVE LATENCY LCS LINDEX LINSERT LLEN LMOVE LMPOP LOLWUT LPOP LPOS LPUSH LPUSHX
    LRANGE LREM LSET LTRIM MEMORY MGET MIGRATE MODULE MONITOR MOVE MSET MSETNX MULTI OBJECT PERSIST
    PEXPIRE PEXPIREAT PEXPIRETIME PFADD PFCOUNT PFDEBUG PFMERGE PFSELFTEST PING PSETEX PSUBSCRIBE
    PSYNC PTTL PUBLISH PUBSUB PUNSUBSCRIBE QUIT RANDOMKEY READONLY READWRITE RENAME RENAMENX REPLCONF
    REPLICAOF RESET RESTORE RESTORE-ASKING ROLE RPOP RPOPLPUSH RPUSH RPUSHX SADD SAVE SCAN SCARD
    SCRIPT SDIFF SDIFFSTORE SELECT SENTINEL SET SETBIT SETEX SETNX SETRANGE SHUTDOWN SINTER
    SINTERCARD SINTERSTORE SISMEMBER SLAVEOF SLOWLOG SMEMBERS SMISMEMBER SMOVE SORT SORT_RO SPOP
    SPUBLISH SRANDMEMBER SREM SSCAN SSUBSCRIBE STRLEN SUBSCRIBE SUBSTR SUNION SUNIONSTORE
    SUNSUBSCRIBE SWAPDB SYNC TIME TOUCH TTL TYPE UNLINK UNSUBSCRIBE UNWATCH WAIT WAITAOF WATCH XACK
    XADD XAUTOCLAIM XCLAIM XDEL XGROUP XINFO XLEN XPENDING XRANGE XREAD XREADGROUP XREVRANGE XSETID
    XTRIM ZADD ZCARD ZCOUNT ZDIFF ZDIFFSTORE ZINCRBY ZINTER ZINTERCARD ZINTERSTORE ZLEXCOUNT ZMPOP
    ZMSCORE ZPOPMAX ZPOPMIN ZRANDMEMBER ZRANGE ZRANGEBYLEX ZRANGEBYSCORE ZRANGESTORE ZRANK ZREM
    ZREMRANGEBYLEX ZREMRANGEBYRANK ZREMRANGEBYSCORE ZREVRANGE ZREVRANGEBYLEX ZREVRANGEBYSCORE ZREVRANK
    ZSCAN ZSCORE ZUNION ZUNIONSTORE
    """.split()
)
MODULE_COMMAND = re.compile(rb"[A-Za-z]{1,16}\.[A-Za-z][A-Za-z._]{0,31}")
REDIS_MAX_ARGS = 1024 * 1024
REDIS_MAX_NAME = 64
REDIS_MAX_INLINE = 64 * 1024
INLINE_WORD = re.compile(rb"[A-Za-z_-]*")
OTHER_PROTOCOL_VERSION = re.compile(rb".* [A-Z]{2,8}/[0-9]\.[0-9]")  # GET / HTTP/1.1, ... RTSP/1.0
HTTP09 = re.compile(rb"(GET|COPY|MOVE) /", re.IGNORECASE)  # an HTTP/0.9 request line, not Redis's GET of a key "/..."

# Memcached's text protocol verbs (case-sensitive, lower case).
MEMCACHED_VERBS = frozenset(
    b"get gets gat gats set add replace append prepend cas incr decr delete touch stats version "
    b"verbosity flush_all mg ms md ma mn me".split()
)
# Redis commands that other line protocols' clients send as their first line: never claimed inline.
SHARED_WORDS = frozenset(b"AUTH QUIT TYPE".split())  # SMTP/POP3/FTP AUTH, everyone's QUIT, FTP TYPE
# Commands Redis runs without arguments (arity -1 or 1); any other alone on a line is refused by
# Redis itself, so such a line ("MOVE", "LCS") is no Redis client's.
WITHOUT_ARGUMENTS = frozenset(
    b"""
    ASKING BGREWRITEAOF BGSAVE COMMAND DBSIZE DISCARD EXEC FAILOVER FLUSHALL FLUSHDB HELLO INFO
    LASTSAVE LOLWUT MONITOR MULTI PING PUNSUBSCRIBE RANDOMKEY READONLY READWRITE RESET
    ROLE SAVE SHUTDOWN SUNSUBSCRIBE SYNC TIME UNSUBSCRIBE UNWATCH
    """.split()
)
# Lower-case verbs of lower-case line protocols that are also Redis commands.
LOWER_CASE_VERBS = MEMCACHED_VERBS | frozenset(b"watch dump shutdown".split())  # beanstalkd, ZooKeeper, Gearman


def redis_command(name: bytes) -> str:
    upper = name.upper()
    if upper not in REDIS_COMMANDS and MODULE_COMMAND.fullmatch(name) is None:
        raise Malformed("unknown Redis command")
    return upper.decode("ascii")


class RedisCommand(Resumable):
    """A RESP array or an inline command; the search for the inline line's end resumes where it
    stopped (``incremental``), since an inline line may be 64 KiB long."""

    def __init__(self) -> None:
        super().__init__()
        self.lines = LineScanner()

    @property
    def examined(self) -> int:
        return self.lines.examined

    def parse(self, data: bytes) -> Fields:
        if data[:1] == b"*":
            return parse_resp(data)
        return parse_inline(data, self.lines)


def parse_resp(data: bytes) -> Fields:
    count_line, offset = read_crlf_line(data, 0, 12)
    decimal(count_line[1:], REDIS_MAX_ARGS, 1)
    if peek_u8(data, offset) != ord("$"):
        raise Malformed("array element is not a bulk string")
    size_line, offset = read_crlf_line(data, offset, 5)
    size = decimal(size_line[1:], REDIS_MAX_NAME, 1)
    element = Reader(data, offset)
    name = element.take(size)
    element.expect(b"\r\n")
    return {"command": redis_command(name), "format": "resp"}


def parse_inline(data: bytes, lines: LineScanner) -> Fields:
    word = INLINE_WORD.match(data).group(0)  # type: ignore[union-attr]
    end = len(word)
    upper = word.upper()
    if end == len(data):
        if not prefix_of_any(upper, REDIS_COMMANDS):
            raise Malformed("not the start of a Redis command")
        raise Truncated(len(data) + 1)
    after = data[end]
    if after not in b" \r\n":
        raise Malformed("inline command is not a word")
    # Decided by the word alone, before waiting for the line end: "no match" must not turn into
    # "need more" when a CR or a space follows an unknown word (found by tests/fuzz/).
    if upper not in REDIS_COMMANDS or upper in SHARED_WORDS:
        raise Malformed("not a Redis command, or one other text protocols share")
    if word in LOWER_CASE_VERBS:
        raise Malformed("a lower-case verb of another line protocol")
    if after != 0x20 and upper not in WITHOUT_ARGUMENTS:
        raise Malformed("a Redis command that needs arguments, alone on its line")
    line = lines.next(data, REDIS_MAX_INLINE)
    if OTHER_PROTOCOL_VERSION.fullmatch(line) or HTTP09.match(line) or not line.isascii():
        raise Malformed("a line of another text protocol")
    return {"command": upper.decode("ascii"), "format": "inline"}


REDIS = Identifier(
    trusted=True,
    name="redis",
    identify=RedisCommand.once,
    session=RedisCommand,
    precedence=DEFAULT_PRECEDENCE,
    fields={"command": TEXT, "format": TEXT},
    description=(
        "Redis RESP array whose first bulk string is a known command, or an inline command line no other "
        "text protocol could send (not AUTH/QUIT/TYPE, not a lower-case Memcached verb)"
    ),
)

# ----------------------------------------------------------------------------------- MongoDB
OP_MSG, OP_QUERY = 2013, 2004
MONGO_MAX_MESSAGE = 1024 * 1024  # the first message is the handshake (hello/isMaster): small
OP_MSG_FLAGS = 0x00010003  # checksumPresent, moreToCome, exhaustAllowed
OP_QUERY_FLAGS = 0xFE  # bits 1..7; bit 0 is reserved
BSON_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}
BSON_STRINGS = (0x02, 0x0D, 0x0E)
BSON_MAX_DEPTH = 32


def bson_document(reader: Reader, depth: int = 0) -> list[tuple[bytes, int, bytes]]:
    """Walk one BSON document; (key, type, value) for its top-level elements, the value being
    a string's bytes or a sub-document's first key (empty for other types)."""
    if depth > BSON_MAX_DEPTH:
        raise Malformed("BSON nested too deeply")
    document = sized(reader, 5)
    elements: list[tuple[bytes, int, bytes]] = []
    while True:
        kind = document.u8()
        if kind == 0:
            document.finish()
            return elements
        key = document.cstring()
        value = b""
        if kind in BSON_FIXED:
            document.skip(BSON_FIXED[kind])
        elif kind in BSON_STRINGS:
            value = bson_string(document)
        elif kind in (0x03, 0x04):
            nested = bson_document(document, depth + 1)
            value = nested[0][0] if nested else b""  # a sub-document's first key ($query's command)
        elif kind == 0x05:
            size = document.u32le()
            document.skip(1 + size)
        elif kind == 0x0B:
            document.cstring()
            document.cstring()
        elif kind == 0x0C:
            bson_string(document)
            document.skip(12)
        elif kind == 0x0F:
            scope = sized(document, 14)
            bson_string(scope)
            bson_document(scope, depth + 1)
            scope.finish()
        elif kind not in (0x7F, 0xFF):
            raise Malformed("unknown BSON element type")
        elements.append((key, kind, value))


def sized(reader: Reader, minimum: int) -> Reader:
    """A structure that starts with its own little-endian 32-bit length (BSON, OP_MSG sections)."""
    length = reader.u32le()
    if length < minimum:
        raise Malformed("length shorter than the structure's minimum")
    return reader.sub(length - 4)


def bson_string(reader: Reader) -> bytes:
    size = reader.u32le()
    if size < 1:
        raise Malformed("BSON string without its terminator")
    value = reader.take(size)
    if value[-1:] != b"\0":
        raise Malformed("BSON string not NUL-terminated")
    return value[:-1]


def command_fields(elements: list[tuple[bytes, int, bytes]]) -> Fields:
    if not elements:
        raise Malformed("empty command document")
    fields: Fields = {"command": elements[0][0].decode("utf-8", "replace")}
    for key, kind, value in elements:
        if key == b"$db" and kind == 0x02:
            fields["database"] = value.decode("utf-8", "replace")
    return fields


def parse_mongodb(data: bytes) -> Fields:
    header = Reader(data)
    length = header.u32le()
    if not 16 < length <= MONGO_MAX_MESSAGE:
        raise Malformed("message length out of range")
    header.skip(4)  # requestID
    header.expect_zero(4)  # responseTo: a request answers nothing
    opcode = header.u32le()
    body = Reader(data, 16, length)
    if opcode == OP_MSG:
        return op_msg(body)
    if opcode == OP_QUERY:
        return op_query(body)
    raise Malformed("not OP_MSG or OP_QUERY")


def op_msg(body: Reader) -> Fields:
    flags = body.u32le()
    if flags & ~OP_MSG_FLAGS:
        raise Malformed("undefined OP_MSG flag bits")
    end = body.end - (4 if flags & 1 else 0) if body.end is not None else None
    sections = Reader(body.data, body.pos, end)
    fields: Fields | None = None
    while sections.remaining:
        kind = sections.u8()
        if kind == 0:
            if fields is not None:
                raise Malformed("two body sections")
            fields = command_fields(bson_document(sections))
        elif kind == 1:
            sequence = sized(sections, 5)
            sequence.cstring()
            while sequence.remaining:
                bson_document(sequence)
        else:
            raise Malformed("unknown OP_MSG section kind")
    if fields is None:
        raise Malformed("OP_MSG without a body section")
    body.skip(body.remaining)
    return {"opcode": "OP_MSG", **fields}


def op_query(body: Reader) -> Fields:
    flags = body.u32le()
    if flags & ~OP_QUERY_FLAGS:
        raise Malformed("undefined OP_QUERY flag bits")
    collection = ascii_text(body.cstring(), allow=b"")
    database, _, collection_name = collection.partition(".")
    if not database or not collection_name:
        raise Malformed("collection name is not db.collection")
    body.skip(8)  # numberToSkip, numberToReturn
    elements = bson_document(body)
    if body.remaining:
        bson_document(body)  # returnFieldsSelector
    body.finish()
    if collection_name != "$cmd":  # a legacy find on a collection, not a command
        return {"opcode": "OP_QUERY", "command": "find", "database": database, "collection": collection_name}
    fields = command_fields(elements)
    if elements[0][0] in (b"$query", b"query") and elements[0][1] == 0x03 and elements[0][2]:
        fields["command"] = elements[0][2].decode("utf-8", "replace")  # {$query: {cmd}, $readPreference}
    return {"opcode": "OP_QUERY", **fields, "database": database}


MONGODB = Identifier(
    trusted=True,
    name="mongodb",
    identify=verdict_of(parse_mongodb),
    precedence=DEFAULT_PRECEDENCE,
    fields={"opcode": TEXT, "command": TEXT, "database": TEXT, "collection": TEXT},
    description="MongoDB wire message: OP_MSG or OP_QUERY, responseTo 0, well-formed BSON filling the message",
)

# --------------------------------------------------------------------------------- Memcached
KEY = rb"[\x21-\x7e\x80-\xff]{1,250}"
NUM = rb"[0-9]{1,20}"
SIGNED = rb"-?[0-9]{1,20}"
NOREPLY = rb"(?: noreply)?"
META_FLAGS = rb"(?: [A-Za-z][\x21-\x7e]*)*"
MEMCACHED_SYNTAX = {
    b"get": rb"get( " + KEY + rb")+",
    b"gets": rb"gets( " + KEY + rb")+",
    b"gat": rb"gat " + SIGNED + rb"( " + KEY + rb")+",
    b"gats": rb"gats " + SIGNED + rb"( " + KEY + rb")+",
    b"set": rb"set " + KEY + rb" " + NUM + rb" " + SIGNED + rb" " + NUM + NOREPLY,
    b"add": rb"add " + KEY + rb" " + NUM + rb" " + SIGNED + rb" " + NUM + NOREPLY,
    b"replace": rb"replace " + KEY + rb" " + NUM + rb" " + SIGNED + rb" " + NUM + NOREPLY,
    b"append": rb"append " + KEY + rb" " + NUM + rb" " + SIGNED + rb" " + NUM + NOREPLY,
    b"prepend": rb"prepend " + KEY + rb" " + NUM + rb" " + SIGNED + rb" " + NUM + NOREPLY,
    b"cas": rb"cas " + KEY + rb" " + NUM + rb" " + SIGNED + rb" " + NUM + rb" " + NUM + NOREPLY,
    b"incr": rb"incr " + KEY + rb" " + NUM + NOREPLY,
    b"decr": rb"decr " + KEY + rb" " + NUM + NOREPLY,
    b"delete": rb"delete " + KEY + rb"(?: 0)?" + NOREPLY,
    b"touch": rb"touch " + KEY + rb" " + SIGNED + NOREPLY,
    b"stats": rb"stats(?: [a-z_]+(?: [0-9a-z_]+)*)?",
    b"version": rb"version",
    b"verbosity": rb"verbosity " + NUM + NOREPLY,
    b"flush_all": rb"flush_all(?: " + SIGNED + rb")?" + NOREPLY,
    b"mg": rb"mg " + KEY + META_FLAGS,
    b"ms": rb"ms " + KEY + rb" " + NUM + META_FLAGS,
    b"md": rb"md " + KEY + META_FLAGS,
    b"ma": rb"ma " + KEY + META_FLAGS,
    b"mn": rb"mn",
    b"me": rb"me " + KEY,
}
MEMCACHED_PATTERNS = {verb: re.compile(pattern) for verb, pattern in MEMCACHED_SYNTAX.items()}
MEMCACHED_MAX_LINE = 2048


def parse_memcached(data: bytes) -> Fields:
    if peek_u8(data, 0) == REQUEST_MAGIC:
        return parse_binary_request(data)
    verb = re.match(rb"[a-z_]*", data).group(0)  # type: ignore[union-attr]
    if len(verb) == len(data):
        if not prefix_of_any(verb, MEMCACHED_VERBS):
            raise Malformed("not the start of a Memcached verb")
        raise Truncated(len(data) + 1)
    pattern = MEMCACHED_PATTERNS.get(verb)
    if pattern is None or data[len(verb)] not in b" \r\n":
        raise Malformed("unknown Memcached verb")
    line, _ = read_line(data, 0, MEMCACHED_MAX_LINE)
    line = line.rstrip(b" ")  # the server ignores empty tokens; libmemcached sends "flush_all \r\n"
    if pattern.fullmatch(line) is None:
        raise Malformed("bad arguments for the verb")
    fields: Fields = {"command": verb.decode(), "format": "text"}
    arguments = line.split(b" ")
    if verb not in (b"stats", b"version", b"verbosity", b"flush_all", b"mn"):
        key = arguments[2] if verb in (b"gat", b"gats") else arguments[1]
        fields["key"] = key.decode("latin-1")
    return fields


MEMCACHED = Identifier(
    trusted=True,
    name="memcached",
    identify=verdict_of(parse_memcached),
    precedence=GENERIC_PRECEDENCE,
    fields={"command": TEXT, "key": TEXT, "format": TEXT},
    description=(
        "Memcached text protocol command line with the verb's argument syntax checked, or a binary protocol "
        "request header whose lengths fit its opcode"
    ),
)
