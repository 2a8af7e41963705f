"""Trace replay against a real ``collc serve``: job completion time under FCFS, MLFQ and skip-join MLFQ.

Job sizes follow the multi-GPU part of a published cluster trace: SenseTime's Helios traces (Hu et al.,
"Characterization and Prediction of Deep Learning Workloads in Large-Scale GPU Datacenters", SC '21).
Most multi-GPU jobs there fit one or two 8-GPU nodes and a thin tail asks for hundreds of GPUs; the
weights below are rounded from the GPU-demand distribution the paper plots, not computed from the trace
files. Each job compiles an allreduce (Simple protocol) for ``dgx-a100`` boxes with as many GPUs as the
job, with ``--k 1 --max-bytes 1GiB`` (one candidate, the user's range: the scheduling is what is
measured, and each job stays short); the server runs with ``--no-cache`` so that every request is
compiled. Requests arrive as a
Poisson process whose rate makes the offered load ``rho = rate * E[service] / workers``; E[service] is
measured first by running each size once here as a worker runs a job (loading the fabric, the compile's
steps, the report), after one warm-up job. ``--model`` replays the trace in virtual time instead, with
those steps (collc.serve.replay), next to the shortest-remaining-time bound.

The default run is scaled down to about ten minutes on a small machine: jobs of more than ``--max-gpus``
(16) GPUs are compiled at ``--max-gpus``, and each run replays ``--jobs`` (12) requests; ``--full`` keeps
sizes up to 1,024 GPUs and replays 200 requests. JCT is the server's own submitted-to-finished time.
Before the first load, one job warms the server's workers up (its time is not counted).
p99 over n jobs is the nearest-rank percentile (with 12 jobs it is the largest).

    .venv/bin/python scripts/bench_serve.py             # the table in docs/serve.md
    .venv/bin/python scripts/bench_serve.py --full --workers 16

``--during GPUS`` measures the other goal instead: the JCT of small jobs (8 and 16 GPUs, alternately,
one after the other with ``--gap`` seconds between them) submitted while one large compile (an
allgather on ``GPUS`` GPUs, which runs for minutes) holds a worker, per policy; the large job is
cancelled at the end. Small jobs should stay under 1 s at p99.

    .venv/bin/python scripts/bench_serve.py --during 1024 --workers 2 --jobs 20
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from collc.input_limits import MAX_GPUS
from collc.serve.policy import make_policy
from collc.serve.replay import ModelJob, srpt_completions
from collc.serve.replay import replay as replay_model
from collc.serve.steps import first_stage_estimate, run_slice, spec_from_json

#: share of multi-GPU jobs by GPU count (rounded from the Helios GPU-demand distribution)
HELIOS_MULTI_GPU = {8: 0.55, 16: 0.22, 32: 0.11, 64: 0.06, 128: 0.03, 256: 0.02, 1024: 0.01}
SMALL = 16
#: the columns of both tables (a run against the server and a model replay)
COLUMNS = (
    " ".join(
        f"{name:>{width}}"
        for name, width in [("policy", 12), ("load", 5), ("jobs", 5), ("mean JCT s", 11), ("p99 JCT s", 10)]
    )
    + f" {'p99 <=16 GPUs s':>16}"
)
#: the compile flags of every job (and of the service-time measurement)
FLAGS = {"k": 1, "max_bytes": "1GiB", "force": True}


@dataclass(frozen=True)
class Request:
    at: float  # seconds after the start of the replay
    gpus: int


def histogram(max_gpus: int) -> dict[int, float]:
    """The trace's weights with sizes above ``max_gpus`` folded into ``max_gpus``."""
    folded: dict[int, float] = {}
    for gpus, weight in HELIOS_MULTI_GPU.items():
        folded[min(gpus, max_gpus)] = folded.get(min(gpus, max_gpus), 0.0) + weight
    return folded


