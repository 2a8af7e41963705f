"""The Ray backend (``collc serve --backend ray``) against a local Ray started here: slices run on actors
that keep their preempted jobs alive, a stop reaches a running slice, a dead actor fails its job in one
line and is replaced, and a real server on that backend compiles what ``collc compile`` writes.
Every wait is bounded in count and time."""

from __future__ import annotations

import queue
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import ray
from click.testing import CliRunner

from collc.cli import main
from collc.compile import compile_schedule
from collc.compile.flags import CompileFlags
from collc.serve.backend import SliceTask, StepNote
from collc.serve.ray_backend import RayBackend
from collc.serve.steps import SliceOutcome, load_topology, spec_from_json

from .jobs import FAST, TINY
from .test_server import oracle, running

WAIT_SECONDS = 90


def test_a_server_on_ray_compiles_what_collc_compile_writes(tmp_path):
    """The server starts its own local Ray; every step is a slice (1 ms quantum), the job stays alive
    on its actor between them."""
    args = ("--backend", "ray", "--workers", "1", "--policy", "mlfq", "--quantum", "0.001")
    with running(tmp_path, *args) as server:
        status, job = server.submit(**FAST)
        assert status == 202
        final = server.wait(job["id"])
        assert final["state"] == "done", final
        assert final["preemptions"] > 0
        assert server.call("GET", f"/v1/jobs/{job['id']}/result")[1].decode() == oracle(**FAST)
        assert server.metric("collc_offloads_total") == 0


class Pool:
    """A started :class:`RayBackend` and the messages it passes on."""

    def __init__(self, workers: int):
        self.backend = RayBackend(workers)
        self.outcomes: queue.Queue[SliceOutcome] = queue.Queue()
        self.notes: queue.Queue[StepNote] = queue.Queue()
        self.backend.start(self.outcomes.put, self.notes.put)

    def drain_notes(self) -> list[StepNote]:
        notes = []
        while not self.notes.empty():
            notes.append(self.notes.get_nowait())
        return notes

    def slice(self, job: str, quantum: float, blob: bytes | None = None) -> SliceOutcome:
        spec = spec_from_json({"topology": TINY, "options": FAST})
        self.backend.run(SliceTask(job, spec, blob, quantum, 64))
        return self.outcomes.get(timeout=WAIT_SECONDS)


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool = Pool(1)
        yield pool
        pool.backend.close()
    finally:
        ray.shutdown()


def _expected() -> str:
    spec = spec_from_json({"topology": TINY, "options": FAST})
    return compile_schedule(load_topology(spec, 64), CompileFlags(**FAST).options()).xml


def test_slices_on_an_actor_keep_the_job_alive_and_compile_the_same_file(pool):
    for _ in range(200):
        outcome = pool.slice("alive", 0.0)
        assert outcome.error is None and outcome.steps == 1
        if outcome.xml is not None:
            break
        assert outcome.held and outcome.state is None  # alive on the actor, no bytes
        assert pool.backend.placeable("alive")  # its actor holds it and is free
    assert outcome.xml == _expected()
    notes = pool.drain_notes()
    assert len(notes) > 1 and {note.job for note in notes} == {"alive"}


def test_a_stop_reaches_a_running_slice(pool):
    pool.drain_notes()
    spec = spec_from_json({"topology": TINY, "options": FAST})
    pool.backend.run(SliceTask("stopped", spec, None, 1e9, 64))
    note = pool.notes.get(timeout=WAIT_SECONDS)
    assert note.job == "stopped"
    pool.backend.stop("stopped")
    outcome = pool.outcomes.get(timeout=WAIT_SECONDS)
    assert outcome.xml is None and outcome.held
    rest = pool.slice("stopped", 1e9)
    assert rest.xml == _expected()


def test_a_dead_actor_fails_its_job_in_one_line_and_is_replaced(pool):
    (worker,) = pool.backend._pool
    ray.kill(worker.handle)
    failed = pool.slice("doomed", 1e9)
    assert failed.exit_code == 2 and failed.error.startswith("error: the Ray worker died")
    deadline = time.monotonic() + WAIT_SECONDS
    while len(pool.backend._pool) != 1 or pool.backend._pool[0] is worker:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert pool.slice("after", 1e9).xml == _expected()


def test_a_ray_address_without_the_ray_backend_is_refused_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--state", str(tmp_path), "--ray-address", "auto"])
    assert result.exit_code == 2
    assert "--ray-address is for --backend ray" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("address", "message"),
    [("127.0.0.1:1", "no Ray head node answers there"), ("bogus", "is not HOST:PORT")],
)
def test_a_ray_address_that_cannot_be_joined_is_refused_in_one_line_at_once(tmp_path, address, message):
    """Ray itself retries an unreachable head node for minutes; the server says so within seconds."""
    command = [sys.executable, "-c", "from collc.cli import main; main()", "serve", "--state", str(tmp_path)]
    command += ["--backend", "ray", "--ray-address", address, "--port", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
