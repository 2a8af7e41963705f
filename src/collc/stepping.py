"""Work written as a generator of steps: it yields between two steps and returns its result, so that a
caller can run it whole (:func:`drain`) or stop once a deadline passes and resume it later
(:func:`run_until`). The solver's packing and the compile's forest step are written this way."""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")


def run_until(steps: Generator[None, None, T], deadline: float) -> tuple[bool, T | None]:
    """Advance ``steps`` until it returns, ``(True, what it returned)``, or until ``deadline`` (a
    :func:`time.perf_counter` reading, checked after each step) has passed, ``(False, None)``."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return True, stop.value
        if time.perf_counter() >= deadline:
            return False, None


def drain(steps: Generator[None, None, T]) -> T:
    """Run ``steps`` to its end and return what it returns."""
    _, value = run_until(steps, math.inf)
    return value  # type: ignore[return-value]  # only a finished run returns
