"""The one log line per finished connection, as text (key=value) or JSON."""

from __future__ import annotations

import json
import logging
import select
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

import gevent

log = logging.getLogger("passthru.connection")


@dataclass(slots=True)
class ConnectionRecord:
    """What an operator wants to know about a connection once it is over."""

    id: str
    client: str
    listener: str
    protocol: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    route: str | None = None
    upstream: str | None = None
    bytes_up: int = 0
    bytes_down: int = 0
    duration: float = 0.0
    ended: str = "closed"
    error: str | None = None

    def as_text(self) -> str:
        parts = [
            f"conn={self.id}",
            f"client={self.client}",
            f"listener={self.listener}",
            f"protocol={self.protocol or '-'}",
        ]
        if self.fields:
            parts.append("fields=" + json.dumps(self.fields, separators=(",", ":"), sort_keys=True, default=str))
        parts += [
            f"route={self.route or '-'}",
            f"upstream={self.upstream or '-'}",
            f"up={self.bytes_up}",
            f"down={self.bytes_down}",
            f"duration={self.duration:.3f}s",
            f"end={self.ended}",
        ]
        if self.error:
            parts.append(f"error={json.dumps(self.error)}")
        return " ".join(parts)

    def as_json(self) -> str:
        record = asdict(self)
        record["duration"] = round(self.duration, 6)
        return json.dumps(record, separators=(",", ":"), default=str)


class ConnectionLog:
    """Writes the per-connection lines, batched: formatting is done per connection, but the
    write to stderr happens at most every ``FLUSH_SECONDS`` (or every ``BATCH_LINES`` lines), in
    chunks of whole lines no bigger than ``PIPE_BUF`` so that the lines of several worker
    processes sharing one pipe never interleave. A line per connection through ``logging``
    cost more than identifying the connection; batching keeps the log complete and cheap.
    The format of a line is the one ``logging`` gives every other line.
    """

    FLUSH_SECONDS = 0.2
    BATCH_LINES = 256

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.pending: list[str] = []
        self._flusher: gevent.Greenlet | None = None
        self._second = -1
        self._stamp = ""

    def write(self, record: ConnectionRecord, fmt: str) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        body = record.as_json() if fmt == "json" else record.as_text()
        self.pending.append(f"{self._stamp},{int(now % 1 * 1000):03d} INFO {log.name}: {body}\n")
        if len(self.pending) >= self.BATCH_LINES:
            self.flush()
        elif self._flusher is None:
            self._flusher = gevent.spawn_later(self.FLUSH_SECONDS, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flusher = None
        self.flush()

    def flush(self) -> None:
        lines, self.pending = self.pending, []
        if not lines:
            return
        stream = self.stream or sys.stderr
        chunk: list[str] = []
        size = 0
        for line in lines:
            if chunk and size + len(line) > select.PIPE_BUF:
                stream.write("".join(chunk))
                stream.flush()
                chunk, size = [], 0
            chunk.append(line)
            size += len(line)
        stream.write("".join(chunk))
        stream.flush()


#: The process's connection log (one per worker process).
CONNECTIONS = ConnectionLog()


def emit(record: ConnectionRecord, fmt: str) -> None:
    CONNECTIONS.write(record, fmt)
