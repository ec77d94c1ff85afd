"""Raise the open-files soft limit to the hard limit at start, as HAProxy does: each relayed
connection holds two sockets (and, while bytes are in flight, a pipe pair)."""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("passthru.server")


def raise_open_files_limit() -> int:
    """Lift RLIMIT_NOFILE's soft limit to its hard limit; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
    log.info("open-files limit: %d (about %d relayed connections)", soft, soft // 2)
    return soft
