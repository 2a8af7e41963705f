"""A tiny, safe arithmetic language for parameterised topologies.

Presets compute counts, bandwidths and conditions from their parameters, e.g. ``boxes * 50`` for a
non-blocking spine link or ``boxes > 1`` to wire the inter-box fabric only when there is more than one
box. Expressions are parsed with :func:`ast.parse` and *interpreted* by walking a whitelist of node
types (numbers, names, ``+ - * / // % **``, comparisons, ``and or not``, ``x if c else y``,
``min``/``max``); nothing is ever passed to ``eval``. Arithmetic is exact (:class:`Fraction`); ``/``
is exact division.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import math
import operator
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from fractions import Fraction

from collc.errors import clipped
from collc.input_limits import (
    MAX_EXPRESSION_BITS,
    MAX_EXPRESSION_LENGTH,
    MAX_EXPRESSION_STEPS,
    MAX_NESTING,
)

Value = Fraction | bool

_BINARY: dict[type, Callable[[Fraction, Fraction], Fraction]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Fraction, Fraction], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
MAX_EXPONENT = 64  # keeps every value small: a topology never needs more
_FUNCTIONS: dict[str, Callable[[list[Fraction]], Fraction]] = {"min": min, "max": max}


class ExpressionError(ValueError):
    """The expression is malformed, uses something outside the language, or names an unknown variable."""


#: steps left to the expressions of the document being read (None: no budget)
_STEPS_LEFT: ContextVar[list[int] | None] = ContextVar("collc_expression_steps", default=None)


@contextlib.contextmanager
def step_budget(steps: int = MAX_EXPRESSION_STEPS) -> Iterator[None]:
    """Charge every :func:`evaluate` inside the block with its expression's size, up to ``steps``.

    A rule like ``where:`` is evaluated once per candidate pair, so a long condition over many pairs
    is slow even when each evaluation is small; the budget bounds their total before it runs away.
    """
    token = _STEPS_LEFT.set([steps])
    try:
        yield
    finally:
        _STEPS_LEFT.reset(token)


def _charge(tree: ast.Expression) -> None:
    left = _STEPS_LEFT.get()
    if left is None:
        return
    left[0] -= _size(tree)
    if left[0] < 0:
        raise ExpressionError(
            f"the expressions of this topology need more than {MAX_EXPRESSION_STEPS:,} evaluation steps "
            "in total, the most collc spends; simplify the conditions of rules that match many nodes"
        )


def evaluate(text: str, variables: Mapping[str, Fraction]) -> Value:
    """Evaluate ``text`` with ``variables``; raise :class:`ExpressionError` with a readable reason."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression of {len(text)} characters is longer than the limit of {MAX_EXPRESSION_LENGTH}"
        )
    tree = _parse(text.strip())
    if tree is None:
        raise ExpressionError(f"cannot parse expression {clipped(text)}")
    problem = _literal_problem(text.strip())
    if problem is not None:
        raise ExpressionError(problem)
    _charge(tree)
    try:
        return _walk(tree.body, variables, 0)
    except ZeroDivisionError:
        raise ExpressionError(f"division by zero in {clipped(text)}") from None


def evaluate_number(value: object, variables: Mapping[str, Fraction], what: str = "value") -> Fraction:
    """A YAML value that must be a number: an int or Fraction as is, or text evaluated as an expression."""
    if isinstance(value, bool) or value is None:
        spelled = "null" if value is None else str(value).lower()  # as YAML wrote it, not Python
        raise ExpressionError(f"{what} must be a number, got {spelled}")
    if isinstance(value, int | Fraction):
        return Fraction(value)
    result = evaluate(str(value), variables)
    if isinstance(result, bool):
        raise ExpressionError(f"{what} must be a number, got the condition {value!r}")
    return result


def names_in(text: str) -> set[str]:
    """The variable names an expression mentions (empty when it does not parse)."""
    tree = _parse(text.strip())
    if tree is None:
        return set()
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in called}


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> ast.Expression | None:
    """The parsed expression (cached: presets evaluate the same text once per link), None if invalid."""
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # also over-long digit strings
        return None


