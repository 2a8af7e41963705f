"""Benchmark the event simulation (``collc.predict.des``): one call of 1 GiB, Simple, of the file that
`collc compile` writes, for programs of 8, 16 and 32 GPUs.

Target: a 32-GPU program simulates in at most 5 s, so that candidates (k, instances, buffer sizes) can
be compared by simulation. Wall time depends on the machine's load; the CPU time of this process is
printed too, and the target is checked against it.
Usage: .venv/bin/python scripts/bench_des.py [preset:boxes:collective ...]
"""

from __future__ import annotations

import sys
import time

from collc.compile import CompileOptions, compile_schedule
from collc.predict.des import ProgramCost
from collc.predict.network import Network
from collc.predict.params import PROTOCOLS
from collc.topology import load

CASES = [
    ("dgx-a100", 1, "allreduce"),
    ("dgx-a100", 2, "allreduce"),
    ("mi250", 1, "allreduce"),
    ("dgx-a100", 4, "allgather"),
    ("dgx-a100", 4, "reducescatter"),
    ("dgx-a100", 4, "allreduce"),
    ("dgx-h100-rail", 4, "allreduce"),
    ("mi250", 2, "allreduce"),
]
TARGET_S = 5.0  # for 32 GPUs
NBYTES = 2**30


def _cases(argv: list[str]) -> list[tuple[str, int, str]]:
    if not argv:
        return CASES
    return [(name, int(boxes), coll) for name, boxes, coll in (arg.split(":") for arg in argv)]


def main() -> None:
    print(
        f"{'program':<34} {'GPUs':>4} {'tbs':>5} {'steps':>6} {'iters':>5} {'wall s':>7} {'cpu s':>6}  target"
    )
    worst = 0.0
    for name, boxes, collective in _cases(sys.argv[1:]):
        topology = load(name, {"boxes": str(boxes)})
        algo = compile_schedule(topology, CompileOptions(coll=collective)).algorithm
        cost = ProgramCost(Network.of(topology), algo)
        simulated, _, _ = cost.iterations(NBYTES, PROTOCOLS["Simple"])
        wall, cpu = time.perf_counter(), time.process_time()
        cost.time_us(collective, NBYTES, PROTOCOLS["Simple"])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        target = f"<= {TARGET_S:.0f} s" if algo.ngpus >= 32 else ""
        if algo.ngpus >= 32:
            worst = max(worst, cpu)
        steps = sum(len(tb.steps) for gpu in algo.gpus for tb in gpu.tbs)
        tbs = sum(len(gpu.tbs) for gpu in algo.gpus)
        label = f"{name} x{boxes} {collective}"
        sizes = f"{algo.ngpus:>4} {tbs:>5} {steps:>6} {simulated:>5}"
        print(f"{label:<34} {sizes} {wall:>7.2f} {cpu:>6.2f}  {target}", flush=True)
    if worst:
        verdict = "met" if worst <= TARGET_S else "NOT met"
        print(f"slowest 32-GPU program: {worst:.2f} s of CPU time; target {TARGET_S:.0f} s {verdict}")


if __name__ == "__main__":
    main()
