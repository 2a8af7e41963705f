"""The scheduler: admits jobs, asks the policy which runs next, hands slices to the backend, keeps
preempted jobs' states within a memory budget, and records everything in the store.

- **Admission.** A request is checked as the CLI would check it, then hashed (:func:`cache_key`). A
  cached result makes a job that is done on arrival; a request for the key of a job already queued or
  running makes a job that follows that twin (identical concurrent requests coalesce into one compile,
  each with its own id and ``output``); otherwise the job is committed to SQLite and only then
  acknowledged.
- **Preemption.** A slice runs until its quantum is used up; when a waiting job outranks a running one
  and no worker is free, the running slice is asked to stop after its current step. Either way the job
  comes back with its state and is queued again (a *preemption*).
- **Proactive offload.** Preempted jobs' states stay in memory while they fit ``memory_budget`` bytes.
  Beyond it, the states of the jobs that would run last (the policy's resume order) are written to the
  state directory, and read back when their job runs again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from collc.serve.backend import Backend, SliceTask, StepNote
from collc.serve.policy import Policy
from collc.serve.steps import (
    JobSpec,
    SliceOutcome,
    cache_key,
    checked_start,
    first_stage_estimate,
    spec_from_json,
)
from collc.serve.store import ACTIVE, JobRow, Store, StoredResult

#: how often (seconds) the scheduler looks for a waiting job that outranks a running one, and ages
TICK = 0.02
#: job completion time buckets (seconds) of the /metrics histograms
JCT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
#: jobs with at most this many GPUs are also counted in the small-job histogram
SMALL_JOB_GPUS = 16


@dataclass
class Histogram:
    """A Prometheus histogram: cumulative bucket counts, the sum and the count."""

    buckets: tuple[float, ...] = JCT_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(JCT_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        index = next((i for i, bound in enumerate(self.buckets) if value <= bound), len(self.buckets))
        self.counts[index] += 1
        self.total += value

    def lines(self, name: str) -> list[str]:
        rows, running = [], 0
        for bound, count in zip((*map(str, self.buckets), "+Inf"), self.counts, strict=True):
            running += count
            rows.append(f'{name}_bucket{{le="{bound}"}} {running}')
        return [*rows, f"{name}_sum {self.total:.6f}", f"{name}_count {running}"]


@dataclass
class Counters:
    """The service's counters since it started (Prometheus counters)."""

    preemptions: int = 0
    offloads: int = 0
    reloads: int = 0
    cache_hits: int = 0
    coalesced: int = 0
    jct: Histogram = field(default_factory=Histogram)
    small_jct: Histogram = field(default_factory=Histogram)


@dataclass(frozen=True)
class Admission:
    """What a submission became: its job, and whether it was a cache hit or follows a running twin."""

    job: JobRow
    cached: bool = False
    coalesced: bool = False


