"""Dropping root once the listen sockets are bound (``user:`` / ``group:`` in the config).

Like nginx, the supervisor keeps the user it was started as (it forks workers, which bind the
listen addresses themselves with SO_REUSEPORT); each serving process binds, then drops. A
listen address below 1024 added by a later reload can then no longer be bound: it needs a
restart (or the ``CAP_NET_BIND_SERVICE`` capability on the binary). Dropping is all or nothing:
supplementary groups, group, then user; a failure stops the process rather than serving as root.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd

log = logging.getLogger("passthru.server")


def resolve(user: str | None, group: str | None) -> tuple[int, int] | None:
    """``(uid, gid)`` for the configured names; the user's primary group when no group is given."""
    if user is None and group is None:
        return None
    entry = pwd.getpwuid(int(user)) if user is not None and user.isdigit() else pwd.getpwnam(user) if user else None
    uid = entry.pw_uid if entry is not None else os.getuid()
    if group is not None:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    else:
        gid = entry.pw_gid if entry is not None else os.getgid()
    return uid, gid


def drop_privileges(user: str | None, group: str | None) -> bool:
    """Switch this process to ``user``/``group``; True when it did. A non-root process cannot
    switch: it says so and goes on as it is (useful for running the same config unprivileged)."""
    ids = resolve(user, group)
    if ids is None:
        return False
    uid, gid = ids
    if os.geteuid() != 0:
        if (uid, gid) != (os.geteuid(), os.getegid()):
            log.warning(
                "not running as root: staying uid %d gid %d (config asks for %s)", os.geteuid(), os.getegid(), ids
            )
        return False
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:  # pragma: no cover - the kernel refused silently
        raise SystemExit("could not drop privileges")
    log.info("dropped privileges to uid %d gid %d", uid, gid)
    return True
