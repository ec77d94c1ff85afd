"""The operator's sections: ``admin:`` (plain address, or a mapping with who may see the status)
and ``capture:`` (samples of traffic nothing identified).

Self-contained on purpose: the loader calls :func:`admin` and :func:`capture`, and
:class:`~passthru.config.model.Config` carries what they return (``admin``, ``admin_access``,
``capture``). The old ``admin: 127.0.0.1:9901`` form keeps working unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from passthru.config.addresses import parse_endpoint, parse_network
from passthru.config.checker import Checker
from passthru.config.document import Node
from passthru.config.model import Endpoint, IPNetwork
from passthru.config.units import parse_count, parse_rate, parse_size

ADMIN_KEYS = ("address", "allow", "token_file")
CAPTURE_KEYS = ("dir", "when", "max_bytes", "max_files", "rate")
#: Why a connection's first bytes may be captured (``capture.when``).
CAPTURE_REASONS = ("unmatched", "timeout", "rejected")
MAX_CAPTURE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class AdminAccess:
    """Who may read ``/`` and ``/status.json`` (``/metrics`` and the probes stay open).

    Loopback clients always pass the address check, and so do clients in ``allow``; with
    ``token_file`` every client must also send ``Authorization: Bearer <the file's content>``.
    Without ``allow`` but with a token, any address may try the token.
    """

    allow: tuple[IPNetwork, ...] = ()
    token_file: Path | None = None


@dataclass(frozen=True)
class CaptureSettings:
    """``capture:``: write the first bytes of connections nothing identified to ``directory``."""

    directory: Path
    when: tuple[str, ...] = ("unmatched",)
    max_bytes: int = 4096
    max_files: int = 1000
    rate: tuple[int, float] = (10, 1.0)  # (count, period seconds), across all workers


def admin(check: Checker, node: Node | None, config_path: Path) -> tuple[Endpoint | None, AdminAccess]:
    """``admin: ADDRESS`` or ``admin: {address, allow, token_file}``; absent or null means off."""
    if node is None or node.value is None:
        return None, AdminAccess()
    if not node.is_mapping:
        return check.converted(node, parse_endpoint), AdminAccess()
    check.known_keys(node, ADMIN_KEYS, required=("address",))
    address_node, allow_node, token_node = (node.child(k) for k in ADMIN_KEYS)
    address = check.converted(address_node, parse_endpoint) if address_node else None
    allow = [check.converted(n, parse_network) for n in allow_node.as_list()] if allow_node else []
    token_file = None
    if token_node is not None:
        text = check.text(token_node, "a file holding the bearer token, e.g. /run/secrets/passthru-admin")
        token_file = _token_file(check, token_node, config_path.absolute().parent / text) if text else None
    return address, AdminAccess(tuple(n for n in allow if n is not None), token_file)


def _token_file(check: Checker, node: Node, path: Path) -> Path | None:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        check.error(node.pos, f"{node.where}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return None
    if len(token) < 16:
        check.error(node.pos, f"{node.where}: the token in {path} is too short: use at least 16 characters")
        return None
    return path


def capture(check: Checker, node: Node | None, config_path: Path) -> CaptureSettings | None:
    """``capture: {dir, when, max_bytes, max_files, rate}``; only ``dir`` is required."""
    if node is None or node.value is None:
        return None
    if not check.mapping(node, "{dir: captures/, when: [unmatched]}"):
        return None
    check.known_keys(node, CAPTURE_KEYS, required=("dir",))
    dir_node, when_node, bytes_node, files_node, rate_node = (node.child(k) for k in CAPTURE_KEYS)
    text = check.text(dir_node, "a directory, e.g. captures/") if dir_node else None
    defaults = CaptureSettings(Path())
    when = defaults.when
    if when_node is not None:
        chosen = [check.choice(n, CAPTURE_REASONS) for n in when_node.as_list()]
        when = tuple(dict.fromkeys(c for c in chosen if c))
        if not when_node.as_list():
            check.error(when_node.pos, f"{when_node.where} must name at least one of: {', '.join(CAPTURE_REASONS)}")
    max_bytes = check.converted(bytes_node, _sample_size) if bytes_node else defaults.max_bytes
    max_files = check.converted(files_node, parse_count) if files_node else defaults.max_files
    rate = check.converted(rate_node, parse_rate) if rate_node else defaults.rate
    if text is None or max_bytes is None or max_files is None or rate is None:
        return None
    return CaptureSettings(config_path.absolute().parent / text, when, max_bytes, max_files, rate)


def _sample_size(value: object) -> int:
    size = parse_size(value)
    if not 1 <= size <= MAX_CAPTURE_BYTES:
        raise ValueError(f"{value!r} is out of range: use a size between 1B and 1MiB")
    return size