@functools.lru_cache(maxsize=1024)
def _literal_problem(text: str) -> str | None:
    """Why a number written in ``text`` cannot be read, quoting it: Python reads a decimal literal
    beyond the double range as inf (``1e400``) and one below it as 0.0 (``1e-400``), which would be
    reported as "not finite" or as a zero the user never wrote. None when every literal reads."""
    tree = _parse(text)
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, ast.Constant) or not isinstance(node.value, float):
            continue
        written = ast.get_source_segment(text, node) or repr(node.value)
        if math.isinf(node.value):
            return f"number {clipped(written)} is too large (out of range)"
        if node.value == 0 and any(digit in "123456789" for digit in written.lower().partition("e")[0]):
            return f"number {clipped(written)} is too small (out of range: it would read as 0)"
    return None


def _small_power(base: Fraction, exponent: int) -> None:
    """Refuse ``base ** exponent`` before computing it when the result would exceed the bit limit."""
    if (_bits(base) - 1) * abs(exponent) > MAX_EXPRESSION_BITS:
        raise _too_large()


@functools.lru_cache(maxsize=1024)
def _size(tree: ast.Expression) -> int:
    """Nodes of a parsed expression: the most steps one evaluation of it takes."""
    return sum(1 for _node in ast.walk(tree))


def _number(value: Value, node: ast.AST) -> Fraction:
    if isinstance(value, bool):
        raise ExpressionError(f"expected a number, got a condition in {ast.unparse(node)!r}")
    return value


def _bits(value: Fraction) -> int:
    return max(abs(value.numerator).bit_length(), value.denominator.bit_length())


def _too_large() -> ExpressionError:
    return ExpressionError(
        f"a value exceeds the limit of {MAX_EXPRESSION_BITS}-bit numerators and denominators "
        "(about 300 digits)"
    )


def _small(value: Fraction) -> Fraction:
    """``value`` itself when its numerator and denominator fit :data:`MAX_EXPRESSION_BITS`."""
    if _bits(value) > MAX_EXPRESSION_BITS:
        raise _too_large()
    return value


def _constant(value: int | float) -> Fraction:
    """A literal as an exact number (a float by its shortest decimal: 0.1 is 1/10); evaluate refused
    the literals that overflow or underflow a float first (:func:`_literal_problem`)."""
    return _small(Fraction(str(value)) if isinstance(value, float) else Fraction(value))


def _walk(node: ast.AST, variables: Mapping[str, Fraction], depth: int) -> Value:
    """The value of ``node``; ``depth`` counts the enclosing nodes (limited to :data:`MAX_NESTING`)."""
    if depth > MAX_NESTING:
        raise ExpressionError(f"expression nested more than {MAX_NESTING} deep")
    depth += 1
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return _constant(node.value)
    if isinstance(node, ast.Name):
        if node.id not in variables:
            known = ", ".join(sorted(variables)) or "none"
            raise ExpressionError(f"unknown name {node.id!r} (known: {known})")
        return variables[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _number(_walk(node.left, variables, depth), node.left)
        right = _number(_walk(node.right, variables, depth), node.right)
        if isinstance(node.op, ast.Pow) and (right.denominator != 1 or abs(right) > MAX_EXPONENT):
            raise ExpressionError(f"only whole-number powers up to {MAX_EXPONENT} are allowed")
        if isinstance(node.op, ast.Pow):
            _small_power(left, int(right))
        return _small(Fraction(_BINARY[type(node.op)](left, right)))
    if isinstance(node, ast.UnaryOp):
        operand = _walk(node.operand, variables, depth)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, ast.USub):
            return -_number(operand, node.operand)
        if isinstance(node.op, ast.UAdd):
            return _number(operand, node.operand)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        left = _number(_walk(node.left, variables, depth), node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _number(_walk(right_node, variables, depth), right_node)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        values = [bool(_walk(value, variables, depth)) for value in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.IfExp):
        chosen = node.body if _walk(node.test, variables, depth) else node.orelse
        return _walk(chosen, variables, depth)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and node.args
        and not node.keywords
    ):
        arguments = [_number(_walk(arg, variables, depth), arg) for arg in node.args]
        return _FUNCTIONS[node.func.id](arguments)
    raise ExpressionError(f"{ast.unparse(node)!r} is not allowed in a topology expression")
