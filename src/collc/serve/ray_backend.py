"""Workers as Ray actors: the second :class:`~collc.serve.backend.Backend`, for a service that has
outgrown one machine (``collc serve --backend ray``).

Each worker is an actor that runs :func:`collc.serve.steps.run_slice` and keeps its preempted jobs'
live states between slices (:class:`~collc.serve.steps.HeldStates`), as a worker process does; Ray
places the actors on the cluster's nodes (one CPU each). A slice is a streaming call: it yields one
:class:`~collc.serve.backend.StepNote` per step and then its outcome, read by one thread per slice.
The actor runs two calls at once, so that ``stop`` reaches it while a slice runs; the slice polls the
flag between steps, as in a worker process. A dead actor (killed, out of memory, its node lost) fails
its job with one line and is replaced, as a dead process is.

Ray is imported only when this backend starts: it is an optional dependency (``pip install
'collc[ray]'``), and the actors import collc themselves, so every node of the cluster needs it.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from collc.errors import InputError
from collc.predict.des import set_simulation_threads
from collc.serve.backend import SliceTask, StepNote, Worker, WorkerPool
from collc.serve.steps import HELD_STATES, HeldStates, SliceOutcome, run_slice


class SliceRunner:
    """The actor's class (made remote in :meth:`RayBackend._spawn`): one worker's held states and the
    stop flag of the slice it runs."""

    def __init__(self, held_states: int):
        set_simulation_threads(1)  # an actor per CPU: its simulations run one at a time
        self.held = HeldStates(held_states)
        self.stop_flag = threading.Event()
        self.job: str | None = None

    def run(self, task: SliceTask) -> Iterator[StepNote | SliceOutcome]:
        """Run one slice of ``task``: a note before each step, then the outcome. The slice runs in a
        thread of its own so that its notes can be yielded while it runs."""
        self.job = task.job
        self.stop_flag.clear()
        notes: queue.Queue[StepNote | SliceOutcome] = queue.Queue()

        def slice_() -> None:
            def on_step(stage: str, share: float) -> None:
                notes.put(StepNote(task.job, stage, share))

            notes.put(
                run_slice(
                    task.job,
                    task.spec,
                    task.blob,
                    task.quantum,
                    task.max_gpus,
                    self.stop_flag.is_set,
                    on_step,
                    self.held,
                )
            )

        threading.Thread(target=slice_, name=f"collc-slice-{task.job}", daemon=True).start()
        while True:
            message = notes.get()
            yield message
            if isinstance(message, SliceOutcome):
                self.job = None
                return

    def stop(self, job: str) -> None:
        """End the slice of ``job`` after its current step (a late call for a finished slice is ignored)."""
        if self.job == job:
            self.stop_flag.set()


#: seconds to wait for a cluster's head node to accept a connection (Ray itself retries for minutes)
CONNECT_SECONDS = 5.0


def _check_reachable(address: str) -> None:
    """Fail in one line, within :data:`CONNECT_SECONDS`, when ``address`` (``[ray://]HOST:PORT``) does
    not accept a connection; ``auto`` is left to Ray, which fails at once when there is no cluster."""
    if address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise InputError(
            f"--ray-address {address!r} is not HOST:PORT, ray://HOST:PORT or 'auto'",
            hint="give the head node's address, e.g. 10.0.0.1:6379",
        )
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise InputError(
            f"--ray-address {address}: no Ray head node answers there ({error})",
            hint="start the cluster (ray start --head) or give its head node's HOST:PORT",
        ) from error


@dataclass
class _Actor(Worker):
    handle: Any  # a Ray actor handle


class RayBackend(WorkerPool):
    """``workers`` actors on the Ray cluster at ``address`` (None: a local Ray started here, stopped by
    :meth:`close`; ``"auto"``: the cluster this machine belongs to)."""

    def __init__(self, workers: int, held_states: int = HELD_STATES, address: str | None = None):
        super().__init__(workers, held_states)
        self.address = address
        self._started_ray = False

    def start(self, on_outcome: Callable[[SliceOutcome], None], on_step: Callable[[StepNote], None]) -> None:
        try:
            import ray
        except ImportError as error:
            raise InputError(
                "--backend ray needs Ray, which is not installed",
                hint="pip install 'collc[ray]' (on every node of the cluster)",
            ) from error
        self._ray = ray
        if not ray.is_initialized():
            if self.address is not None:
                _check_reachable(self.address)
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as error:
                raise InputError(
                    f"--ray-address {self.address}: Ray could not start or join a cluster ({error})",
                    hint="give the head node's HOST:PORT (its GCS port, 6379 by default) or 'auto'",
                ) from error
            self._started_ray = True
        self._remote = ray.remote(num_cpus=1, max_concurrency=2)(SliceRunner)
        super().start(on_outcome, on_step)

    def _spawn(self) -> Worker:
        return _Actor(self._remote.remote(self.held_states))

    def _send(self, worker: Worker, task: SliceTask) -> None:
        assert isinstance(worker, _Actor)
        messages = worker.handle.run.options(num_returns="streaming").remote(task)
        threading.Thread(target=self._read, args=(worker, messages), daemon=True).start()

    def _read(self, worker: _Actor, messages: Any) -> None:
        """Pass on one slice's messages; a failed call means the actor is gone."""
        try:
            for reference in messages:
                self._received(worker, self._ray.get(reference))
        except self._ray.exceptions.RayError as error:
            self._lost(worker, f"error: the Ray worker died ({type(error).__name__}; out of memory?)")

    def _interrupt(self, worker: Worker, job: str) -> None:
        assert isinstance(worker, _Actor)
        worker.handle.stop.remote(job)

    def _shut(self, pool: list[Worker]) -> None:
        for worker in pool:
            if isinstance(worker, _Actor):
                with contextlib.suppress(Exception):
                    self._ray.kill(worker.handle)
        if self._started_ray:
            self._ray.shutdown()
