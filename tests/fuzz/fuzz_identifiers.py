"""Coverage-guided fuzzing of every built-in identifier, the engine and the PROXY header parser.

    python tests/fuzz/fuzz_identifiers.py -max_total_time=3600 tests/fuzz/corpus/identifiers

The arguments are libFuzzer's (``-help=1`` lists them). One target dispatches on the first
input byte; what each target checks is in ``harness.py``. See ``README.md`` beside this file.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

with atheris.instrument_imports(include=["passthru"]):
    import passthru.identify  # every built-in module, instrumented
    import passthru.proxyproto

INSTRUMENTED = (passthru.identify, passthru.proxyproto)  # imported for their coverage, not used here

from tests.fuzz import harness  # noqa: E402  (after the instrumented imports)


def main() -> None:
    # libFuzzer re-runs argv[0] through the shell for -merge, -fork and -minimize_crash: make it
    # this interpreter (the venv's, which has atheris) on this file, not the bare script.
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))}"
    atheris.Setup([command, *sys.argv[1:]], harness.run)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
