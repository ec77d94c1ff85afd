"""``python tests/support/slow_start.py METHOD run -c CONFIG``: ``passthru run`` with a pause of
one second right after the first call of ``Service.METHOD`` returns, announced on stdout as
``paused``. It opens a window in start-up that is otherwise a few milliseconds wide, so that a
test can make something happen inside it every time (a signal, an edit of the config). Use it as
``PassthruProcess(..., launcher=slow_start("sync_listeners"))``. It imports only ``passthru``:
it runs as a script, from the test's directory."""

from __future__ import annotations

import sys
import time

from passthru.cli import main
from passthru.server.acceptor import Acceptor
from passthru.server.service import Service

CLASSES = {"Service": Service, "Acceptor": Acceptor}

PAUSE_SECONDS = 1.0


def pause_after(name: str) -> None:
    """``name``: a method of ``Service``, or ``Class.method`` of one of ``CLASSES``."""
    owner, _, name = name.rpartition(".")
    cls = CLASSES[owner or "Service"]
    original = getattr(cls, name)
    calls = []

    def paused(self: object, *args: object, **kwargs: object) -> object:
        result = original(self, *args, **kwargs)
        if not calls:
            calls.append(name)
            print("paused", flush=True)
            time.sleep(PAUSE_SECONDS)
        return result

    setattr(cls, name, paused)


def slow_start(method: str) -> tuple[str, ...]:
    """The launcher of a Passthru that pauses after ``Service.<method>`` (see the module's doc)."""
    return (sys.executable, __file__, method)


if __name__ == "__main__":
    pause_after(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
