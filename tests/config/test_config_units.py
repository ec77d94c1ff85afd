import pytest

from passthru.config import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("3s", 3.0), ("1.5s", 1.5), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0), (" 2s ", 2.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("value", ["3", 3, 1.5, "0s", "0ms", "3 parsecs", "s", "", "-1s", "1h30m", None, True])
def test_bad_durations_say_what_is_allowed(value):
    with pytest.raises(ValueError, match="use a number with a unit: 500ms, 3s, 5m, 1h"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("512B", 512),
        ("64KiB", 65536),
        ("1MiB", 1048576),
        ("16KB", 16000),
        (4096, 4096),
        ("4096", 4096),
        ("1.5KiB", 1536),
    ],
)
def test_sizes(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["16 furlongs", "KiB", "1.5", "0.3B", -1, True, None, [1]])
def test_bad_sizes(value):
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(value)