def body(request: Request) -> dict[str, object]:
    return {
        "preset": "dgx-a100",
        "set": {"boxes": str(request.gpus // 8)},
        "options": FLAGS,
    }


def step_times(sizes: list[int]) -> dict[int, tuple[float, ...]]:
    """Seconds of each compile step of each size, run once in this process as a worker runs a job
    (:func:`collc.serve.steps.run_slice`: the first step includes loading the fabric, the last writing
    the report); their sum is the size's service time. The smallest size is run once before, untimed,
    as the server's workers are warmed up (imports, the event simulation's compiled code)."""
    return {gpus: _job_steps(gpus) for gpus in [min(sizes), *sizes]}  # a later entry replaces the first


def _job_steps(gpus: int) -> tuple[float, ...]:
    marks = [time.perf_counter()]  # then the start of each step, then the end

    def mark(*_: object) -> None:
        marks.append(time.perf_counter())

    spec = spec_from_json(body(Request(0.0, gpus)))
    outcome = run_slice("bench", spec, None, math.inf, MAX_GPUS, lambda: False, mark)
    if outcome.xml is None:
        raise SystemExit(f"the {gpus}-GPU job failed: {outcome.error}")
    marks.append(time.perf_counter())
    del marks[1]  # the first step's time counts from the slice's start
    return tuple(end - start for start, end in itertools.pairwise(marks))


def trace(weights: dict[int, float], rate: float, count: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    sizes, shares = zip(*sorted(weights.items()), strict=True)
    at, requests = 0.0, []
    for _ in range(count):
        at += rng.expovariate(rate)
        gpus = rng.choices(sizes, shares)[0]
        requests.append(Request(at, gpus))
    return requests


class Server:
    def __init__(self, policy: str, workers: int, state: Path):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", "from collc.cli import main; main()", "serve", "--port", str(port)]
        command += ["--state", str(state), "--workers", str(workers), "--policy", policy, "--no-cache"]
        self.process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                self.call("GET", "/healthz")
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("collc serve did not start")

    def call(self, method: str, path: str, payload: object = None) -> dict:
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as response:
            lines = response.read().decode().splitlines()
        return float(next(line.split()[-1] for line in lines if line.startswith(name + " ")))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def replay(server: Server, requests: list[Request], timeout: float) -> list[tuple[int, float]]:
    """Submit each request at its time; (GPUs, JCT) of every job once all are done."""
    jobs: list[tuple[int, str]] = []
    start = time.monotonic()

    def submit_all() -> None:
        for request in requests:
            time.sleep(max(0.0, start + request.at - time.monotonic()))
            jobs.append((request.gpus, server.call("POST", "/v1/jobs", body(request))["id"]))

    sender = threading.Thread(target=submit_all)
    sender.start()
    sender.join()
    done: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(jobs) and time.monotonic() < deadline:
        for _, job in jobs:
            if job not in done:
                status = server.call("GET", f"/v1/jobs/{job}")
                if status["state"] in ("done", "failed", "cancelled"):
                    done[job] = status
        time.sleep(0.2)
    failed = [s for s in done.values() if s["state"] != "done"]
    if failed or len(done) < len(jobs):
        raise SystemExit(f"{len(failed)} jobs failed, {len(jobs) - len(done)} unfinished: {failed[:1]}")
    return [(gpus, done[job]["finished"] - done[job]["submitted"]) for gpus, job in jobs]


def wait_for(server: Server, job: str, states: tuple[str, ...], timeout: float) -> dict:
    """Poll ``job`` until its state is one of ``states``; its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.call("GET", f"/v1/jobs/{job}")
        if status["state"] in states:
            return status
        time.sleep(0.05)
    raise SystemExit(f"job {job} did not reach {'/'.join(states)} within {timeout:.0f} s")


def during(server: Server, big_gpus: int, count: int, gap: float) -> tuple[list[float], str]:
    """JCTs of ``count`` small jobs submitted one after the other while a ``big_gpus`` allgather
    compile runs; the large job's stage when the last one finished (it is then cancelled)."""
    big_body = {"preset": "dgx-a100", "set": {"boxes": str(big_gpus // 8)}, "options": {"coll": "allgather"}}
    big = server.call("POST", "/v1/jobs", big_body)["id"]
    wait_for(server, big, ("running",), timeout=600)
    time.sleep(gap)
    jct = []
    for index in range(count):
        small = server.call("POST", "/v1/jobs", body(Request(0.0, 8 if index % 2 == 0 else SMALL)))["id"]
        status = wait_for(server, small, ("done", "failed", "cancelled"), timeout=600)
        if status["state"] != "done":
            raise SystemExit(f"small job {small} {status['state']}: {status}")
        jct.append(status["finished"] - status["submitted"])
        time.sleep(gap)
    big_status = server.call("GET", f"/v1/jobs/{big}")
    server.call("DELETE", f"/v1/jobs/{big}")
    return jct, f"{big_status['state']} ({big_status.get('stage')})"


def main_during(args: argparse.Namespace) -> None:
    print(
        f"{args.jobs} small jobs (8 and 16 GPUs) during one {args.during}-GPU allgather compile, "
        f"{args.workers} worker(s)"
    )
    print(f"{'policy':>10} {'jobs':>5} {'mean JCT s':>11} {'p99 JCT s':>10}  large job when the last ended")
    for policy in args.policies.split(","):
        with tempfile.TemporaryDirectory() as state:
            server = Server(policy, args.workers, Path(state))
            try:
                replay(server, [Request(0.0, 8)], timeout=600)  # warm the workers up
                jct, big = during(server, args.during, args.jobs, args.gap)
                mean, p99 = sum(jct) / len(jct), percentile(jct, 0.99)
                print(f"{policy:>10} {len(jct):>5} {mean:>11.2f} {p99:>10.2f}  {big}", flush=True)
            finally:
                server.stop()


def cut(steps: tuple[float, ...], grain: float | None) -> tuple[float, ...]:
    """``steps`` with each one cut into equal pieces of at most ``grain`` seconds (None: as measured)."""
    if grain is None:
        return steps
    pieces: list[float] = []
    for seconds in steps:
        count = max(1, math.ceil(seconds / grain))
        pieces += [seconds / count] * count
    return tuple(pieces)


def main_model(
    args: argparse.Namespace,
    weights: dict[int, float],
    steps: dict[int, tuple[float, ...]],
    mean_service: float,
    count: int,
) -> None:
    """The same trace replayed in virtual time (collc.serve.replay) with the measured steps: what each
    policy does without the server's own costs, and the shortest-remaining-time schedule that no
    policy beats on one worker (sizes known in advance, preemption at any instant)."""
    grain = f"steps cut to {args.grain} s" if args.grain else "steps as measured"
    print(f"model replay ({grain}; no server, no preemption cost)")
    print(COLUMNS + f" {'FCFS / this':>12}")
    for load_text in args.loads.split(","):
        rho = float(load_text)
        requests = trace(weights, rho * args.workers / mean_service, count, args.seed)
        jobs = [
            ModelJob(str(i), r.at, cut(steps[r.gpus], args.grain), first_stage_estimate(r.gpus))
            for i, r in enumerate(requests)
        ]
        runs = {
            name: replay_model(make_policy(name), jobs, args.workers) for name in args.policies.split(",")
        }
        if args.workers == 1:
            runs["srpt (bound)"] = srpt_completions(jobs)
        means = {name: sum(done[j.job] - j.at for j in jobs) / len(jobs) for name, done in runs.items()}
        baseline = means.get("fcfs")
        for name, done in runs.items():
            jct = [done[job.job] - job.at for job in jobs]
            small = [done[job.job] - job.at for job, r in zip(jobs, requests, strict=True) if r.gpus <= SMALL]
            ratio = f"{baseline / means[name]:>12.2f}" if baseline else f"{'-':>12}"
            print(
                f"{name:>12} {rho:>5.1f} {len(jct):>5} {means[name]:>11.2f} {percentile(jct, 0.99):>10.2f} "
                f"{percentile(small, 0.99):>16.2f} {ratio}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="sizes up to 1,024 GPUs, 200 jobs per run")
    parser.add_argument("--max-gpus", type=int, default=16)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--loads", default="0.5,0.7,0.9")
    parser.add_argument("--policies", default="fcfs,mlfq,skip-join")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--during", type=int, metavar="GPUS", help="small jobs during one GPUS-GPU compile")
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between small jobs (--during)")
    parser.add_argument(
        "--model", action="store_true", help="replay the trace in virtual time with the measured steps"
    )
    parser.add_argument("--grain", type=float, help="with --model: cut every step to at most this many s")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a stopped run still stops its server
    if args.during:
        main_during(args)
        return
    max_gpus, count = (1024, 200) if args.full else (args.max_gpus, args.jobs)
    weights = histogram(max_gpus)
    steps = step_times(sorted(weights))
    service = {gpus: sum(seconds) for gpus, seconds in steps.items()}
    mean_service = sum(weights[g] * service[g] for g in weights)
    print("job sizes (GPUs: share, measured compile s, longest step s):", end=" ")
    print(", ".join(f"{g}: {weights[g]:.2f}, {service[g]:.2f}, {max(steps[g]):.2f}" for g in sorted(weights)))
    print(f"E[service] = {mean_service:.2f} s, {args.workers} worker(s), {count} jobs per run")
    if args.model:
        main_model(args, weights, steps, mean_service, count)
        return
    print(COLUMNS + f" {'preemptions':>12}", flush=True)
    for policy in args.policies.split(","):
        with tempfile.TemporaryDirectory() as state:
            server = Server(policy, args.workers, Path(state))
            try:
                replay(server, [Request(0.0, min(weights))], timeout=600)  # warm the workers up
                for load_text in args.loads.split(","):
                    rho = float(load_text)
                    rate = rho * args.workers / mean_service
                    requests = trace(weights, rate, count, args.seed)
                    before = server.metric("collc_preemptions_total")
                    results = replay(server, requests, timeout=60 * mean_service * count)
                    jct = [seconds for _, seconds in results]
                    small = [seconds for gpus, seconds in results if gpus <= SMALL]
                    preemptions = server.metric("collc_preemptions_total") - before
                    row = (
                        f"{policy:>12} {rho:>5.1f} {len(jct):>5} {sum(jct) / len(jct):>11.2f} "
                        f"{percentile(jct, 0.99):>10.2f} {percentile(small, 0.99):>16.2f} "
                        f"{preemptions:>12.0f}"
                    )
                    print(row, flush=True)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
