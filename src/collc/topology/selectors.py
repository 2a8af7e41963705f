"""Node selectors: patterns that name many nodes at once.

A selector is a node name in which ``{expr}`` parts and ``*`` may appear:

* ``{v}`` with a name ``v`` that is not yet bound *captures* the decimal index at that position
  (``gpu{i}`` matches ``gpu0``..``gpu7`` and binds ``i``); the same name twice must match the same
  number;
* ``{expr}`` with only bound names (parameters, earlier captures) is *substituted*:
  after ``b{b}.nic{i}`` has bound ``i``, ``rail{i}`` names one node, ``ib{i % 2}`` one of two;
* ``*`` matches any run of characters other than ``.``.

A selector without captures and ``*`` is a plain node name.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction

from collc.topology.expr import ExpressionError, evaluate

_BRACES = re.compile(r"\{([^{}]*)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Binding = dict[str, Fraction]


def _compile(pattern: str, bound: Mapping[str, Fraction]) -> tuple[str, list[str], bool]:
    """(regex, or the node name when literal; captured names in order; whether it is literal)."""
    outside = _BRACES.sub("", pattern)
    if "{" in outside or "}" in outside:
        raise ExpressionError(f"unbalanced braces in selector {pattern!r}")
    regex: list[str] = []
    text: list[str] = []
    captures: list[str] = []
    position = 0
    for match in _BRACES.finditer(pattern):
        regex.append(_literal_regex(pattern[position : match.start()]))
        text.append(pattern[position : match.start()])
        content = match[1].strip()
        if _IDENTIFIER.match(content) and content not in bound:
            regex.append(f"(?P={content})" if content in captures else f"(?P<{content}>\\d+)")
            if content not in captures:
                captures.append(content)
        else:
            value = evaluate(content, bound)
            if isinstance(value, bool) or value.denominator != 1 or value < 0:
                raise ExpressionError(f"{{{content}}} must give a whole number >= 0, got {value}")
            regex.append(str(value.numerator))
            text.append(str(value.numerator))
        position = match.end()
    regex.append(_literal_regex(pattern[position:]))
    text.append(pattern[position:])
    if not captures and "*" not in outside:
        return "".join(text), [], True
    return "".join(regex), captures, False


def _literal_regex(text: str) -> str:
    return "[^.]*".join(re.escape(piece) for piece in text.split("*"))


def select(
    pattern: str, bound: Mapping[str, Fraction], names: Iterable[str], index: set[str]
) -> list[tuple[str, Binding]]:
    """Every (node name, binding) for which ``pattern`` names an existing node.

    ``names`` are the candidates in definition order (the result keeps that order) and ``index`` is
    the same set, for constant-time lookup of literal names. A binding extends ``bound`` with the
    pattern's captures.
    """
    regex, captures, literal = _compile(pattern, bound)
    if literal:
        return [(regex, dict(bound))] if regex in index else []
    compiled = _regex(regex)
    found = []
    for name in names:
        match = compiled.fullmatch(name)
        if match:
            binding = dict(bound)
            binding.update((key, Fraction(int(match[key]))) for key in captures)
            found.append((name, binding))
    return found


def resolve(pattern: str, bound: Mapping[str, Fraction]) -> str | None:
    """The node name ``pattern`` denotes when every part is bound, else None."""
    regex, _captures, literal = _compile(pattern, bound)
    return regex if literal else None


@functools.lru_cache(maxsize=256)
def _regex(text: str) -> re.Pattern[str]:
    return re.compile(text)
