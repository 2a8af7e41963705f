"""Verification in slices (collc.verify.Verification): a run stopped at every deadline and resumed
reports exactly what one uninterrupted run reports, defects included."""

from __future__ import annotations

import pytest

from collc.compile import CompileOptions, compile_schedule
from collc.topology import load
from collc.verify import Verification, order, verify
from collc.verify.simulate import PROGRESS_EVERY

from .programs import (
    allpairs_allreduce,
    exchange,
    fixture,
    reducescatter_through_other_blocks,
    without_reducer_wait,
)


def _sliced(algo, **kwargs):
    """The report of a verification given a deadline already past at every call, and the calls."""
    verification = Verification(algo, **kwargs)
    for calls in range(1, 10_000):
        if verification.advance(deadline=0.0):
            return verification.report, calls
    raise AssertionError("the verification never ended")


@pytest.fixture(scope="module")
def compiled():
    """A compiled 16-GPU allreduce: its simulation runs many times PROGRESS_EVERY threadblocks."""
    result = compile_schedule(load("dgx-a100", {"boxes": "2"}), CompileOptions(coll="allreduce", k=1))
    return result.algorithm


def test_a_long_case_is_cut_into_slices_and_reports_the_same(compiled):
    report, calls = _sliced(compiled, runtime="msccl-executor")
    whole = verify(compiled, runtime="msccl-executor")
    assert calls > 1  # one case, so it was stopped inside it
    assert report.problems == whole.problems == [] and report.notes == whole.notes


@pytest.mark.parametrize(
    "algo",
    [
        exchange(3, "Simple"),  # deadlock
        allpairs_allreduce(4),  # deadlocks past a size: the size-limit note
        reducescatter_through_other_blocks(),
        fixture("ring_allreduce_4x2"),
    ],
)
def test_defects_are_reported_alike_in_slices(algo):
    report, _ = _sliced(algo, filename="x.xml")
    whole = verify(algo, filename="x.xml")
    assert report.problems == whole.problems and report.notes == whole.notes


def test_a_slice_ends_soon_after_its_deadline(compiled):
    """advance() checks the deadline every PROGRESS_EVERY threadblock runs: a past deadline stops it
    after the first such check, not at the end of the case."""
    verification = Verification(compiled)
    assert not verification.advance(deadline=0.0)
    assert verification.simulator is not None and verification.simulator._runs == PROGRESS_EVERY


def test_race_checks_decided_a_rank_at_a_time_in_slices_report_the_same(monkeypatch):
    """With one rank per group of race checks, a stopped run also stops between groups; the races
    reported are those of one uninterrupted run (RCCL's all-pairs shape, one wait dropped)."""
    algo = without_reducer_wait(allpairs_allreduce(4))
    whole = verify(algo, runtime="rccl")
    assert "race" in whole.rules()
    monkeypatch.setattr(order, "PASS_BYTES", 1)
    steps: list[str] = []
    verification = Verification(algo, runtime="rccl", progress=lambda stage, done, total: steps.append(stage))
    while not verification.advance(deadline=0.0):
        pass
    assert verification.report.problems == whole.problems and verification.report.notes == whole.notes
    assert sum(stage.startswith("verify: race checks") for stage in steps) == 4  # a group per rank
