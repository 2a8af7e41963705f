"""Sizes as written on the command line: units, ranges, minimums, located hints."""

import pytest

from collc.errors import InputError
from collc.sizes import format_size, parse_size, parse_sizes


def test_parse_size_units() -> None:
    assert parse_size("4096") == 4096
    assert parse_size("64KiB") == 65536
    assert parse_size("1MB") == 10**6
    assert parse_size("8GiB") == 8 * 2**30


def test_parse_sizes_range_and_list() -> None:
    assert parse_sizes("1KiB:8KiB") == [1024, 2048, 4096, 8192]
    assert parse_sizes("1KiB:64KiB:4") == [1024, 4096, 16384, 65536]
    assert parse_sizes("1MiB,4KiB") == [4096, 2**20]


@pytest.mark.parametrize("text", ["", "12XB", "8GiB:1KiB", "1KiB:8KiB:1", "1:2:3:4", "-5"])
def test_bad_sizes_are_input_errors_with_a_hint(text: str) -> None:
    with pytest.raises(InputError) as error:
        parse_sizes(text) if ":" in text else parse_size(text)
    assert error.value.hint


def test_format_size() -> None:
    assert format_size(8 * 2**30) == "8GiB"
    assert format_size(1536) == "1.50KiB"
    assert format_size(512) == "512B"


def test_minimum_and_option_name_appear_in_the_error() -> None:
    assert parse_size("0", option="--min-bytes", minimum=0) == 0
    with pytest.raises(InputError, match="--bytes '0' must be at least 1 bytes"):
        parse_size("0", option="--bytes")
    with pytest.raises(InputError, match="--max-bytes '1 parsec' is not a size"):
        parse_size("1 parsec", option="--max-bytes", minimum=0)
