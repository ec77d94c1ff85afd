"""The spec-built corpus samples are what their generators in ``tests/corpus/record.py`` build
today: the corpus README documents each one by its generator, so the two must not drift."""

from __future__ import annotations

import pytest

from tests.corpus.record import SPEC
from tests.identify.corpus import CORPUS

# lib- samples run a packaged library's encoder under the system python (not always installed)
GENERATED = [(protocol, name, build) for protocol, builders in SPEC.items() for name, build in builders]


@pytest.mark.parametrize(
    "protocol, name, build", [g for g in GENERATED if g[1].startswith("spec-")], ids=lambda v: getattr(v, "__name__", v)
)
def test_spec_sample_is_what_its_generator_builds(protocol: str, name: str, build) -> None:
    assert (CORPUS / protocol / f"{name}.bin").read_bytes() == build()


def test_every_generated_sample_is_in_the_corpus() -> None:
    for protocol, name, _ in GENERATED:
        assert (CORPUS / protocol / f"{name}.bin").is_file(), f"{protocol}/{name}"
