"""Run fuzz inputs (crash files, corpus files) through the targets in plain Python, no atheris:

    python tests/fuzz/replay.py crash-1234abcd [more files or directories ...]

Prints the target, how the bytes were cut and the payload of each, then what went wrong (with
the traceback), or ``ok``. Exit status 1 when any input fails.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fuzz.harness import cuts, run, split  # noqa: E402


def replay(path: Path) -> bool:
    data = path.read_bytes()
    target, seed, payload = split(data)
    print(f"{path}: target {target}, reads ending at {cuts(seed, len(payload))}, payload {payload!r}")
    try:
        run(data)
    except Exception:
        traceback.print_exc()
        return False
    print("ok")
    return True


def main(arguments: list[str]) -> int:
    if not arguments:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    files = [f for a in map(Path, arguments) for f in (sorted(a.iterdir()) if a.is_dir() else [a])]
    failed = [f for f in files if not replay(f)]
    print(f"{len(files)} inputs, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
