"""Benchmark a job's own GPUs: bound and compile for 64 GPUs selected out of a 1,024-GPU fabric.

This is the call a cluster scheduler makes for every job allocation: `collc bound` and `collc compile`
on dgx-h100-rail with 128 boxes and `--gpus b0-b7`. The same 64 GPUs compiled as their own 8-box
preset are the reference: the selection should cost only the loading of the large fabric and the
selection itself (the unused part is left out before solving, collc.topology.degrade).

Each command runs in a fresh subprocess (the real CLI, Python start-up included), then the phases
run in-process. Times are CPU seconds (user + system), which a busy shared machine disturbs less than
wall time; wall time is shown next to them. Targets: the selection's bound in <= 3 s; its compile within
2 s of compiling the 8-box preset.
Usage: .venv/bin/python scripts/bench_select.py
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from collc.capacity import capacity_graph
from collc.compile import CompileOptions, compile_schedule
from collc.solver.bound import optimal_bound
from collc.solver.symmetry import automorphisms
from collc.topology import load
from collc.topology.degrade import Degradation, degrade

SELECTED = ["dgx-h100-rail", "--set", "boxes=128", "--gpus", "b0-b7"]
OWN = ["dgx-h100-rail", "--set", "boxes=8"]
BOUND_TARGET_S = 3.0
COMPILE_EXTRA_TARGET_S = 2.0


@dataclass(frozen=True)
class Seconds:
    cpu: float
    wall: float

    def __str__(self) -> str:
        return f"{self.cpu:5.2f} s CPU ({self.wall:5.2f} s wall)"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cli_seconds(arguments: list[str]) -> Seconds:
    """CPU and wall time of one `collc` command in a subprocess (timeout 600 s)."""
    collc = Path(sys.executable).with_name("collc")
    cpu, wall = _children_cpu(), time.perf_counter()
    subprocess.run([str(collc), *arguments], check=True, capture_output=True, timeout=600)
    return Seconds(_children_cpu() - cpu, time.perf_counter() - wall)


def timed(function, *arguments):
    """``function(*arguments)`` and the CPU seconds it took in this process."""
    start = time.process_time()
    value = function(*arguments)
    return value, time.process_time() - start


def bound_of(topology) -> Fraction:
    graph = capacity_graph(topology)
    return optimal_bound(graph, automorphisms(topology, graph)).allgather_algbw


def phases() -> None:
    """Load, selection, bound and compile of the selection in-process, against the 8-box preset."""
    fabric, load_s = timed(load, "dgx-h100-rail", {"boxes": "128"})
    job, select_s = timed(degrade, fabric, Degradation(gpus="b0-b7"))
    own, own_load_s = timed(load, "dgx-h100-rail", {"boxes": "8"})
    job_bound, job_bound_s = timed(bound_of, job)
    own_bound, own_bound_s = timed(bound_of, own)
    options = CompileOptions(coll="allreduce")
    job_result, job_compile_s = timed(compile_schedule, job, options)
    own_result, own_compile_s = timed(compile_schedule, own, options)
    print(
        f"in-process CPU: load {fabric.num_gpus} GPUs / {len(fabric.nodes)} nodes {load_s:.2f} s, "
        f"select {select_s:.3f} s -> {job.num_gpus} GPUs / {len(job.nodes)} nodes / {len(job.links)} links"
    )
    print(
        f"  allgather bound: selection {float(job_bound):.2f} GB/s in {job_bound_s:.3f} s, "
        f"8-box preset {float(own_bound):.2f} GB/s in {own_bound_s:.3f} s (load {own_load_s:.2f} s)"
        + ("" if job_bound == own_bound else "  MISMATCH")
    )
    ratio = job_compile_s / own_compile_s
    print(
        f"  allreduce compile: selection {job_compile_s:.2f} s (k={job_result.solution.forest.k}), "
        f"8-box preset {own_compile_s:.2f} s (k={own_result.solution.forest.k}), ratio {ratio:.2f}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        out = str(Path(directory) / "out.xml")
        bound_s = cli_seconds(["bound", *SELECTED])
        own_bound_s = cli_seconds(["bound", *OWN])
        compile_s = cli_seconds(["compile", *SELECTED, "-o", out])
        own_compile_s = cli_seconds(["compile", *OWN, "-o", out])
    verdict = "PASS" if bound_s.cpu <= BOUND_TARGET_S else "MISS"
    print(
        f"CLI bound   --gpus b0-b7 of 1024: {bound_s}; 8-box preset {own_bound_s}; "
        f"CPU ratio {bound_s.cpu / own_bound_s.cpu:.2f}; target <= {BOUND_TARGET_S:.0f} s: {verdict}"
    )
    verdict = "PASS" if compile_s.cpu - own_compile_s.cpu <= COMPILE_EXTRA_TARGET_S else "MISS"
    print(
        f"CLI compile --gpus b0-b7 of 1024: {compile_s}; 8-box preset {own_compile_s}; "
        f"CPU ratio {compile_s.cpu / own_compile_s.cpu:.2f}; target <= preset + "
        f"{COMPILE_EXTRA_TARGET_S:.0f} s: {verdict}"
    )
    phases()


if __name__ == "__main__":
    main()