class Scheduler:
    """One scheduler per server; thread-safe (HTTP handlers, the backend's readers and its own loop)."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        policy: Policy,
        *,
        memory_budget: int,
        max_gpus: int,
        cache: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store, self.backend, self.policy = store, backend, policy
        self.memory_budget, self.max_gpus, self.clock = memory_budget, max_gpus, clock
        self.cache = cache  # False: compile every request (benchmarks), no cache hits or coalescing
        self.counters = Counters()
        self._lock = threading.Condition()
        self._specs: dict[str, JobSpec] = {}
        self._keys: dict[str, str] = {}
        self._gpus: dict[str, int] = {}
        self._blobs: dict[str, bytes] = {}  # preempted jobs' states held in memory
        self._running: set[str] = set()
        self._preemptions: dict[str, int] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="collc-scheduler", daemon=True)

    def start(self) -> None:
        """Start the workers, queue again every job a previous run left unfinished, start scheduling."""
        self.backend.start(self._on_outcome, self._on_step)
        with self._lock:
            for row in self.store.active_jobs():
                self._admit(row, spec_from_json(row.spec))
        self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join(timeout=5)
        self.backend.close()

    # requests

    def submit(self, body: object) -> Admission:
        """Check and admit a request (raises the CLI's InputError on bad input)."""
        spec = spec_from_json(body)
        state = checked_start(spec, self.max_gpus)
        key = cache_key(state)
        with self._lock:
            cached = self.cache and self.store.result(key) is not None
            twin = self.store.active_with_key(key) if self.cache and not cached else None
            job = self.store.add_job(key, spec.to_json(), state.topology.num_gpus, cached=cached, twin=twin)
            if cached:
                self.counters.cache_hits += 1
                self.counters.jct.observe(0.0)
            elif twin is not None:
                self.counters.coalesced += 1
            else:
                self._admit(job, spec)
                self._lock.notify_all()
            return Admission(job, cached=cached, coalesced=twin is not None)

    def cancel(self, job_id: str) -> JobRow | None:
        """Cancel a job that is not over (a running slice stops after its step); None if unknown."""
        with self._lock:
            job = self.store.job(job_id)
            if job is None or job.state not in ACTIVE:
                return job
            self._forget(job_id)
            if job_id in self._running:
                self.backend.stop(job_id)
            self.store.finish(job_id, "cancelled", error="cancelled", exit_code=1)
            self._lock.notify_all()
        return self.store.job(job_id)

    def queue_lengths(self) -> list[int]:
        with self._lock:
            return self.policy.queue_lengths()

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def memory_held(self) -> int:
        with self._lock:
            return sum(map(len, self._blobs.values()))

    # internals (called with the lock held unless said otherwise)

    def _admit(self, job: JobRow, spec: JobSpec) -> None:
        self._specs[job.id], self._keys[job.id], self._gpus[job.id] = spec, job.key, job.gpus
        self._preemptions[job.id] = job.preemptions
        self.policy.admit(job.id, self.clock(), first_stage_estimate(job.gpus))
        self.store.update(job.id, state="queued", level=self.policy.level(job.id))

    def _forget(self, job_id: str) -> None:
        self.policy.remove(job_id)
        for table in (self._specs, self._keys, self._gpus, self._blobs, self._preemptions):
            table.pop(job_id, None)
        self.store.drop_state(job_id)

    def _loop(self) -> None:
        with self._lock:
            while not self._closed:
                self._dispatch()
                self._lock.wait(TICK)

    def _dispatch(self) -> None:
        now = self.clock()
        while len(self._running) < self.backend.workers:
            chosen = self.policy.pick(now, self.backend.placeable)
            if chosen is None:
                break
            job = chosen.job
            blob = self._blobs.pop(job, None)
            if blob is None:
                blob = self.store.reload(job)
                if blob is not None:
                    self.counters.reloads += 1
            self._running.add(job)
            self.store.update(job, state="running", level=self.policy.level(job))
            self.backend.run(SliceTask(job, self._specs[job], blob, chosen.quantum, self.max_gpus))
        if len(self._running) == self.backend.workers:
            for job in self._running:
                if job in self._specs and self.policy.outranks(job, now):
                    self.backend.stop(job)

    def _on_step(self, note: StepNote) -> None:
        """A worker started a step (from a backend reader thread)."""
        with self._lock:
            if note.job in self._specs:
                self.store.update(note.job, stage=note.stage, progress=note.progress)

    def _on_outcome(self, outcome: SliceOutcome) -> None:
        """A slice came back (from a backend reader thread)."""
        with self._lock:
            job = outcome.job
            self._running.discard(job)
            for other, blob in outcome.spilled:  # states its worker no longer holds
                if other in self._specs:
                    self._blobs[other] = blob
            if job not in self._specs:  # cancelled meanwhile
                self._lock.notify_all()
                return
            if outcome.error is not None:
                self.store.finish(job, "failed", error=outcome.error, exit_code=outcome.exit_code)
                self._forget(job)
            elif outcome.xml is not None:
                assert outcome.report is not None and outcome.text is not None
                self.store.put_result(
                    self._keys[job], StoredResult(outcome.xml, outcome.report, outcome.text)
                )
                self._observe(job)
                self.store.finish(job, "done", exit_code=0)
                self._forget(job)
            else:
                assert outcome.held or outcome.state is not None
                now = self.clock()
                self.policy.returned(job, outcome.used, now)
                self.counters.preemptions += 1
                self._preemptions[job] += 1
                if outcome.state is not None:  # else its worker keeps it alive
                    self._blobs[job] = outcome.state
                self.store.update(
                    job,
                    state="preempted",
                    stage=outcome.stage,
                    progress=outcome.progress,
                    level=self.policy.level(job),
                    preemptions=self._preemptions[job],
                )
                self._offload_beyond_budget(now)
            self._lock.notify_all()

    def _observe(self, job: str) -> None:
        row = self.store.job(job)
        assert row is not None
        seconds = time.time() - row.submitted
        self.counters.jct.observe(seconds)
        if row.gpus <= SMALL_JOB_GPUS:
            self.counters.small_jct.observe(seconds)

    def _offload_beyond_budget(self, now: float) -> None:
        """Write the states of the jobs that would run last to disk until the rest fits the budget."""
        held = sum(map(len, self._blobs.values()))
        for job in reversed(self.policy.resume_order(now)):
            if held <= self.memory_budget:
                return
            blob = self._blobs.pop(job, None)
            if blob is not None:
                self.store.offload(job, blob)
                held -= len(blob)
                self.counters.offloads += 1
