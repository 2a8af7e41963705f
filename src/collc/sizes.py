"""Message sizes as users write them on the command line (``64MiB``, ``1GB``, ``1KiB:8GiB:4``), and
the figures collc prints for people (sizes, counts, bandwidths and times).

Binary units (KiB, MiB, GiB, TiB) and decimal ones (kB, MB, GB, TB), case-insensitive; used by
``collc verify --bytes``, ``collc compile --min-bytes/--max-bytes`` and ``collc simulate --sizes``.

Every GB/s or µs figure a report prints goes through :func:`format_figure` (and every figure of JSON
output through :func:`json_figure`): the usual fixed decimals, except where those would round a
nonzero figure to zero or to its first digit, as on a fabric whose bandwidths are far apart.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import overload

from collc.errors import InputError, clipped
from collc.input_limits import MAX_BYTES

_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 10**6,
    "MB": 10**6,
    "G": 10**9,
    "GB": 10**9,
    "T": 10**12,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")
#: sizes one ``--sizes`` sweep may list (a geometric range of factor 2 from 1 byte to 2^63 has 63)
MAX_SWEEP_SIZES = 1000
#: :func:`format_pair` stops adding digits here: a double has about 17 significant digits
_MAX_EXTRA_DIGITS = 16


def parse_size(text: str, *, option: str = "size", minimum: int = 1) -> int:
    """Parse a byte count like ``4096``, ``64KiB``, ``1.5MiB``, ``1MB`` or ``8GiB`` (binary and decimal
    units; a fraction only where it makes whole bytes).

    ``option`` names the flag in error messages; sizes below ``minimum`` are refused, and so are sizes
    above :data:`MAX_BYTES` (the runtime reads byte counts as signed 64-bit integers).
    """
    match = _SIZE.match(text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise InputError(
            f"{option} {clipped(text)} is not a size",
            hint="write a number of bytes with an optional unit: 4096, 64KiB, 1.5MiB, 8GiB, 1GB",
        )
    number = match.group(1).lstrip("0") or "0"
    exact = Fraction(number) * _UNITS[unit] if len(number) <= 30 else Fraction(MAX_BYTES + 1)  # no huge int()
    if exact.denominator != 1:
        raise InputError(
            f"{option} {clipped(text)} is not a whole number of bytes ({float(exact):.1f})",
            hint="e.g. 1.5MiB (1572864 bytes) is whole; give the size in bytes where it is not",
        )
    value = int(exact)
    if value > MAX_BYTES:
        raise InputError(
            f"{option} {clipped(text)} is larger than {MAX_BYTES} bytes, the largest size a runtime reads",
            hint="e.g. 1TiB",
        )
    if value < minimum:
        raise InputError(
            f"{option} {clipped(text)} must be at least {minimum} bytes", hint=f"use at least {minimum}"
        )
    return value


def parse_sizes(text: str) -> list[int]:
    """Parse ``START:END[:FACTOR]`` (geometric, default factor 2) or a comma-separated list of sizes."""
    if ":" not in text:
        sizes = sorted({parse_size(part, option="--sizes") for part in text.split(",") if part.strip()})
        if not sizes:
            raise InputError(
                f"--sizes {clipped(text)} lists no size", hint="e.g. --sizes 1MiB,64MiB or --sizes 1KiB:8GiB"
            )
        if len(sizes) > MAX_SWEEP_SIZES:
            raise InputError(
                f"--sizes lists {len(sizes)} sizes, more than {MAX_SWEEP_SIZES}", hint="list fewer sizes"
            )
        return sizes
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InputError(
            f"cannot read the size range {clipped(text)}", hint="write START:END or START:END:FACTOR"
        )
    start, end = parse_size(parts[0], option="--sizes"), parse_size(parts[1], option="--sizes")
    factor_text = parts[2].strip() if len(parts) == 3 else "2"
    factor = int(factor_text) if factor_text.isdigit() and len(factor_text) <= 6 else 0
    if factor < 2 or start > end:
        raise InputError(
            f"bad size range {clipped(text)}",
            hint="START must not exceed END and FACTOR must be a whole number >= 2, e.g. 1KiB:8GiB:4",
        )
    sizes = []
    size = start
    while size <= end:
        sizes.append(size)
        size *= factor
    return sizes


def format_size(num_bytes: int) -> str:
    """A short human-readable binary size: ``1KiB``, ``8GiB``, ``1.5KiB``, ``512B``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            whole = num_bytes % scale == 0
            return f"{num_bytes // scale}{unit}" if whole else f"{num_bytes / scale:.2f}{unit}"
    return f"{num_bytes}B"


def format_figure(
    value: float | Fraction, decimals: int = 1, *, digits: int = 2, grouped: bool = False
) -> str:
    """``value`` with ``decimals`` fixed decimals (``173.3``), or with ``digits`` significant digits when
    it is nonzero and below one unit of the last decimal (``1.3e-06``, ``0.053``): there the fixed form
    shows 0.0 or a single rounded digit, and every figure and ratio a reader derives from it is lost.
    ``grouped`` separates thousands (``1,234.5``)."""
    return _figure(float(value), decimals, digits, grouped, 0)


def format_pair(first: float | Fraction, second: float | Fraction, decimals: int = 1) -> tuple[str, str]:
    """Two figures a message compares, as :func:`format_figure` prints them, with as many more decimals
    (or significant digits) as it takes to print them differently when they differ: "8.533 vs 8.533"
    would tell a reader that the comparison went the wrong way."""
    numbers = float(first), float(second)
    extra = 0
    while True:
        shown = tuple(_figure(number, decimals, 2, False, extra) for number in numbers)
        if shown[0] != shown[1] or numbers[0] == numbers[1] or extra >= _MAX_EXTRA_DIGITS:
            return shown[0], shown[1]
        extra += 1


def _figure(number: float, decimals: int, digits: int, grouped: bool, extra: int) -> str:
    """:func:`format_figure` with ``extra`` more decimals or significant digits than usual."""
    if number == 0 or abs(number) >= 10.0**-decimals:
        return f"{number:{',' if grouped else ''}.{decimals + extra}f}"
    return f"{number:.{digits + extra}g}"


@overload
def json_figure(value: float | Fraction) -> float: ...
@overload
def json_figure(value: None) -> None: ...
def json_figure(value: float | Fraction | None) -> float | None:
    """A figure for JSON output: rounded to 3 decimals, or to 3 significant digits where that would
    round it to zero or to its first digit (the rule of :func:`format_figure`); None stays None."""
    return None if value is None else float(format_figure(value, 3, digits=3))


def plural(number: int, noun: str, many: str | None = None) -> str:
    """``number`` with its noun in the right form: ``1 link``, ``2 links``, ``1 switch``, ``3 switches``."""
    if number == 1:
        return f"{number} {noun}"
    return f"{number} {many or (noun + 'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else noun + 's')}"
