"""Choose a small kept corpus: the fewest inputs that together reach every branch (line-to-line
arc) of ``passthru`` that all the given inputs reach, plus one input per target at least.

    python tests/fuzz/minimize.py OUT_DIR INPUT_DIR [INPUT_DIR ...]

libFuzzer's ``-merge=1`` keeps an input for every new *feature*, and with atheris a feature
includes hit-count buckets, so it keeps thousands; branch coverage is what the corpus is for
(CI's short run starts from it, the replay test runs it), and that needs a few hundred. Plain
Python (``sys.settrace``), no atheris. Inputs that fail a check are reported and left out.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fuzz.harness import run, split  # noqa: E402

SCOPE = str(REPO / "passthru")
Arc = tuple[str, int, int]


def arcs_of(data: bytes) -> set[Arc]:
    """The (file, from line, to line) arcs of ``passthru`` code that running ``data`` takes."""
    seen: set[Arc] = set()

    class Lines:
        """The local tracer of one frame: remembers its previous line."""

        __slots__ = ("last",)

        def __init__(self, first: int) -> None:
            self.last = first

        def __call__(self, frame: FrameType, event: str, _arg: Any) -> Lines:
            if event == "line":
                seen.add((frame.f_code.co_filename, self.last, frame.f_lineno))
                self.last = frame.f_lineno
            return self

    def calls(frame: FrameType, event: str, _arg: Any) -> Lines | None:
        if event == "call" and frame.f_code.co_filename.startswith(SCOPE):
            return Lines(-frame.f_code.co_firstlineno)
        return None

    sys.settrace(calls)
    try:
        run(data)
    finally:
        sys.settrace(None)
    return seen


def choose(inputs: Iterable[tuple[str, bytes]]) -> tuple[list[bytes], list[str]]:
    """(chosen inputs, problems): a greedy cover of all arcs, smaller inputs first on ties."""
    covered: dict[bytes, set[Arc]] = {}
    problems = []
    for name, data in inputs:
        if data in covered:
            continue
        try:
            covered[data] = arcs_of(data)
        except Exception as exc:
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
    remaining = set().union(*covered.values()) if covered else set()
    chosen: list[bytes] = []
    by_target: dict[str, bytes] = {}
    for data in sorted(covered, key=len):
        by_target.setdefault(split(data)[0], data)
    while remaining:
        best = max(covered, key=lambda d: (len(covered[d] & remaining), -len(d)))
        gain = covered[best] & remaining
        if not gain:
            break
        chosen.append(best)
        remaining -= gain
    for target, data in by_target.items():
        if all(split(c)[0] != target for c in chosen):
            chosen.append(data)
    return chosen, problems


def main(arguments: list[str]) -> int:
    if len(arguments) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    out = Path(arguments[0])
    files = sorted(f for d in map(Path, arguments[1:]) for f in d.iterdir() if f.is_file())
    chosen, problems = choose((str(f), f.read_bytes()) for f in files)
    for problem in problems:
        print(f"left out (fails a check): {problem}")
    out.mkdir(parents=True, exist_ok=True)
    for data in chosen:
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{len(files)} inputs -> {len(chosen)} kept in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
