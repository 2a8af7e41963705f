"""Which compile job runs next: first-come-first-served, MLFQ and skip-join MLFQ behind one interface.

A compile is a sequence of steps (:mod:`collc.compile.driver`), and a job can only be stopped between
two of them. The scheduler asks the policy for a *slice*: a job and the seconds of work it may do
before it must come back (its quantum). A job that comes back unfinished is charged the seconds it used
and queued again; a job may also be stopped early when a waiting job outranks it (:meth:`Policy.outranks`).

- **FCFS** runs every job to completion in arrival order: one 1,024-GPU compile holds a worker for
  minutes while 8-GPU jobs queue behind it (head-of-line blocking).
- **MLFQ** has ``levels`` queues; level ``i`` has the quantum ``base_quantum * growth**i``. Every job
  joins level 0 and is demoted one level each time it uses up its level's quantum, so short jobs
  finish in the first levels and long ones sink. Within a level, jobs run in the order they entered it.
- **Skip-join MLFQ** (FastServe's rule) knows a job's input before it runs: the fabric's size predicts
  the cost of its first stage. The job joins the highest level whose quantum covers that prediction,
  skipping the levels it would only be demoted from (each demotion costs a preemption and a requeue).

Both MLFQs age waiting jobs: a job that has waited ``aging`` seconds in its level since it entered it
is promoted one level (and again after each further ``aging`` seconds), so no job waits forever behind
a stream of short ones. A job at level ``L`` waits at most ``L * aging`` seconds plus the work queued
at level 0 before it is first in line.

The policy is pure: it holds no clock and no I/O; every method takes ``now`` from the caller, so a
synthetic job stream replays exactly.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Slice:
    """The next job to run and the seconds it may run before it must come back (``inf``: to the end)."""

    job: str
    quantum: float


@dataclass
class _Entry:
    """A job the policy knows: its level, when it entered that level and the service used there."""

    job: str
    level: int
    entered: float  # when the job entered its level's queue (aging counts from here)
    order: int  # tie-break within a level: the order of entering it
    used: float = 0.0  # seconds of work done at this level
    running: bool = False


class Policy(ABC):
    """The interface every policy implements; the scheduler calls nothing else."""

    name: str
    levels = 1

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._counter = itertools.count()

    @abstractmethod
    def admit(self, job: str, now: float, first_stage: float) -> None:
        """A new job; ``first_stage`` is the predicted seconds of its first stage."""

    @abstractmethod
    def quantum(self, entry: _Entry) -> float:
        """The seconds ``entry`` may still run in one slice."""

    def _key(self, entry: _Entry) -> tuple[int, int]:
        """Smaller runs first: the level, then the order of entering it."""
        return (entry.level, entry.order)

    def _age(self, now: float) -> None:  # noqa: B027 (only the MLFQs age; FCFS keeps arrival order)
        """Promote jobs that waited too long."""

    def pick(self, now: float, runnable: Callable[[str], bool] = lambda job: True) -> Slice | None:
        """The waiting job to run next among those ``runnable`` now (it is running from now on), or
        None if none waits."""
        self._age(now)
        waiting = [entry for entry in self._entries.values() if not entry.running and runnable(entry.job)]
        if not waiting:
            return None
        entry = min(waiting, key=self._key)
        entry.running = True
        return Slice(entry.job, self.quantum(entry))

    def returned(self, job: str, used: float, now: float) -> None:
        """``job`` stopped unfinished after ``used`` seconds of its slice: charge it and queue it again."""
        entry = self._entries[job]
        entry.running = False
        entry.used += used
        self._requeue(entry, now)

    def _requeue(self, entry: _Entry, now: float) -> None:
        entry.entered, entry.order = now, next(self._counter)

    def remove(self, job: str) -> None:
        """``job`` finished, failed or was cancelled (waiting or running)."""
        self._entries.pop(job, None)

    def outranks(self, job: str, now: float) -> bool:
        """Whether a waiting job would run before the running ``job``: then ``job`` should stop at its
        next step so the waiting one can have its worker."""
        self._age(now)
        running = self._entries[job]
        return any(
            self._key(entry) < self._key(running) for entry in self._entries.values() if not entry.running
        )

    def level(self, job: str) -> int:
        return self._entries[job].level

    def queue_lengths(self) -> list[int]:
        """Waiting jobs per level (one level for FCFS)."""
        lengths = [0] * self.levels
        for entry in self._entries.values():
            if not entry.running:
                lengths[entry.level] += 1
        return lengths

    def resume_order(self, now: float) -> list[str]:
        """Waiting jobs, the next to run first: whose state to keep in memory, whose to offload last."""
        self._age(now)
        waiting = [entry for entry in self._entries.values() if not entry.running]
        return [entry.job for entry in sorted(waiting, key=self._key)]


class FCFS(Policy):
    """First come, first served, each job to completion."""

    name = "fcfs"

    def admit(self, job: str, now: float, first_stage: float) -> None:
        self._entries[job] = _Entry(job, 0, now, next(self._counter))

    def quantum(self, entry: _Entry) -> float:
        return math.inf

    def _requeue(self, entry: _Entry, now: float) -> None:
        """A job handed back (a restart) keeps its place in line."""


@dataclass(frozen=True)
class MLFQConfig:
    """The parameters of the MLFQs (docs/serve.md explains how they were chosen)."""

    levels: int = 4
    base_quantum: float = 0.5  # seconds of the top level
    growth: float = 4.0  # each level's quantum is this many times the one above
    aging: float = 60.0  # seconds of waiting in a level that promote a job one level

    def quantum(self, level: int) -> float:
        """The quantum of ``level``; the last level runs a job to completion (``inf``)."""
        return math.inf if level == self.levels - 1 else self.base_quantum * self.growth**level

    def join_level(self, first_stage: float) -> int:
        """Skip-join: the highest level whose quantum covers the predicted first stage."""
        return next(level for level in range(self.levels) if first_stage <= self.quantum(level))


class MLFQ(Policy):
    """Multi-level feedback queue with geometric quanta and aging; ``skip_join`` places a new job by
    its predicted first stage instead of at the top."""

    def __init__(self, config: MLFQConfig | None = None, *, skip_join: bool = False) -> None:
        super().__init__()
        self.config = config or MLFQConfig()
        if self.config.levels < 1 or self.config.base_quantum <= 0 or self.config.growth < 1:
            raise ValueError(f"invalid MLFQ configuration {self.config}")
        self.levels = self.config.levels
        self.skip_join = skip_join
        self.name = "skip-join" if skip_join else "mlfq"

    def admit(self, job: str, now: float, first_stage: float) -> None:
        level = self.config.join_level(first_stage) if self.skip_join else 0
        self._entries[job] = _Entry(job, level, now, next(self._counter))

    def quantum(self, entry: _Entry) -> float:
        return self.config.quantum(entry.level) - entry.used

    def _requeue(self, entry: _Entry, now: float) -> None:
        """Demote a job that used up its level's quantum; a job stopped early keeps its level."""
        if entry.used >= self.config.quantum(entry.level) and entry.level < self.levels - 1:
            entry.level += 1
            entry.used = 0.0
        super()._requeue(entry, now)

    def _age(self, now: float) -> None:
        for entry in self._entries.values():
            if entry.running:
                continue
            while entry.level > 0 and now - entry.entered >= self.config.aging:
                entry.level -= 1
                entry.used = 0.0
                entry.entered += self.config.aging


def make_policy(name: str, config: MLFQConfig | None = None) -> Policy:
    """The policy called ``name``: ``fcfs``, ``mlfq`` or ``skip-join``."""
    if name == "fcfs":
        return FCFS()
    if name in ("mlfq", "skip-join"):
        return MLFQ(config, skip_join=name == "skip-join")
    raise ValueError(f"unknown policy {name!r}; use one of: {', '.join(POLICIES)}")


POLICIES = ("fcfs", "mlfq", "skip-join")
