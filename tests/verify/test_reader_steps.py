"""The reader's one-match paths for a step (the whole element, or its integers) accept exactly the
plain decimals the attribute-by-attribute path accepts, with the same values, and locate every step on
its line; a step in any other form reads as the scanner reads it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.input_limits import MAX_NESTING
from collc.msccl import reader
from collc.msccl.reader import XmlSyntaxError, read_xml, read_xml_with_notes
from collc.msccl.writer import to_xml

from .programs import allpairs_allreduce
from .test_rules import RING, RING_ALLREDUCE, TREE

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


@contextmanager
def _scanner_only() -> Iterator[None]:
    """Read every step through the scanner, as a file not laid out by collc's writer is read."""
    kept = reader._CANONICAL_STEP
    reader._CANONICAL_STEP = re.compile(r"(?!)")
    try:
        yield
    finally:
        reader._CANONICAL_STEP = kept


def _outcome(text: str) -> object:
    """What reading ``text`` gives: the program with every line number and the notes, or the error."""
    try:
        algo, notes = read_xml_with_notes(text, "f.xml")
    except XmlSyntaxError as error:
        return (error.rule, str(error), error.location)
    lines = [(g.line, [(tb.line, [step.line for step in tb.steps]) for tb in g.tbs]) for g in algo.gpus]
    return (algo, lines, notes)


@pytest.mark.parametrize("program", [RING, TREE, RING_ALLREDUCE, to_xml(allpairs_allreduce(5))])
def test_every_step_the_writer_lays_out_is_read_in_one_match_with_the_scanners_result(program: str):
    """The writer's step lines are what the one-match path reads (so it is taken), and it gives
    the scanner's program, line numbers and notes."""
    steps = [line for line in program.splitlines() if "<step" in line]
    assert steps and all(reader._CANONICAL_STEP.fullmatch(line) for line in steps)
    with _scanner_only():
        expected = _outcome(program)
    assert _outcome(program) == expected


@settings(max_examples=300, deadline=None)
@given(
    where=st.integers(min_value=0, max_value=len(FIRST_STEP) + 40),
    action=st.sampled_from(("insert", "replace", "delete")),
    char=st.sampled_from([*' "=<>/-01x\n\r\t', "<!-- c -->", "\ufeff"]),
)
def test_a_step_line_edited_anywhere_reads_as_the_scanner_reads_it(where: int, action: str, char: str):
    """One edit in or around the first step: the one-match path and the scanner accept the same
    program or reject it with the same rule, message and location."""
    start = RING.index(FIRST_STEP) - 6  # the indentation before it, too
    at = start + where
    cut = 0 if action == "insert" else 1
    text = RING[:at] + ("" if action == "delete" else char) + RING[at + cut :]
    with _scanner_only():
        expected = _outcome(text)
    assert _outcome(text) == expected


@pytest.mark.parametrize("space", [" ", "\n", "\r", "\t", "\x0b", "\x0c", "\xa0", "\u2028", "<!-- c -->"])
def test_what_precedes_a_step_reads_as_the_scanner_reads_it(space: str):
    """Only space, LF and CR separate elements (a tab or other Unicode space is text the runtime
    rejects), whichever path reads the step after it."""
    at = RING.index(FIRST_STEP)
    text = RING[:at] + space + RING[at:]
    with _scanner_only():
        expected = _outcome(text)
    assert _outcome(text) == expected
    accepted = not isinstance(expected[0], str)  # a program, not an error's rule
    assert accepted == (space in (" ", "\n", "\r", "<!-- c -->"))


def test_a_step_nested_too_deep_is_refused_whatever_its_form():
    """A step whose ancestors already reach the nesting limit is refused, not read in one match."""
    text = "<a>" * MAX_NESTING + FIRST_STEP + ' hasdep="0"/>' + "</a>" * MAX_NESTING
    with pytest.raises(XmlSyntaxError, match="nested more than"):
        read_xml(text)
