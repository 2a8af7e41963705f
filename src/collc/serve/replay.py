"""A job stream replayed through a scheduling policy in virtual time: what the policy alone does to job
completion times, without the server's own costs (HTTP, processes, state handling).

It does what the scheduler does (:mod:`collc.serve.scheduler`, :func:`collc.serve.steps.run_slice`):
an idle worker asks the policy for a slice; the job runs step by step, and always at least one step;
after each step it is handed back when its quantum is used up or a waiting job outranks it; jobs are
admitted as they arrive. A step is never interrupted, so the length of the compile's steps bounds how
soon a new job can start. ``scripts/bench_serve.py --model`` replays the benchmark's trace this way with
the step times measured on this machine, next to :func:`srpt_completions`, the shortest-remaining-time
schedule that no policy can beat on one worker.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from collc.serve.policy import Policy


@dataclass(frozen=True)
class ModelJob:
    """A job of the stream: when it arrives and how long each of its compile steps takes."""

    job: str
    at: float
    steps: tuple[float, ...]
    first_stage: float = 0.0  # the predicted first stage the policy is told (Policy.admit)

    @property
    def work(self) -> float:
        return sum(self.steps)


@dataclass
class _Slice:
    job: str
    quantum: float
    used: float = 0.0


def replay(
    policy: Policy, jobs: list[ModelJob], workers: int = 1, horizon: float = math.inf
) -> dict[str, float]:
    """Completion time of every job that finishes by ``horizon``, with ``workers`` workers.

    Events are arrivals and ends of steps, handled in time order (arrivals first at equal times, then
    workers in index order), so the replay is deterministic. Each event either admits a job or ends a
    step, so the loop runs at most ``len(jobs) + total steps`` times.
    """
    if workers < 1:
        raise ValueError("a replay needs at least one worker")
    by_name = {job.job: job for job in jobs}
    left = {job.job: list(job.steps) for job in jobs}
    events: list[tuple[float, int, int, str]] = [(job.at, 0, -1, job.job) for job in jobs]
    heapq.heapify(events)  # (time, 0 = arrival / 1 = step end, worker, job)
    running: dict[int, _Slice] = {}
    done: dict[str, float] = {}

    def dispatch(now: float) -> None:
        for worker in range(workers):
            if worker in running:
                continue
            chosen = policy.pick(now)
            if chosen is None:
                return
            running[worker] = _Slice(chosen.job, chosen.quantum)
            heapq.heappush(events, (now + left[chosen.job][0], 1, worker, chosen.job))

    while events:
        now, kind, worker, name = heapq.heappop(events)
        if now > horizon:
            break
        if kind == 0:
            policy.admit(name, now, by_name[name].first_stage)
        else:
            current = running[worker]
            current.used += left[name].pop(0)
            if not left[name]:
                policy.remove(name)
                done[name] = now
                del running[worker]
            elif current.used >= current.quantum or policy.outranks(name, now):
                policy.returned(name, current.used, now)
                del running[worker]
            else:
                heapq.heappush(events, (now + left[name][0], 1, worker, name))
        dispatch(now)
    return done


def srpt_completions(jobs: list[ModelJob]) -> dict[str, float]:
    """Completion times on one worker under shortest remaining processing time with instant preemption
    and known sizes: the least mean completion time of any schedule of these jobs (Schrage, "A proof
    of the optimality of the shortest remaining processing time discipline", Operations Research 16,
    1968). Ties go to the earlier arrival. Each loop ends a job or admits one."""
    pending = sorted(jobs, key=lambda job: (job.at, job.job))
    queue: list[tuple[float, float, str]] = []  # (remaining, arrival, job)
    done: dict[str, float] = {}
    now, index = 0.0, 0
    while index < len(pending) or queue:
        if not queue:
            now = max(now, pending[index].at)
        while index < len(pending) and pending[index].at <= now:
            job = pending[index]
            heapq.heappush(queue, (job.work, job.at, job.job))
            index += 1
        remaining, arrival, name = heapq.heappop(queue)
        until = pending[index].at if index < len(pending) else math.inf
        if now + remaining <= until:
            now += remaining
            done[name] = now
        else:
            heapq.heappush(queue, (remaining - (until - now), arrival, name))
            now = until
    return done
