"""``collc serve`` and ``collc submit`` against a real server on localhost, started and stopped here.

The shared server runs one worker with a 1 ms quantum and a zero memory budget, so every job is
preempted after each step and its state offloaded to disk and read back: a result equal to
``compile_schedule`` run here (the oracle) shows that slices, pickling and offload lose nothing.
Every wait is bounded in polls and seconds.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.compile import compile_schedule
from collc.compile.flags import CompileFlags
from collc.serve.steps import SUBMITTED
from collc.topology import load

from .jobs import FAST, TINY

STARTUP_SECONDS = 60
JOB_SECONDS = 90


def oracle(**flags: object) -> str:
    """The XML ``collc compile`` writes for TINY (as a file) with ``flags``."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "tiny4.yaml"
        path.write_text(TINY)
        topology = load(path)
    return compile_schedule(topology, CompileFlags(**flags).options()).xml


class Server:
    """A ``collc serve`` process on a free port of 127.0.0.1."""

    def __init__(self, state: Path, *args: str, token: str | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        command = [
            sys.executable,
            "-c",
            "from collc.cli import main; main()",
            "serve",
            "--port",
            str(self.port),
        ]
        command += ["--state", str(state), *args] + (["--token", token] if token else [])
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"collc serve exited: {self.process.stderr.read().decode()}")
            try:
                if self.call("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.kill()
        raise AssertionError("collc serve did not answer /healthz in time")

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        token: str | None = "default",
        content_type: str = "application/json",
    ) -> tuple[int, bytes]:
        data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type}
        bearer = self.token if token == "default" else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, method: str, path: str, body: object = None) -> tuple[int, dict]:
        status, payload = self.call(method, path, body)
        return status, json.loads(payload)

    def submit(self, **options: object) -> tuple[int, dict]:
        return self.json("POST", "/v1/jobs", {"topology": TINY, "options": options})

    def wait(self, job: str) -> dict:
        deadline = time.monotonic() + JOB_SECONDS
        for _ in range(int(JOB_SECONDS / 0.05)):
            status = self.json("GET", f"/v1/jobs/{job}")[1]
            if status["state"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
                return status
            time.sleep(0.05)
        return status

    def too_large(self) -> int:
        """The status of a request that declares a 5 MB body (the server answers before reading it)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.putrequest("POST", "/v1/jobs")
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(5 * 2**20))
            connection.endheaders()
            return connection.getresponse().status
        finally:
            connection.close()

    def metric(self, name: str) -> float:
        text = self.call("GET", "/metrics")[1].decode()
        return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")))

    def kill(self) -> None:
        """``kill -9``: no chance to flush or clean up."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> str:
        """``kill`` (SIGTERM), as a service manager stops the server: its standard error once it ended."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)
        return self.process.stderr.read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running(state: Path, *args: str, token: str | None = None) -> Iterator[Server]:
    server = Server(state, *args, token=token)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    state = tmp_path_factory.mktemp("serve")
    with running(
        state,
        *("--workers", "1", "--policy", "mlfq", "--quantum", "0.001", "--memory-budget", "0"),
        *("--held-states", "0"),  # every preemption hands the state back as bytes
    ) as s:
        yield s


def test_a_job_preempted_at_every_step_and_offloaded_compiles_what_collc_compile_writes(server):
    status, job = server.submit(**FAST)
    assert status == 202 and job["state"] == "queued"
    final = server.wait(job["id"])
    assert final["state"] == "done", final
    assert final["preemptions"] > 0
    code, xml = server.call("GET", f"/v1/jobs/{job['id']}/result")
    assert code == 200 and xml.decode() == oracle(**FAST)
    assert server.metric("collc_preemptions_total") > 0
    assert server.metric("collc_offloads_total") > 0
    assert server.metric("collc_reloads_total") > 0
    report = server.json("GET", f"/v1/jobs/{job['id']}/result?format=json")[1]
    assert report["ngpus"] == 4 and report["max_bytes"] == 2**30


def test_a_preempted_job_stays_alive_on_its_worker_and_nothing_is_offloaded(tmp_path):
    """With the default held states a preemption hands back no bytes: even with no memory budget no
    state is written to disk, and the job still compiles what collc compile writes."""
    args = ("--workers", "1", "--policy", "mlfq", "--quantum", "0.001", "--memory-budget", "0")
    with running(tmp_path, *args) as server:
        status, job = server.submit(**FAST)
        assert status == 202
        final = server.wait(job["id"])
        assert final["state"] == "done" and final["preemptions"] > 0, final
        code, xml = server.call("GET", f"/v1/jobs/{job['id']}/result")
        assert code == 200 and xml.decode() == oracle(**FAST)
        assert server.metric("collc_offloads_total") == 0
        assert server.metric("collc_reloads_total") == 0


def test_an_identical_request_is_answered_from_the_cache(server):
    first = server.submit(**FAST)[1]
    assert server.wait(first["id"])["state"] == "done"
    hits = server.metric("collc_cache_hits_total")
    status, again = server.submit(**FAST)
    assert status == 200 and again["cached"] and again["state"] == "done"
    assert server.metric("collc_cache_hits_total") == hits + 1
    assert server.call("GET", f"/v1/jobs/{again['id']}/result")[1].decode() == oracle(**FAST)


def test_identical_concurrent_requests_coalesce_into_one_compile_each_with_its_own_job(server):
    """A request identical to a job still compiling follows it under an id of its own, so its reports
    name its own output; cancelling a follower leaves the compile going for the others."""
    body = {"topology": TINY, "options": {**FAST, "coll": "allgather"}}
    first = server.json("POST", "/v1/jobs", {**body, "output": "ag16.xml"})[1]
    status, second = server.json("POST", "/v1/jobs", {**body, "output": "other-name.xml"})
    assert status == 202 and second["coalesced"] and second["id"] != first["id"]
    third = server.json("POST", "/v1/jobs", {**body, "output": "dropped.xml"})[1]
    assert third["coalesced"] and server.json("DELETE", f"/v1/jobs/{third['id']}")[0] == 200
    for job, name in ((first, "ag16.xml"), (second, "other-name.xml")):
        assert server.wait(job["id"])["state"] == "done"
        text = server.call("GET", f"/v1/jobs/{job['id']}/result?format=text")[1].decode()
        assert text.startswith(f"wrote {name}: allgather on tiny4")
    assert server.json("GET", f"/v1/jobs/{third['id']}")[1]["state"] == "cancelled"


def test_bad_input_gets_a_4xx_with_the_clis_located_message(server, tmp_path):
    broken = TINY.replace("bandwidth: 100", "bandwith: 100")
    path = tmp_path / "broken.yaml"
    path.write_text(broken)
    cli = CliRunner().invoke(main, ["compile", str(path), "-o", str(tmp_path / "x.xml")])
    assert cli.exit_code == 2
    status, answer = server.json("POST", "/v1/jobs", {"topology": broken})
    assert status == 400 and answer["exit_code"] == 2
    assert answer["error"] == cli.output.strip().replace(str(path), SUBMITTED)
    status, answer = server.submit(k=2, max_k=4)
    assert status == 400 and "--k and --max-k cannot be combined" in answer["error"]
    status, answer = server.submit(coll="allgatherx")
    assert status == 400 and "unknown collective 'allgatherx'" in answer["error"]
    status, answer = server.json("POST", "/v1/jobs", {"preset": "dgx-a100", "options": {"k": "two"}})
    assert status == 400 and "options.k must be int" in answer["error"]
    status, answer = server.json("POST", "/v1/jobs", {"preset": "pyproject.toml"})
    assert status == 400 and "'pyproject.toml' is not a preset" in answer["error"]
    assert server.too_large() == 413
    assert server.call("POST", "/v1/jobs", b"not json")[0] == 400
    assert server.call("GET", "/v1/jobs/nope")[0] == 404


@pytest.mark.parametrize("flag", [("--k", "-1"), ("--k", str(10**26)), ("--max-k", "1025")])
def test_an_option_out_of_range_is_a_400_with_the_clis_message(server, tmp_path, flag):
    """--k and --max-k are checked before the job is accepted, not when its bound is computed."""
    path = tmp_path / "tiny4.yaml"
    path.write_text(TINY)
    cli = CliRunner().invoke(main, ["compile", str(path), "-o", str(tmp_path / "x.xml"), *flag])
    assert cli.exit_code == 2
    status, answer = server.submit(**{flag[0][2:].replace("-", "_"): int(flag[1])})
    assert status == 400 and answer == {"error": cli.output.strip(), "exit_code": 2}


def test_unknown_routes_other_types_and_repeated_keys_get_json_errors(server):
    for method, path, expected in (("GET", "/v2/jobs", 404), ("PUT", "/v1/jobs", 405)):
        status, payload = server.call(method, path)
        answer = json.loads(payload)
        assert status == expected and answer["exit_code"] == 2, answer
        assert answer["error"].startswith("error: ") and "hint: endpoints: POST /v1/jobs" in answer["error"]
    body = json.dumps({"topology": TINY, "options": FAST}).encode()
    status, payload = server.call("POST", "/v1/jobs", body, content_type="text/plain")
    assert (
        status == 415
        and "must be application/json; its Content-Type is text/plain" in json.loads(payload)["error"]
    )
    repeated = b'{"preset": "dgx-a100", "options": {"k": 1, "k": 2}}'
    status, payload = server.call("POST", "/v1/jobs", repeated)
    assert status == 400 and "the request gives the key 'k' twice" in json.loads(payload)["error"]
    status, payload = server.call("POST", "/v1/jobs", b"[" * 100_000 + b"]" * 100_000)  # was a 500
    assert status == 400 and "nests too deeply" in json.loads(payload)["error"]
    exponent = json.dumps({"preset": "dgx-h100", "set": {"spine_oversubscription": "1.5e-99999999"}})
    status, payload = server.call("POST", "/v1/jobs", exponent.encode())  # hung the server for minutes
    assert status == 400 and "exponent is beyond" in json.loads(payload)["error"]


def test_a_cancelled_job_stops_and_has_no_result(server):
    job = server.submit(**FAST, coll="reducescatter")[1]
    status, cancelled = server.json("DELETE", f"/v1/jobs/{job['id']}")
    assert status == 200 and cancelled["state"] == "cancelled"
    status, answer = server.json("GET", f"/v1/jobs/{job['id']}/result")
    assert status == 409 and answer["exit_code"] == 1
    assert server.wait(job["id"])["state"] == "cancelled"


def test_collc_submit_writes_the_file_like_collc_compile(server, tmp_path):
    topology = tmp_path / "tiny.yaml"
    topology.write_text(TINY)
    out = tmp_path / "out.xml"
    args = ["submit", str(topology), "-o", str(out), "--max-bytes", "1GiB", "--server", server.url]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert out.read_text() == oracle(**FAST)
    assert result.output.startswith(f"wrote {out}: allreduce on tiny4 (4 GPUs)")
    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert json.loads(as_json.output)["file"] == str(out)
    bad = CliRunner().invoke(main, [*args[:-2], "--min-bytes", "1QB", "--server", server.url])
    assert bad.exit_code == 2 and "--min-bytes '1QB' is not a size" in bad.output
    gone = CliRunner().invoke(main, [*args[:-1], "http://127.0.0.1:1"])
    assert gone.exit_code == 2 and "cannot reach the collc service" in gone.output


def test_collc_submit_locates_a_topology_error_in_the_users_file(server, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(TINY.replace("bandwidth: 100", "bandwidth: abc"))
    out = str(tmp_path / "x.xml")
    compiled = CliRunner().invoke(main, ["compile", str(path), "-o", out])
    submitted = CliRunner().invoke(main, ["submit", str(path), "-o", out, "--server", server.url])
    assert submitted.exit_code == compiled.exit_code == 2
    assert submitted.output == compiled.output and submitted.output.startswith(f"{path}:")


def test_kill_9_loses_no_accepted_job_and_keeps_results(tmp_path):
    """Accepted jobs survive a kill -9 and finish after a restart; a finished one keeps its result
    (the restarted server runs with --no-cache, so an identical request is compiled again)."""
    token = "s3cret"
    with running(tmp_path, "--workers", "1", token=token) as first:
        done = first.submit(**FAST, coll="allgather", proto="LL")[1]
        assert first.wait(done["id"])["state"] == "done"
        pending = [first.submit(**FAST, coll=coll, proto="LL")[1] for coll in ("allreduce", "reducescatter")]
        first.kill()
    with running(tmp_path, "--workers", "1", "--no-cache", token=token) as second:
        assert second.call("GET", "/metrics", token=None)[0] == 401
        assert second.call("GET", "/metrics", token="wrong")[0] == 401
        assert second.call("GET", "/healthz", token=None)[0] == 200
        kept = second.call("GET", f"/v1/jobs/{done['id']}/result")[1].decode()
        assert kept == oracle(**FAST, coll="allgather", proto="LL")
        status, again = second.submit(**FAST, coll="allgather", proto="LL")
        assert status == 202 and not again["cached"]  # --no-cache compiles it again
        for job, coll in zip(pending, ("allreduce", "reducescatter"), strict=True):
            assert second.wait(job["id"])["state"] == "done"
            xml = second.call("GET", f"/v1/jobs/{job['id']}/result")[1].decode()
            assert xml == oracle(**FAST, coll=coll, proto="LL")


def test_binding_beyond_localhost_requires_a_token(monkeypatch):
    monkeypatch.delenv("COLLC_SERVE_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "a bearer token is required" in result.output


def _workers_of(pid: int) -> list[int]:
    """The worker processes of the server ``pid`` (its spawned children, not the resource tracker)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # a thread that ended while listed
            continue
        for child in children:
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            except (FileNotFoundError, ProcessLookupError):  # a child that ended while listed
                continue
            if b"multiprocessing" in command and b"resource_tracker" not in command:
                found.append(int(child))
    return found


def test_a_worker_that_dies_fails_its_job_in_one_line_and_is_replaced(server):
    job = server.submit(**FAST, coll="allgather", proto="LL128")[1]
    for _ in range(600):
        if server.json("GET", f"/v1/jobs/{job['id']}")[1]["state"] == "running":
            break
        time.sleep(0.01)
    for worker in _workers_of(server.process.pid):
        with contextlib.suppress(ProcessLookupError):  # it may have ended since it was listed
            os.kill(worker, signal.SIGKILL)
    final = server.wait(job["id"])
    if final["state"] == "failed":  # killed inside a slice (else between two: the job goes on)
        assert final["exit_code"] == 2 and final["error"].startswith("error: the worker process died")
    else:
        assert final["state"] == "done"
    after = server.submit(**FAST, coll="reducescatter", proto="LL128")[1]
    assert server.wait(after["id"])["state"] == "done"


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie waiting to be reaped does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_a_killed_servers_worker_stops_mid_step(tmp_path):
    """kill -9 of the server while its worker is inside a long step (a later forest of a 128-GPU
    compile, seconds long): the worker ends at once instead of finishing the step as an orphan."""
    with running(tmp_path, "--workers", "1") as server:
        big = {"preset": "dgx-a100", "set": {"boxes": "16"}, "options": {"coll": "allgather"}}
        job = server.json("POST", "/v1/jobs", big)[1]
        for _ in range(600):
            status = server.json("GET", f"/v1/jobs/{job['id']}")[1]
            if status["stage"] == "forest" and status["progress"] >= 0.1:
                break
            time.sleep(0.05)
        workers = _workers_of(server.process.pid)
        assert workers
        server.kill()
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline and any(_alive(worker) for worker in workers):
        time.sleep(0.05)
    assert not any(_alive(worker) for worker in workers)


def test_a_server_stopped_by_sigterm_leaves_nothing_behind(tmp_path):
    """After a job, SIGTERM ends the server with its workers; nothing is reported leaked (each
    worker's stop flag was an Event, whose named semaphores the resource tracker reported: uvicorn
    re-raises the signal after shutting down, so the exit handlers that unlink them never ran)."""
    with running(tmp_path, "--workers", "1") as server:
        job = server.submit(**FAST, coll="allgather")[1]
        assert server.wait(job["id"])["state"] == "done"
        workers = _workers_of(server.process.pid)
        errors = server.terminate()
    assert "leaked" not in errors, errors
    assert not any(_alive(worker) for worker in workers)


def test_collc_submit_compiles_a_jobs_own_gpus_on_a_degraded_fabric(server, tmp_path):
    """--gpus @FILE (sent as the names in it) and --derate reach the service and give the file
    `collc compile` writes with the same options; the service refuses to read a file itself."""
    topology = tmp_path / "tiny.yaml"
    topology.write_text(TINY)
    chosen = tmp_path / "job.txt"
    chosen.write_text("gpu2\n# the job's GPUs, in rank order\ngpu0\ngpu3\n")
    changes = ["--gpus", f"@{chosen}", "--derate", "link:gpu0-nvs=50%"]
    local, remote = tmp_path / "local.xml", tmp_path / "remote.xml"
    compiled = CliRunner().invoke(
        main, ["compile", str(topology), *changes, "-o", str(local), "--max-bytes", "1GiB"]
    )
    assert compiled.exit_code == 0, compiled.output
    args = [
        "submit",
        str(topology),
        *changes,
        "-o",
        str(remote),
        "--max-bytes",
        "1GiB",
        "--server",
        server.url,
    ]
    submitted = CliRunner().invoke(main, args)
    assert submitted.exit_code == 0, submitted.output
    assert remote.read_text() == local.read_text() and 'ngpus="3"' in local.read_text()
    status, answer = server.json(
        "POST", "/v1/jobs", {"topology": TINY, "options": FAST, "gpus": f"@{chosen}"}
    )
    assert status == 400 and "without @FILE" in answer["error"]
    status, answer = server.json(
        "POST", "/v1/jobs", {"topology": TINY, "options": FAST, "without": ["nic:x"]}
    )
    assert status == 400 and "x" in answer["error"]
