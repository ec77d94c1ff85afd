"""The one log line per finished connection, as text (key=value) or JSON."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger("passthru.connection")


@dataclass
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


def emit(record: ConnectionRecord, fmt: str) -> None:
    log.info(record.as_json() if fmt == "json" else record.as_text())
