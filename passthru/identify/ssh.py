"""SSH: the identification string ``SSH-protoversion-softwareversion [comments]`` (RFC 4253 4.2).

Protocol versions 2.0, 1.99 (a 2.0 server that also speaks 1.x) and 1.5 are SSH and route as
SSH. Reports ``version`` and ``software``.
"""

from __future__ import annotations

from passthru.identify.base import DEFAULT_PRECEDENCE, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, expect_one_of, is_printable_ascii, read_line, verdict_of

BANNERS = (b"SSH-2.0-", b"SSH-1.99-", b"SSH-1.5-")
MAX_BANNER = 255  # RFC 4253: at most 255 characters including CR LF


def parse_banner(data: bytes) -> Fields:
    prefix = expect_one_of(data, BANNERS)
    line, _ = read_line(data, 0, MAX_BANNER)
    software, _, _comments = line[len(prefix) :].partition(b" ")
    if not software or not is_printable_ascii(software, allow=b""):
        raise Malformed("empty or non-printable software version")
    return {"version": prefix[4:-1].decode(), "software": software.decode("ascii")}


SSH = Identifier(
    trusted=True,
    name="ssh",
    identify=verdict_of(parse_banner),
    precedence=DEFAULT_PRECEDENCE,
    fields={"version": TEXT, "software": TEXT},
    description="SSH identification string (2.0, 1.99, 1.5)",
)
