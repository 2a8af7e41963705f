"""Compact, readable lists of node names for reports: ``b0.gpu0 .. b0.gpu7`` becomes ``b0.gpu[0-7]``.

Names are split into text and number tokens; names that differ in one number only are merged into a
set at that position (last position first, so ``b[0-3].gpu[0-7]`` comes out for four full boxes).
Only exact products are merged, so the expansion of the result is exactly the input set.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

_TOKENS = re.compile(r"(\d+)")

Token = str | frozenset[int]


def _tokens(name: str) -> tuple[Token, ...]:
    parts = _TOKENS.split(name)
    return tuple(frozenset({int(part)}) if i % 2 else part for i, part in enumerate(parts))


def _merge_at(items: list[tuple[Token, ...]], position: int) -> list[tuple[Token, ...]]:
    """Merge items equal everywhere except at number ``position`` (which must be a set there)."""
    groups: dict[tuple, set[int]] = defaultdict(set)
    others: list[tuple[Token, ...]] = []
    for item in items:
        if position < len(item) and isinstance(item[position], frozenset):
            key = (len(item), item[:position], item[position + 1 :])
            groups[key] |= item[position]
        else:
            others.append(item)
    merged = [(*before, frozenset(values), *after) for (_, before, after), values in groups.items()]
    return merged + others


def _render_numbers(values: frozenset[int]) -> str:
    ordered = sorted(values)
    if len(ordered) == 1:
        return str(ordered[0])
    runs: list[str] = []
    start = previous = ordered[0]
    for value in [*ordered[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        runs.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return "[" + ",".join(runs) + "]"


def _render(item: tuple[Token, ...]) -> str:
    return "".join(token if isinstance(token, str) else _render_numbers(token) for token in item)


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers numerically: ``b2`` before ``b10``."""
    return tuple((0, int(part), "") if i % 2 else (1, 0, part) for i, part in enumerate(_TOKENS.split(name)))


def compress_names(names: Iterable[str]) -> list[str]:
    """Patterns like ``b[0-2].gpu[0-7]`` whose expansion is exactly ``names``, in natural order."""
    items = [_tokens(name) for name in sorted(set(names))]
    width = max((len(item) for item in items), default=0)
    for position in range(width - 2, 0, -2):  # number tokens sit at odd positions
        items = _merge_at(items, position)
    return sorted((_render(item) for item in items), key=natural_key)
