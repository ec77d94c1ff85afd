"""Re-record the common real clients live (on 127.0.0.1) and check that what they send today is
still identified as their protocol, by their identifier alone. The committed corpus covers every
client; this catches a client upgrade that changes its first bytes. Clients that are not
installed are skipped (``.ci/apt-packages.txt`` installs them in CI)."""

from __future__ import annotations

import pytest

from passthru.identify import BUILTINS, identify
from tests.corpus.record import RECORDINGS, Recording, available, capture

LIVE = [recording for recording in RECORDINGS if recording.cheap]


@pytest.mark.parametrize("recording", LIVE, ids=lambda r: f"{r.protocol}/{r.name}")
def test_real_client_is_identified(recording: Recording) -> None:
    if not available(recording):
        pytest.skip(f"{recording.command[0]} is not installed")
    data = capture(recording)
    assert data, "the client sent nothing"
    claimed = [i.name for i in BUILTINS if isinstance(i.identify(data), dict)]
    assert claimed == [recording.protocol], data[:200]
    decision = identify(BUILTINS, data)
    assert (decision.protocol, decision.bytes_needed) == (recording.protocol, None)
