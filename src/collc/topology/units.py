"""Bandwidth and latency values: a number or an expression, optionally followed by a unit.

Bandwidths are stored in GB/s (10^9 bytes/s). Byte units (``GB/s``, ``GBps``) and bit units
(``Gb/s``, ``Gbps``; 8 bits per byte) are accepted with M, G and T prefixes, so ``"200 Gb/s"`` is 25
and ``"400Gbps"`` is 50. Latencies are stored in microseconds and accept ``ns``, ``us``/``µs``, ``ms``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction

from collc.topology.expr import ExpressionError, evaluate_number

_PREFIX = {"M": Fraction(1, 1000), "G": Fraction(1), "T": Fraction(1000)}
_BANDWIDTH = re.compile(r"^(?P<expr>.*?)\s*(?:(?P<prefix>[MGT])(?P<unit>B/s|Bps|b/s|bps))?\s*$")
_UNKNOWN_UNIT = re.compile(r"^\s*[0-9.]+\s*([A-Za-z/]+)\s*$")
_LATENCY_UNITS = {"ns": Fraction(1, 1000), "us": Fraction(1), "µs": Fraction(1), "ms": Fraction(1000)}
_LATENCY = re.compile(r"^(?P<expr>.*?)\s*(?P<unit>ns|us|µs|ms)?\s*$")

BANDWIDTH_UNITS = "GB/s, GBps, Gb/s, Gbps (and M/T prefixes)"


def parse_bandwidth(value: object, variables: Mapping[str, Fraction]) -> Fraction:
    """GB/s from a number, an expression, or either followed by a unit (see module docstring)."""
    if isinstance(value, str):
        match = _BANDWIDTH.match(value)
        assert match is not None  # the pattern matches every string
        scale = _PREFIX[match["prefix"]] if match["prefix"] else Fraction(1)
        if match["unit"] and match["unit"].startswith("b"):
            scale /= 8
        try:
            return evaluate_number(match["expr"], variables, "bandwidth") * scale
        except ExpressionError:
            unit = _UNKNOWN_UNIT.match(value)
            if unit:
                raise ExpressionError(f"unknown bandwidth unit {unit[1]!r}") from None
            raise
    return evaluate_number(value, variables, "bandwidth")


def parse_latency(value: object, variables: Mapping[str, Fraction]) -> Fraction:
    """Microseconds from a number, an expression, or either followed by ns/us/µs/ms."""
    if isinstance(value, str):
        match = _LATENCY.match(value)
        assert match is not None
        scale = _LATENCY_UNITS[match["unit"]] if match["unit"] else Fraction(1)
        return evaluate_number(match["expr"], variables, "latency") * scale
    return evaluate_number(value, variables, "latency")
