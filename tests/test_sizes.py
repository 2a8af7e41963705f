"""Sizes as written on the command line: units, ranges, minimums, located hints."""

from fractions import Fraction

import pytest

from collc.errors import InputError
from collc.sizes import (
    MAX_SWEEP_SIZES,
    format_figure,
    format_pair,
    format_size,
    json_figure,
    parse_size,
    parse_sizes,
    plural,
)


def test_parse_size_units() -> None:
    assert parse_size("4096") == 4096
    assert parse_size("64KiB") == 65536
    assert parse_size("1MB") == 10**6
    assert parse_size("8GiB") == 8 * 2**30
    assert parse_size("1.5MiB") == 3 * 2**19 and parse_size("0.5 KiB") == 512
    with pytest.raises(InputError, match=r"'1.5' is not a whole number of bytes \(1.5\)"):
        parse_size("1.5")


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


def test_sizes_stop_at_int64() -> None:
    """A runtime reads byte counts as signed 64-bit integers: nothing larger is ever accepted."""
    assert parse_size(str(2**63 - 1)) == 2**63 - 1
    for text in (str(2**63), "99999999999999999999999999", "8388608TiB", "9" * 40):
        with pytest.raises(InputError, match="larger than 9223372036854775807 bytes"):
            parse_size(text, option="--min-bytes", minimum=0)
    with pytest.raises(InputError, match="larger than"):
        parse_sizes("1:99999999999999999999")


@pytest.mark.parametrize("text", [",,,", "", " ", " , ,"])
def test_a_sweep_needs_a_size(text: str) -> None:
    with pytest.raises(InputError, match="lists no size"):
        parse_sizes(text)


def test_a_sweep_list_is_bounded() -> None:
    assert len(parse_sizes(",".join(str(n) for n in range(1, MAX_SWEEP_SIZES + 1)))) == MAX_SWEEP_SIZES
    with pytest.raises(InputError, match=f"more than {MAX_SWEEP_SIZES}"):
        parse_sizes(",".join(str(n) for n in range(1, MAX_SWEEP_SIZES + 2)))


@pytest.mark.parametrize(
    ("number", "noun", "text"),
    [
        (1, "link", "1 link"),
        (2, "link", "2 links"),
        (0, "GPU", "0 GPUs"),
        (1, "switch", "1 switch"),
        (3, "switch", "3 switches"),
        (2, "box", "2 boxes"),
        (2, "arc", "2 arcs"),
    ],
)
def test_plural(number: int, noun: str, text: str) -> None:
    assert plural(number, noun) == text


def test_format_figure_keeps_the_fixed_decimals_of_ordinary_figures() -> None:
    assert format_figure(173.333) == "173.3"
    assert format_figure(Fraction(1040, 3), 2) == "346.67"
    assert format_figure(0.1) == "0.1" and format_figure(0) == "0.0"
    assert format_figure(1234.5, grouped=True) == "1,234.5"


def test_format_figure_shows_significant_digits_where_the_decimals_would_lose_them() -> None:
    """1 GB/s over 10^6 GB/s links: one decimal printed 0.0 (and 0.06 as 0.1)."""
    assert format_figure(Fraction(4, 3) / 10**6) == "1.3e-06"
    assert format_figure(0.0612) == "0.061"
    assert format_figure(0.0049, 2) == "0.0049"
    assert format_figure(-0.0612) == "-0.061"


def test_format_pair_adds_digits_until_two_different_figures_differ() -> None:
    assert format_pair(173.0, 197.6) == ("173.0", "197.6")
    assert format_pair(8.53329, 8.53341) == ("8.5333", "8.5334")
    assert format_pair(1.3e-6, 1.31e-6) == ("1.3e-06", "1.31e-06")
    assert format_pair(8.5, 8.5) == ("8.5", "8.5")  # equal figures stay as they are


def test_json_figure_rounds_to_three_decimals_but_never_to_zero() -> None:
    assert json_figure(173.33333) == 173.333 and json_figure(Fraction(1, 2)) == 0.5
    assert json_figure(Fraction(4, 3) / 10**6) == 1.33e-06
    assert json_figure(0.0) == 0.0 and json_figure(None) is None
