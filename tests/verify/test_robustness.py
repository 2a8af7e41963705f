"""The verifier never crashes: random mutations of correct programs and of their text always give a
deterministic report whose problems carry documented rule ids; a parse rejection is the only problem,
and a file reported valid reads back."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.msccl.reader import XmlSyntaxError, read_xml
from collc.msccl.writer import to_xml
from collc.verify import verify, verify_text

from .programs import FIXTURE_NAMES as FIXTURES
from .programs import fixture, mutate, mutation
from .test_rules import documented_rules

RULES = documented_rules()
#: rules of the reader: the runtime's parser rejects the file there and reads nothing further
PARSE_RULES = {rule for rule in RULES if rule.startswith("xml-")} | {"missing-attribute"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.lists(mutation, min_size=1, max_size=3))
def test_mutated_programs_always_get_a_report(name: str, mutations) -> None:
    algo = mutate(name, mutations)
    for runtime in ("msccl-executor", "rccl"):
        report = verify(algo, runtime=runtime)
        assert report.rules() <= RULES, report.rules() - RULES
        assert all(
            problem.severity in ("error", "warning") and problem.message for problem in report.problems
        )
        assert verify(algo, runtime=runtime).problems == report.problems


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIXTURES), st.integers(0, 100_000), st.sampled_from(list("<>/=\"' \t\n!?-x0")))
def test_corrupted_text_always_gets_a_report(name: str, position: int, character: str) -> None:
    text = to_xml(fixture(name))
    position %= len(text)
    corrupted = text[:position] + character + text[position:]
    report = verify_text(corrupted, "f.xml")
    assert report.rules() <= RULES, report.rules() - RULES
    rejected = [p for p in report.problems if p.rule in PARSE_RULES and p.severity == "error"]
    if rejected:
        assert report.problems == rejected and len(rejected) == 1  # the parser stops at the first
        with pytest.raises(XmlSyntaxError):
            read_xml(corrupted, "f.xml")
    else:
        read_xml(corrupted, "f.xml")  # what the verifier judged, the reader reads
    assert verify_text(corrupted, "f.xml").problems == report.problems


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FIXTURES), st.lists(mutation, min_size=1, max_size=3))
def test_written_programs_read_back_identically(name: str, mutations) -> None:
    algo = mutate(name, mutations)
    text = to_xml(algo)
    assert to_xml(read_xml(text)) == text
