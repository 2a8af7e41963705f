"""The virtual-time replay of a job stream (collc.serve.replay): several workers, steps that are never
interrupted, and the shortest-remaining-time schedule as an oracle lower bound."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.serve.policy import FCFS, MLFQ, MLFQConfig, make_policy
from collc.serve.replay import ModelJob, replay, srpt_completions


def test_a_second_worker_takes_the_job_the_first_one_cannot():
    jobs = [ModelJob("a", 0.0, (5.0,)), ModelJob("b", 0.0, (5.0,)), ModelJob("c", 0.1, (0.2,))]
    assert replay(FCFS(), jobs, workers=2)["c"] == pytest.approx(5.2)
    assert replay(FCFS(), jobs, workers=3)["c"] == pytest.approx(0.3)
    with pytest.raises(ValueError):
        replay(FCFS(), jobs, workers=0)


def test_a_step_is_never_interrupted():
    """A short job that arrives during a long job's 2 s step starts when that step ends, however
    high its priority; with the same work cut into 0.25 s steps it waits at most one of them."""
    short = ModelJob("short", 0.5, (0.1,))
    coarse = replay(MLFQ(MLFQConfig(base_quantum=0.1)), [ModelJob("long", 0.0, (2.0, 2.0)), short])
    assert coarse["short"] == pytest.approx(2.1)
    later = ModelJob("short", 0.6, (0.1,))  # arrives 0.1 s into a step
    fine = replay(MLFQ(MLFQConfig(base_quantum=0.1)), [ModelJob("long", 0.0, (0.25,) * 16), later])
    assert fine["short"] == pytest.approx(0.85)
    assert fine["long"] == pytest.approx(4.1)


def test_the_horizon_bounds_the_replay():
    jobs = [ModelJob("a", 0.0, (1.0,) * 10), ModelJob("b", 0.0, (0.5,))]
    assert replay(FCFS(), jobs, horizon=5.0) == {}
    assert replay(FCFS(), jobs, horizon=10.6) == {"a": 10.0, "b": 10.5}


def test_srpt_runs_the_shortest_remaining_job_and_preempts_at_once():
    jobs = [ModelJob("long", 0.0, (3.0,)), ModelJob("short", 1.0, (1.0,)), ModelJob("late", 9.0, (1.0,))]
    assert srpt_completions(jobs) == {"short": 2.0, "long": 4.0, "late": 10.0}


_streams = st.lists(
    st.tuples(
        st.floats(0, 20, allow_nan=False),
        st.lists(st.floats(0.05, 3, allow_nan=False), min_size=1, max_size=5),
        st.floats(0, 5, allow_nan=False),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(_streams)
def test_no_policy_beats_srpt_on_one_worker(stream):
    """Schrage's theorem as an oracle: every policy's mean completion time is at least SRPT's, and
    every job's completion is at least its arrival plus its work."""
    jobs = [ModelJob(f"j{i}", at, tuple(steps), first) for i, (at, steps, first) in enumerate(stream)]
    best = sum(srpt_completions(jobs).values())
    for name in ("fcfs", "mlfq", "skip-join"):
        done = replay(make_policy(name), jobs)
        assert set(done) == {job.job for job in jobs}
        assert all(done[job.job] >= job.at + job.work - 1e-9 for job in jobs)
        assert sum(done.values()) >= best - 1e-6
