"""The reader's one-match path for a step's integers accepts exactly the plain decimals the
attribute-by-attribute path accepts, with the same values, and locates every step on its line."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.msccl.reader import XmlSyntaxError, read_xml

from .test_rules import RING

FIRST_STEP = '<step s="0" type="cpy" srcbuf="i" srcoff="0" dstbuf="o" dstoff="0" cnt="1" depid="-1" deps="-1"'
INTEGERS = ("s", "srcoff", "dstoff", "cnt", "depid", "deps", "hasdep")


def _with(key: str, text: str) -> str:
    """RING with attribute ``key`` of its first step set to ``text``."""
    assert FIRST_STEP in RING
    step = re.sub(f' {key}="[^"]*"', f' {key}="{text}"', FIRST_STEP + ' hasdep="0"', count=1)
    return RING.replace(FIRST_STEP + ' hasdep="0"', step, 1)


def _expected(text: str) -> int | None:
    """The oracle: a plain decimal (no sign but '-', no leading zero) within int64, else rejected."""
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", text) and -(2**63) <= int(text) < 2**63:
        return int(text)
    return None


def _first_step_value(key: str, text: str) -> int | None:
    try:
        algo = read_xml(_with(key, text))
    except XmlSyntaxError as error:
        assert error.rule == "xml-integer", error
        return None
    return getattr(algo.gpus[0].tbs[0].steps[0], key)


@pytest.mark.parametrize("key", INTEGERS)
@pytest.mark.parametrize(
    "text",
    [
        "010",
        "0x10",
        "+1",
        "1.0",
        "",
        " 1",
        "-",
        "--1",
        "00",
        "-0",
        "9" * 18,
        "1" + "0" * 18,
        "9" * 19,
        "9" * 20,
    ],
)
def test_step_integers_match_the_oracle(key: str, text: str) -> None:
    assert _first_step_value(key, text) == _expected(text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(INTEGERS), st.text(alphabet="-+0123456789x. ", max_size=21))
def test_any_step_integer_text_matches_the_oracle(key: str, text: str) -> None:
    assert _first_step_value(key, text) == _expected(text)


def test_every_step_is_located_on_its_line() -> None:
    lines = RING.splitlines()
    algo = read_xml(RING)
    steps = [step for gpu in algo.gpus for tb in gpu.tbs for step in tb.steps]
    assert steps
    for step in steps:
        assert lines[step.line - 1].lstrip().startswith(f'<step s="{step.s}"')
    assert [tb.line for gpu in algo.gpus for tb in gpu.tbs] == [
        number for number, line in enumerate(lines, 1) if line.lstrip().startswith("<tb ")
    ]
