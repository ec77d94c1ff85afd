"""Every kept fuzz input, and every seed made from the real-client corpus, through the fuzz
targets in plain Python (no atheris needed): the checks of ``harness.py`` hold on all of them."""

from __future__ import annotations

from pathlib import Path

from tests.fuzz.harness import TARGETS, ContractViolation, run, split
from tests.fuzz.seeds import seed_inputs

CORPUS = Path(__file__).resolve().parent / "corpus"
KEPT_LIMIT = 600  # the kept corpus stays small: minimise it with -merge=1 (README.md)


def failures(inputs: list[tuple[str, bytes]]) -> list[str]:
    found = []
    for name, data in inputs:
        try:
            run(data)
        except ContractViolation as exc:
            found.append(f"{name} ({split(data)[0]}): {exc}")
        except Exception as exc:  # harness bugs too, named with the input
            found.append(f"{name} ({split(data)[0]}): {type(exc).__name__}: {exc}")
    return found


def test_kept_corpus_replays(fuzz_figures: list[str]) -> None:
    files = sorted(p for p in CORPUS.glob("*/*") if p.is_file())
    assert files, f"no kept corpus under {CORPUS}"
    assert len(files) <= KEPT_LIMIT, f"{len(files)} kept inputs: minimise the corpus (README.md)"
    problems = failures([(str(p.relative_to(CORPUS)), p.read_bytes()) for p in files])
    assert not problems, "\n".join(problems)
    reached = {split(p.read_bytes())[0] for p in files}
    assert reached == set(TARGETS), f"targets without a kept input: {sorted(set(TARGETS) - reached)}"
    fuzz_figures.append(f"fuzz corpus replay: {len(files)} kept inputs over {len(reached)} targets, 0 failures")


def test_seeds_from_the_client_corpus_replay() -> None:
    seeds = [(f"seed {index}", data) for index, data in enumerate(seed_inputs())]
    problems = failures(seeds)
    assert not problems, "\n".join(problems[:20])
