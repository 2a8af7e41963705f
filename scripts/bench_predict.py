"""Benchmark of the cost model: baselines, forest-model sweeps, crossover and event simulation.

Run: ``.venv/bin/python scripts/bench_predict.py``. Per preset it prints the time to build the NCCL
baselines, to solve the forest (for reference), to predict a 24-size allreduce sweep with its crossover,
the forest model's allreduce algbw at 1 GiB as a fraction of the bound, and the time and result of
simulating, event by event, the allreduce program that ``collc compile`` emits (its chosen k) at 1 GiB.
"""

from __future__ import annotations

import time

from collc.lowering import CompileOptions, compile_schedule
from collc.predict.model import TopologyModel
from collc.predict.params import PROTOCOLS
from collc.sizes import parse_sizes
from collc.topology import load

CASES = [("dgx-a100", 1), ("dgx-a100", 2), ("dgx-a100", 4), ("mi250", 1), ("mi250", 2), ("dgx-h100-rail", 4)]
SIMPLE = PROTOCOLS["Simple"]
GIB = 2**30


def _timed(function):
    start = time.perf_counter()
    value = function()
    return value, time.perf_counter() - start


def main() -> None:
    print(
        f"{'preset':<18} {'GPUs':>4} {'baselines s':>11} {'solve s':>8} {'sweep s':>8} "
        f"{'model/bound':>11} {'simulate s':>10} {'sim/bound':>9}"
    )
    for name, boxes in CASES:
        model = TopologyModel(load(name, {"boxes": str(boxes)}))
        _, baselines = _timed(lambda m=model: (m.ring, m.tree))
        _, solve = _timed(lambda m=model: m.forest_cost)
        _, sweep = _timed(lambda m=model: m.sweep("allreduce", parse_sizes("1KiB:8GiB"), SIMPLE))
        bound = float(model.bound_algbw("allreduce"))
        ratio = GIB / model.forest_cost.time_us("allreduce", GIB, SIMPLE) / 1000 / bound
        program = compile_schedule(model.topology, CompileOptions(coll="allreduce")).algorithm
        simulated, seconds = _timed(lambda m=model, p=program: m.collc(p).time_us("allreduce", GIB, SIMPLE))
        print(
            f"{name + ' x' + str(boxes):<18} {model.topology.num_gpus:>4} {baselines:>11.3f} {solve:>8.2f} "
            f"{sweep:>8.3f} {ratio:>11.3f} {seconds:>10.2f} {GIB / simulated / 1000 / bound:>9.3f}"
        )


if __name__ == "__main__":
    main()
