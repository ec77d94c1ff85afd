"""The Git protocol (``git://``, git-daemon): the first pkt-line of a request.

A 4-digit lower-case hex length (the pkt-line's own 4 bytes included, at most 65520), then
``git-upload-pack``, ``git-receive-pack`` or ``git-upload-archive``, a space, the repository
path, a NUL, and optionally ``host=HOST[:PORT]`` and NUL, then optional extra parameters
(``\\0version=2\\0``) -- exactly filling the pkt-line. Reports ``service``, ``path``, ``host``
and ``protocol`` (the ``version=`` extra parameter, when sent).
"""

from __future__ import annotations

import re

from passthru.identify.base import DEFAULT_PRECEDENCE, HOST, TEXT, Fields, Identifier
from passthru.identify.parsing import Malformed, Reader, ascii_text, split_authority, verdict_of

SERVICES = (b"git-upload-pack ", b"git-receive-pack ", b"git-upload-archive ")
MAX_PKT_LINE = 65520
HEX4 = re.compile(rb"[0-9a-f]{0,4}")
EXTRA_PARAMETER = re.compile(rb"[a-z][a-z0-9-]*(=[\x21-\x7e]*)?")


def parse_git(data: bytes) -> Fields:
    if len(HEX4.match(data[:4]).group(0)) < min(len(data), 4):  # type: ignore[union-attr]
        raise Malformed("pkt-line length is not lower-case hex")
    pkt = Reader(data)
    length = int(pkt.take(4), 16)
    if not 4 + len(SERVICES[0]) + 2 <= length <= MAX_PKT_LINE:
        raise Malformed("pkt-line length out of range")
    line = Reader(data, 4, length)
    service = line.expect_any(SERVICES)
    request = line.rest()
    if not request.endswith(b"\0"):
        raise Malformed("request does not end with NUL")
    path, *parameters = request[:-1].split(b"\0")
    fields: Fields = {"service": service[:-1].decode(), "path": ascii_text(path)}
    if parameters and parameters[0].startswith(b"host="):
        fields["host"] = split_authority(ascii_text(parameters.pop(0)[5:]))[0]
    if parameters:
        if parameters[0] != b"":
            raise Malformed("extra parameters must follow an empty field")
        for parameter in parameters[1:]:
            if EXTRA_PARAMETER.fullmatch(parameter) is None:
                raise Malformed("bad extra parameter")
            if parameter.startswith(b"version="):
                fields["protocol"] = parameter[8:].decode()
    return fields


GIT = Identifier(
    trusted=True,
    name="git",
    identify=verdict_of(parse_git),
    precedence=DEFAULT_PRECEDENCE,
    fields={"service": TEXT, "path": TEXT, "host": HOST, "protocol": TEXT},
    description="git:// request pkt-line: hex length, git-upload-pack/receive-pack/upload-archive, path, host",
)
