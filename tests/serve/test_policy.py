"""The scheduling policies on synthetic job streams, replayed in virtual time by
:func:`collc.serve.replay.replay` (one worker unless a test says otherwise; steps of ``STEP`` seconds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.serve.policy import FCFS, MLFQ, POLICIES, MLFQConfig, Policy, make_policy
from collc.serve.replay import ModelJob
from collc.serve.replay import replay as replay_jobs

STEP = 0.1


@dataclass(frozen=True)
class Arrival:
    job: str
    at: float
    work: float  # seconds of steps the job needs
    first_stage: float = 0.0


def replay(policy: Policy, arrivals: list[Arrival], horizon: float = 1000.0) -> dict[str, float]:
    """Completion time of every job that finishes before ``horizon``: its work in steps of ``STEP``."""
    jobs = [ModelJob(a.job, a.at, (STEP,) * max(1, round(a.work / STEP)), a.first_stage) for a in arrivals]
    return replay_jobs(policy, jobs, horizon=horizon)


def test_fcfs_runs_jobs_to_completion_in_arrival_order():
    policy = FCFS()
    done = replay(policy, [Arrival("long", 0, 5.0), Arrival("short", 0.1, 0.2), Arrival("mid", 0.2, 1.0)])
    assert sorted(done, key=done.get) == ["long", "short", "mid"]
    assert done["short"] == pytest.approx(5.2)


def test_mlfq_lets_a_short_job_pass_a_long_one():
    """Head-of-line blocking: the short job waits 5 s behind the long one under FCFS, one quantum under
    MLFQ (the long job is demoted once its 0.5 s are used)."""
    arrivals = [Arrival("long", 0, 5.0), Arrival("short", 0.1, 0.2)]
    done = replay(MLFQ(MLFQConfig(base_quantum=0.5)), arrivals)
    assert done["short"] == pytest.approx(0.7)
    assert done["long"] == pytest.approx(5.2)


def test_mlfq_preempts_a_demoted_job_between_steps_for_a_new_one():
    """A job in a lower level stops at its next step when a new job arrives at level 0."""
    arrivals = [Arrival("long", 0, 5.0), Arrival("short", 2.0, 0.3)]
    done = replay(MLFQ(MLFQConfig(base_quantum=0.5)), arrivals)
    assert done["short"] == pytest.approx(2.3)


def test_quanta_grow_geometrically_and_jobs_are_demoted_as_they_use_them():
    config = MLFQConfig(levels=4, base_quantum=0.5, growth=4.0)
    assert [config.quantum(level) for level in range(4)] == [0.5, 2.0, 8.0, math.inf]
    policy = MLFQ(config)
    policy.admit("a", 0.0, 0.0)
    levels = []
    for _ in range(4):
        chosen = policy.pick(0.0)
        assert chosen is not None
        levels.append((policy.level("a"), chosen.quantum))
        policy.returned("a", min(chosen.quantum, 100.0), 0.0)
    assert levels == [(0, 0.5), (1, 2.0), (2, 8.0), (3, math.inf)]


def test_a_job_stopped_early_keeps_its_level_and_the_rest_of_its_quantum():
    policy = MLFQ(MLFQConfig(base_quantum=0.5, growth=4.0))
    policy.admit("a", 0.0, 0.0)
    policy.returned("a", policy.pick(0.0).quantum, 0.0)  # demoted to level 1 (2 s)
    assert policy.pick(0.0).quantum == 2.0
    policy.returned("a", 0.5, 0.0)
    assert (policy.level("a"), policy.pick(0.0).quantum) == (1, 1.5)


@pytest.mark.parametrize(
    ("first_stage", "level"), [(0.0, 0), (0.5, 0), (0.51, 1), (2.0, 1), (7.9, 2), (8.1, 3), (1e6, 3)]
)
def test_skip_join_places_a_job_by_its_predicted_first_stage(first_stage, level):
    skip = MLFQ(MLFQConfig(base_quantum=0.5, growth=4.0), skip_join=True)
    plain = MLFQ(MLFQConfig(base_quantum=0.5, growth=4.0))
    skip.admit("j", 0.0, first_stage)
    plain.admit("j", 0.0, first_stage)
    assert skip.level("j") == level
    assert plain.level("j") == 0


def test_skip_join_spares_a_big_job_the_demotions_plain_mlfq_makes():
    """A 12 s job predicted at 9 s of first stage: plain MLFQ hands it back after 0.5, 2 and 8 s (three
    preemptions); skip-join starts it in the last level and runs it in one slice."""
    slices = {}
    for name in ("mlfq", "skip-join"):
        policy = make_policy(name, MLFQConfig(base_quantum=0.5, growth=4.0))
        policy.admit("big", 0.0, 9.0)
        count, left = 0, 12.0
        while left > 0 and count < 10:
            chosen = policy.pick(0.0)
            count += 1
            run = min(chosen.quantum, left)
            left -= run
            if left > 0:
                policy.returned("big", run, 0.0)
        slices[name] = count
    assert slices == {"mlfq": 4, "skip-join": 1}


def test_aging_bounds_the_wait_of_a_demoted_job_under_a_stream_of_short_ones():
    """A long job sinks to the last level; then short jobs keep the worker busy. With aging every 5 s
    it is promoted back and runs within levels x aging; without aging (1e9 s) it starves."""
    stream = [Arrival(f"s{i}", 1.0 + 0.3 * i, 0.3) for i in range(300)]
    for aging, starves in ((5.0, False), (1e9, True)):
        policy = MLFQ(MLFQConfig(levels=3, base_quantum=0.5, growth=2.0, aging=aging))
        done = replay(policy, [Arrival("long", 0.0, 1.6), *stream], horizon=80.0)
        assert ("long" not in done) == starves
        if not starves:
            assert done["long"] <= 1.0 + 3 * aging + 2.0


def test_fcfs_never_preempts_and_has_one_queue():
    policy = FCFS()
    policy.admit("a", 0.0, 100.0)
    policy.admit("b", 1.0, 0.0)
    assert policy.pick(1.0).quantum == math.inf
    assert not policy.outranks("a", 2.0)
    assert policy.queue_lengths() == [1]


def test_queue_lengths_and_resume_order_follow_the_levels():
    policy = MLFQ(MLFQConfig(base_quantum=0.5, growth=4.0), skip_join=True)
    for job, first in (("big", 100.0), ("mid", 1.0), ("small", 0.1), ("small2", 0.1)):
        policy.admit(job, 0.0, first)
    assert policy.queue_lengths() == [2, 1, 0, 1]
    assert policy.resume_order(0.0) == ["small", "small2", "mid", "big"]
    chosen = policy.pick(0.0)
    assert chosen.job == "small"
    assert policy.resume_order(0.0) == ["small2", "mid", "big"]


def test_unknown_policy_and_bad_configuration_are_refused():
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("lifo")
    with pytest.raises(ValueError):
        MLFQ(MLFQConfig(base_quantum=0.0))
    assert set(POLICIES) == {"fcfs", "mlfq", "skip-join"}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(1, 40), st.floats(0, 20)), min_size=1, max_size=12),
    st.sampled_from(POLICIES),
)
def test_every_job_finishes_once_and_no_work_is_lost(jobs, name):
    """Any stream, any policy: each job completes exactly once, and the worker is never idle while a
    job waits (the last completion is the total work after the last idle gap)."""
    arrivals = [Arrival(f"j{i}", at * 0.1, work * STEP, first) for i, (at, work, first) in enumerate(jobs)]
    done = replay(make_policy(name, MLFQConfig(base_quantum=0.3, aging=2.0)), arrivals, horizon=1e4)
    assert set(done) == {a.job for a in arrivals}
    busy_until = 0.0
    for arrival in sorted(arrivals, key=lambda a: a.at):
        busy_until = max(busy_until, arrival.at) + arrival.work
    assert max(done.values()) == pytest.approx(busy_until)


@pytest.mark.parametrize("name", POLICIES)
def test_a_pick_skips_jobs_that_cannot_run_now_and_leaves_them_waiting(name):
    """A job whose live state a busy worker holds cannot run elsewhere: the next runnable one goes."""
    policy = make_policy(name)
    for index, job in enumerate(("held", "free")):
        policy.admit(job, float(index), 0.0)
    chosen = policy.pick(2.0, lambda job: job != "held")
    assert chosen is not None and chosen.job == "free"
    assert policy.pick(2.0, lambda job: job != "held") is None
    again = policy.pick(2.0)
    assert again is not None and again.job == "held"
