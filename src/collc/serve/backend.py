"""Where slices run: the worker interface, and worker processes on this machine.

The scheduler sees only :class:`Backend`: ``run`` a slice on a free worker, ``stop`` a running slice at
its next step, and get each slice's :class:`~collc.serve.steps.SliceOutcome` (and each step's progress)
through callbacks. A preempted job's live state stays on its worker (the job then runs there next,
``placeable``) unless the worker spills it as bytes, which may run on any worker, so a backend on a
distributed engine is a second implementation of the same methods: with Ray, each worker would be
an actor running :func:`collc.serve.steps.run_slice`, the state an object reference (Ray's object
spilling would then do the offloading), and ``stop`` a flag the actor polls between steps.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from collc.serve.steps import HELD_STATES, HeldStates, JobSpec, SliceOutcome, run_slice


@dataclass(frozen=True)
class SliceTask:
    """A slice to run: the job, its request, its state (None: from the start) and its quantum."""

    job: str
    spec: JobSpec
    blob: bytes | None
    quantum: float
    max_gpus: int


@dataclass(frozen=True)
class StepNote:
    """Sent by a worker before each step: which step the job is at, for its status."""

    job: str
    stage: str
    progress: float


class Backend(ABC):
    """Runs slices on ``workers`` workers; reports through ``on_outcome`` and ``on_step``."""

    workers: int

    @abstractmethod
    def start(self, on_outcome: Callable[[SliceOutcome], None], on_step: Callable[[StepNote], None]) -> None:
        """Start the workers."""

    @abstractmethod
    def run(self, task: SliceTask) -> None:
        """Run ``task`` on a free worker (the caller keeps at most ``workers`` slices running)."""

    @abstractmethod
    def stop(self, job: str) -> None:
        """Ask the slice running ``job`` to stop after its current step."""

    def placeable(self, job: str) -> bool:
        """Whether ``job`` can run now: a job whose live state a busy worker holds waits for it."""
        return True

    @abstractmethod
    def close(self) -> None:
        """Stop the workers (a running slice is abandoned; its job is queued again on restart)."""


def _exit_with_parent() -> None:
    """End this worker as soon as the server process is gone, whatever ended it.

    A server stopped by a signal or ``kill -9`` never gets to close its workers (uvicorn re-raises the
    signal it caught once it has shut down), and a worker mid-step would otherwise go on compiling as
    an orphan while the restarted server runs the job again. The job itself is safe: it is still
    active in the store and is queued again on restart.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="collc-parent-watch", daemon=True).start()


def _worker_main(
    connection: Connection, stop_flag: multiprocessing.synchronize.Event, held_states: int
) -> None:
    """A worker process: run the slices it is sent, one at a time, until it is sent None."""
    _exit_with_parent()
    held = HeldStates(held_states)
    while True:
        task: SliceTask | None = connection.recv()
        if task is None:
            return

        def on_step(stage: str, share: float, job: str = task.job) -> None:
            connection.send(StepNote(job, stage, share))

        outcome = run_slice(
            task.job, task.spec, task.blob, task.quantum, task.max_gpus, stop_flag.is_set, on_step, held
        )
        connection.send(outcome)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    connection: Connection
    stop_flag: multiprocessing.synchronize.Event
    job: str | None = None
    holding: set[str] = field(default_factory=set)  # jobs whose live state it keeps (HeldStates)


class ProcessBackend(Backend):
    """``workers`` processes started with ``spawn`` (a fresh interpreter: no threads or sockets of the
    server are inherited), each with a pipe and a stop flag; one thread per worker reads its pipe."""

    def __init__(self, workers: int, held_states: int = HELD_STATES):
        self.workers, self.held_states = workers, held_states
        self._context = multiprocessing.get_context("spawn")
        self._pool: list[_Worker] = []
        self._lock = threading.Lock()
        self._closing = False

    def start(self, on_outcome: Callable[[SliceOutcome], None], on_step: Callable[[StepNote], None]) -> None:
        self._on_outcome, self._on_step = on_outcome, on_step
        for _ in range(self.workers):
            self._spawn()

    def _spawn(self) -> None:
        ours, theirs = self._context.Pipe()
        flag = self._context.Event()
        arguments = (theirs, flag, self.held_states)
        process = self._context.Process(target=_worker_main, args=arguments, daemon=True)
        process.start()
        worker = _Worker(process, ours, flag)
        with self._lock:
            self._pool.append(worker)
        threading.Thread(target=self._read, args=(worker,), daemon=True).start()

    def _read(self, worker: _Worker) -> None:
        """Pass a worker's messages on; when its process dies (killed, out of memory), fail its job
        with one line and start a replacement."""
        while True:
            try:
                message = worker.connection.recv()
            except (EOFError, OSError):
                break
            if isinstance(message, StepNote):
                self._on_step(message)
                continue
            with self._lock:
                worker.job = None
                worker.holding.difference_update(job for job, _ in message.spilled)
                if message.held:
                    worker.holding.add(message.job)
                else:
                    worker.holding.discard(message.job)
            self._on_outcome(message)
        with self._lock:
            if self._closing:
                return
            self._pool.remove(worker)
            job, worker.job = worker.job, None
        worker.process.join(timeout=5)
        if job is not None:
            error = f"error: the worker process died (exit code {worker.process.exitcode}; out of memory?)"
            self._on_outcome(
                SliceOutcome(job=job, used=0.0, steps=0, stage="", progress=0.0, error=error, exit_code=2)
            )
        self._spawn()

    def run(self, task: SliceTask) -> None:
        """Run on the worker that holds the job's live state (:class:`~collc.serve.steps.HeldStates`;
        the caller checked it is free, :meth:`placeable`), else on the first free worker."""
        with self._lock:
            worker = self._holder(task.job) or next(w for w in self._pool if w.job is None)
            worker.job = task.job
            worker.stop_flag.clear()
        worker.connection.send(task)

    def placeable(self, job: str) -> bool:
        with self._lock:
            holder = self._holder(job)
            return holder is None or holder.job is None

    def _holder(self, job: str) -> _Worker | None:
        """The worker that keeps ``job``'s live state, if one does (called with the lock held)."""
        return next((w for w in self._pool if job in w.holding), None)

    def stop(self, job: str) -> None:
        with self._lock:
            for worker in self._pool:
                if worker.job == job:
                    worker.stop_flag.set()

    def close(self) -> None:
        with self._lock:
            self._closing = True
        for worker in self._pool:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
        for worker in self._pool:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
        self._pool.clear()
