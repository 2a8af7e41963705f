"""Exact numbers from text that a user wrote (a topology value, ``--set``, ``--derate``, an option).

``Fraction("1.5e-99999999")`` computes ten to the power of the exponent: minutes of CPU in one C
call that no signal interrupts, so a five-line topology, a ``--set`` value or one request to
``collc serve`` could hang the process. :func:`fraction` refuses such an exponent first.
"""

from __future__ import annotations

import re
from fractions import Fraction

from collc.input_limits import MAX_DECIMAL_EXPONENT

#: the exponent of a decimal as ``Fraction`` reads it (digits may be grouped by underscores)
_EXPONENT = re.compile(r"[eE][-+]?([0-9_]+)\s*\Z")


class ExponentOutOfRange(ValueError):
    """A decimal whose exponent lies beyond ±:data:`MAX_DECIMAL_EXPONENT`."""


def fraction(text: str) -> Fraction:
    """``text`` as an exact number, as ``Fraction(text)`` reads it (``12``, ``1.5``, ``3/2``,
    ``2.5e-3``); raises :class:`ExponentOutOfRange` for an exponent beyond ±1,000 before any power of
    ten is computed, and ``ValueError`` or ``ZeroDivisionError`` for anything else ``Fraction``
    refuses."""
    match = _EXPONENT.search(text)
    if match:
        digits = match.group(1).replace("_", "").lstrip("0")
        if len(digits) > len(str(MAX_DECIMAL_EXPONENT)) or int(digits or "0") > MAX_DECIMAL_EXPONENT:
            raise ExponentOutOfRange(f"its exponent is beyond ±{MAX_DECIMAL_EXPONENT:,}")
    return Fraction(text)
