"""Where slices run: the worker interface, the pool of workers, and worker processes on this machine.

The scheduler sees only :class:`Backend`: ``run`` a slice on a free worker, ``stop`` a running slice at
its next step, and get each slice's :class:`~collc.serve.steps.SliceOutcome` (and each step's progress)
through callbacks. A preempted job's live state stays on its worker (the job then runs there next,
``placeable``) unless the worker spills it as bytes, which may run on any worker, so a backend on a
distributed engine is a second implementation of the same methods (:mod:`collc.serve.ray_backend`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

from collc.predict.des import set_simulation_threads
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


class StopFlag:
    """A worker's stop flag: one byte of memory shared with the server. Not an ``Event``, whose
    named semaphores the server's resource tracker reports as leaked when the server ends by the
    signal it was stopped with (uvicorn re-raises it after shutting down, so the interpreter's exit
    handlers that would unlink them never run)."""

    def __init__(self, context: multiprocessing.context.SpawnContext):
        self._byte = context.RawValue("b", 0)

    def set(self) -> None:
        self._byte.value = 1

    def clear(self) -> None:
        self._byte.value = 0

    def is_set(self) -> bool:
        return bool(self._byte.value)


def _worker_main(connection: Connection, stop_flag: StopFlag, held_states: int) -> None:
    """A worker process: run the slices it is sent, one at a time, until it is sent None."""
    _exit_with_parent()
    set_simulation_threads(1)  # a worker per CPU: its simulations run one at a time
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
class Worker:
    """One worker as the pool sees it: the job whose slice it runs, and the jobs whose live states it
    keeps (:class:`~collc.serve.steps.HeldStates`)."""

    job: str | None = field(default=None, init=False)
    holding: set[str] = field(default_factory=set, init=False)


class WorkerPool(Backend):
    """What every backend with a fixed set of workers shares: a job runs on the worker that holds its
    live state, else on a free one; a worker's outcome updates what it holds; a worker that dies fails
    its job with one line and is replaced. Subclasses move tasks and messages (:meth:`_spawn`,
    :meth:`_send`, :meth:`_interrupt`, :meth:`_shut`) and call :meth:`_received` and :meth:`_lost`."""

    def __init__(self, workers: int, held_states: int = HELD_STATES):
        self.workers, self.held_states = workers, held_states
        self._pool: list[Worker] = []
        self._lock = threading.Lock()
        self._closing = False

    def start(self, on_outcome: Callable[[SliceOutcome], None], on_step: Callable[[StepNote], None]) -> None:
        self._on_outcome, self._on_step = on_outcome, on_step
        for _ in range(self.workers):
            self._add(self._spawn())

    def _add(self, worker: Worker) -> None:
        with self._lock:
            self._pool.append(worker)

    def _received(self, worker: Worker, message: StepNote | SliceOutcome) -> None:
        """Pass on a message from ``worker``: a step's progress, or its slice's outcome."""
        if isinstance(message, StepNote):
            self._on_step(message)
            return
        with self._lock:
            worker.job = None
            worker.holding.difference_update(job for job, _ in message.spilled)
            if message.held:
                worker.holding.add(message.job)
            else:
                worker.holding.discard(message.job)
        self._on_outcome(message)

    def _lost(self, worker: Worker, error: str) -> None:
        """``worker`` is gone (killed, out of memory, its node lost): fail its job with the one line
        ``error`` and start a replacement. Its live states are lost; those jobs start over when they
        next run."""
        with self._lock:
            if self._closing:
                return
            self._pool.remove(worker)
            job, worker.job = worker.job, None
        if job is not None:
            self._on_outcome(
                SliceOutcome(job=job, used=0.0, steps=0, stage="", progress=0.0, error=error, exit_code=2)
            )
        self._add(self._spawn())

    def run(self, task: SliceTask) -> None:
        """Run on the worker that holds the job's live state (:class:`~collc.serve.steps.HeldStates`;
        the caller checked it is free, :meth:`placeable`), else on the first free worker."""
        with self._lock:
            worker = self._holder(task.job) or next(w for w in self._pool if w.job is None)
            worker.job = task.job
        self._send(worker, task)

    def placeable(self, job: str) -> bool:
        with self._lock:
            holder = self._holder(job)
            return holder is None or holder.job is None

    def _holder(self, job: str) -> Worker | None:
        """The worker that keeps ``job``'s live state, if one does (called with the lock held)."""
        return next((w for w in self._pool if job in w.holding), None)

    def stop(self, job: str) -> None:
        with self._lock:
            running = [worker for worker in self._pool if worker.job == job]
        for worker in running:
            self._interrupt(worker, job)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            pool, self._pool = list(self._pool), []
        self._shut(pool)

    @abstractmethod
    def _spawn(self) -> Worker:
        """Start a worker that passes its messages to :meth:`_received` (and :meth:`_lost`)."""

    @abstractmethod
    def _send(self, worker: Worker, task: SliceTask) -> None:
        """Hand ``task`` to ``worker`` (free until now)."""

    @abstractmethod
    def _interrupt(self, worker: Worker, job: str) -> None:
        """Ask ``worker`` to end its slice of ``job`` after the current step."""

    @abstractmethod
    def _shut(self, pool: list[Worker]) -> None:
        """Stop the workers of ``pool``."""


@dataclass
class _Process(Worker):
    process: multiprocessing.process.BaseProcess
    connection: Connection
    stop_flag: StopFlag


class ProcessBackend(WorkerPool):
    """``workers`` processes started with ``spawn`` (a fresh interpreter: no threads or sockets of the
    server are inherited), each with a pipe and a stop flag; one thread per worker reads its pipe."""

    def __init__(self, workers: int, held_states: int = HELD_STATES):
        super().__init__(workers, held_states)
        self._context = multiprocessing.get_context("spawn")

    def _spawn(self) -> Worker:
        ours, theirs = self._context.Pipe()
        flag = StopFlag(self._context)
        arguments = (theirs, flag, self.held_states)
        process = self._context.Process(target=_worker_main, args=arguments, daemon=True)
        process.start()
        worker = _Process(process, ours, flag)
        threading.Thread(target=self._read, args=(worker,), daemon=True).start()
        return worker

    def _read(self, worker: _Process) -> None:
        """Pass a worker's messages on until its pipe closes."""
        while True:
            try:
                message = worker.connection.recv()
            except (EOFError, OSError):
                break
            self._received(worker, message)
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        self._lost(worker, f"error: the worker process died (exit code {code}; out of memory?)")

    def _send(self, worker: Worker, task: SliceTask) -> None:
        assert isinstance(worker, _Process)
        worker.stop_flag.clear()
        worker.connection.send(task)

    def _interrupt(self, worker: Worker, job: str) -> None:
        assert isinstance(worker, _Process)
        worker.stop_flag.set()

    def _shut(self, pool: list[Worker]) -> None:
        processes = [worker for worker in pool if isinstance(worker, _Process)]
        for worker in processes:
            with contextlib.suppress(OSError):
                worker.connection.send(None)
        for worker in processes:
            worker.process.join(timeout=2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(timeout=2)
