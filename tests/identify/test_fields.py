"""Fields are what routes match on: every corpus sample's reported fields are checked whole.

``tests/corpus/<protocol>/fields.json`` maps each sample file name to the complete fields dict
its identifier must report (exact equality, JSON types as reported: lists for ``alpn``,
``methods``, ``dialects``...). The entries are written by hand from the recording or from the
real client's own options (``record.py`` lists them), never produced by running the identifier,
so a parser that reverses a name, truncates an id or reports a constant fails here even when the
protocol is still right.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from passthru.identify import BUILTINS
from passthru.identify.base import HOST, NUMBER, TEXT, Identifier
from tests.identify.corpus import CORPUS, sample_id, samples

SAMPLES = samples()
BY_NAME = {identifier.name: identifier for identifier in BUILTINS}
FIELDS_FILE = "fields.json"


def expected_fields(protocol: str) -> dict[str, dict]:
    path = CORPUS / protocol / FIELDS_FILE
    assert path.is_file(), f"{path} is missing: every corpus sample needs its expected fields"
    entries = json.loads(path.read_text())
    assert isinstance(entries, dict) and all(isinstance(v, dict) for v in entries.values()), path
    return entries


@pytest.mark.parametrize("protocol", sorted(BY_NAME))
def test_every_builtin_has_a_fields_file_naming_exactly_its_samples(protocol: str) -> None:
    entries = expected_fields(protocol)
    on_disk = {path.name for path in (CORPUS / protocol).glob("*.bin")}
    assert on_disk, f"no corpus samples for {protocol}"
    assert set(entries) == on_disk, {"without an entry": on_disk - set(entries), "stale": set(entries) - on_disk}


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_sample_reports_exactly_its_expected_fields(sample: tuple[str, str, bytes]) -> None:
    protocol, name, data = sample
    entries = expected_fields(protocol)
    assert name in entries, f"{protocol}/{FIELDS_FILE} has no entry for {name}"
    assert BY_NAME[protocol].identify(data) == entries[name]


def kind_accepts(kind: object, value: object) -> bool:
    """The JSON shape each declared kind may take: text is a string or a list of strings (ALPN,
    methods, dialects), a host a string, a number an int."""
    if kind == NUMBER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == HOST:
        return isinstance(value, str)
    if kind == TEXT:
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    return False


@pytest.mark.parametrize("identifier", BUILTINS, ids=lambda i: i.name)
def test_expected_fields_are_declared_with_their_kind(identifier: Identifier) -> None:
    """What the corpus expects an identifier to report is in its ``fields`` declaration (which
    config validation uses), with a value of the declared kind."""
    assert identifier.fields is not None
    for name, fields in expected_fields(identifier.name).items():
        for key, value in fields.items():
            kind = identifier.fields.get(key)
            assert kind is not None, f"{identifier.name} reports {key!r} ({name}) without declaring it"
            assert kind_accepts(kind, value), (name, key, kind, value)


def test_fields_files_are_for_builtins_only() -> None:
    directories = {path.parent.name for path in Path(CORPUS).glob(f"*/{FIELDS_FILE}")}
    assert directories <= set(BY_NAME)


PIPELINED_TAILS = {
    "the same message again": None,  # the sample itself, as a client repeating or pipelining it
    "zero bytes": bytes(64),
    "text": b"\r\nQUIT\r\nGET / HTTP/1.1\r\n\r\n",
    "high bytes": bytes(range(0x80, 0x100)),
}


@pytest.mark.parametrize("tail", sorted(PIPELINED_TAILS))
@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_first_complete_message_decides_whatever_follows(sample: tuple[str, str, bytes], tail: str) -> None:
    """A client may send more before the server answers (a pipelined request, its next frame):
    the first message is complete, so the protocol and its fields no longer change."""
    protocol, _, data = sample
    extra = PIPELINED_TAILS[tail]
    longer = data + (data if extra is None else extra)
    assert BY_NAME[protocol].identify(longer) == BY_NAME[protocol].identify(data)
    assert [i.name for i in BUILTINS if isinstance(i.identify(longer), dict)] == [protocol]
