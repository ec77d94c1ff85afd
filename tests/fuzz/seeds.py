"""Write the seed inputs for the fuzzer: the real-client first bytes in ``tests/corpus/`` and the
hand-written near-misses of ``tests/identify/corpus.py``, wrapped for each target.

    python tests/fuzz/seeds.py /tmp/seeds
    python tests/fuzz/fuzz_identifiers.py -merge=1 tests/fuzz/corpus/identifiers /tmp/seeds

Every sample goes to the identifier of its protocol and to the engine, each read whole, byte by
byte and in random cuts; the ``proxy`` samples also go to the PROXY header parser; every sample
also goes once, whole, to every other identifier (so each parser starts from real bytes of other
protocols, where confusions live). ``-merge=1`` then keeps only the inputs that add coverage.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fuzz.harness import ENGINE, EVERY_BYTE, PROXYPROTO, TARGETS, make_input  # noqa: E402
from tests.identify.corpus import NEAR_MISSES, samples, unidentifiable  # noqa: E402

CUT_SEEDS = (0, EVERY_BYTE, 7)


def seed_inputs() -> Iterator[bytes]:
    recorded = [(protocol, data) for protocol, _, data in samples()]
    recorded += [("unidentifiable", data) for _, data in unidentifiable()]
    recorded += [(label.split(":")[0], data) for label, data in NEAR_MISSES.items()]
    for protocol, data in recorded:
        own = [ENGINE] + ([protocol] if protocol in TARGETS else [])
        if protocol == "proxy":
            own.append(PROXYPROTO)
        for target in own:
            for seed in CUT_SEEDS:
                yield make_input(target, data, seed)
        for target in TARGETS:
            if target not in own:
                yield make_input(target, data)


def write(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for data in seed_inputs():
        (directory / hashlib.sha1(data).hexdigest()).write_bytes(data)
        count += 1
    return count


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/fuzz/seeds.py DIRECTORY")
    print(f"{write(Path(sys.argv[1]))} seed inputs written to {sys.argv[1]}")
