"""The verifier never crashes: random mutations of correct programs and of their text always give a
report (and a mutated valid file is either still valid or names a rule)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.msccl.program import STEP_TYPES
from collc.msccl.writer import to_xml
from collc.verify import verify, verify_text

from .programs import fixture

FIXTURES = ("ring_allgather_4", "ring_allreduce_4x2", "tree_allreduce_3")
STEP_FIELDS = ("s", "srcoff", "dstoff", "cnt", "depid", "deps", "hasdep")
TB_FIELDS = ("send", "recv", "chan")

mutation = st.tuples(
    st.sampled_from(["step", "tb", "type", "buffer", "drop"]),
    st.integers(0, 10_000),
    st.sampled_from(STEP_FIELDS + TB_FIELDS),
    st.integers(-2, 9),
)


def mutate(name: str, mutations) -> object:
    algo = fixture(name)
    for kind, which, field, value in mutations:
        gpu = algo.gpus[which % len(algo.gpus)]
        tb = gpu.tbs[which % len(gpu.tbs)]
        if not tb.steps:
            continue
        step = tb.steps[which % len(tb.steps)]
        if kind == "step" and field in STEP_FIELDS:
            setattr(step, field, value)
        elif kind == "tb" and field in TB_FIELDS:
            setattr(tb, field, value)
        elif kind == "type":
            step.type = STEP_TYPES[value % len(STEP_TYPES)]
        elif kind == "buffer":
            step.srcbuf = "ios"[value % 3]
        elif kind == "drop":
            tb.steps.remove(step)
    return algo


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
