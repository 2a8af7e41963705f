"""The verifier never crashes: random mutations of correct programs and of their text always give a
report (and a mutated valid file is either still valid or names a rule)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.msccl.writer import to_xml
from collc.verify import verify, verify_text

from .programs import FIXTURE_NAMES as FIXTURES
from .programs import fixture, mutate, mutation


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FIXTURES), st.lists(mutation, min_size=1, max_size=3))
def test_mutated_programs_always_get_a_report(name: str, mutations) -> None:
    algo = mutate(name, mutations)
    for runtime in ("msccl-executor", "rccl"):
        report = verify(algo, runtime=runtime)
        assert all(problem.rule and problem.message for problem in report.problems)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FIXTURES), st.integers(0, 100_000), st.sampled_from(list("<>/=\"' \t\n!?-x0")))
def test_corrupted_text_always_gets_a_report(name: str, position: int, character: str) -> None:
    text = to_xml(fixture(name))
    position %= len(text)
    report = verify_text(text[:position] + character + text[position:], "f.xml")
    assert report.ok or report.errors


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(FIXTURES), st.lists(mutation, min_size=1, max_size=3))
def test_written_programs_read_back_identically(name: str, mutations) -> None:
    from collc.msccl.reader import read_xml

    algo = mutate(name, mutations)
    text = to_xml(algo)
    assert to_xml(read_xml(text)) == text
