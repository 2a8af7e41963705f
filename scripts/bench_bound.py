"""Benchmark of the optimal bound (``make bench`` folds it in): time, max-flow calls and result per topology.

Run: ``.venv/bin/python scripts/bench_bound.py [--no-symmetry]``. For every case it prints the YAML load
time, the automorphism search time, the allgather bound (and reduce-scatter on the reversed graph)
with and without symmetry, the max-flow calls and Dinkelbach / fixed-k rounds, and the result.
"""

from __future__ import annotations

import argparse
import time

from collc.capacity import capacity_graph
from collc.solver.bound import Bound, fixed_k_bound, optimal_bound
from collc.solver.symmetry import automorphisms, gpu_orbits
from collc.topology import load

CASES = [
    ("dgx-a100", 2, None),
    ("dgx-a100", 8, None),
    ("dgx-a100", 8, 1),
    ("dgx-a100", 16, None),
    ("mi250", 2, None),
    ("mi250", 2, 8),
    ("mi250", 4, None),
    ("mi250", 8, None),
    ("dgx-h100-rail", 4, None),
    ("dgx-h100-rail", 16, None),
    ("dgx-h100-rail", 128, None),
    ("dgx-h100-rail", 128, 3),
]


def _solve(graph, k, symmetries) -> tuple[Bound, float]:
    start = time.perf_counter()
    bound = optimal_bound(graph, symmetries) if k is None else fixed_k_bound(graph, k, symmetries)
    return bound, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-symmetry", action="store_true", help="skip the runs without symmetry")
    args = parser.parse_args()
    header = (
        f"{'topology':<22} {'N':>5} {'k':>5} {'load s':>7} {'sym s':>6} {'orb':>4} "
        f"{'AG s':>7} {'mf':>5} {'rnd':>3} {'RS s':>7} {'AG s (no sym)':>13} {'mf':>6}  result"
    )
    print(header)
    for preset, boxes, k in CASES:
        start = time.perf_counter()
        topology = load(preset, {"boxes": str(boxes)})
        graph = capacity_graph(topology)
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        symmetries = automorphisms(topology, graph)
        found = time.perf_counter() - start
        orbits = len(gpu_orbits(graph.num_gpus, symmetries))
        bound, seconds = _solve(graph, k, symmetries)
        _, rs_seconds = _solve(graph.reversed(), k, symmetries)
        plain = "" if args.no_symmetry else "{:13.4f} {:6d}"
        if plain:
            plain_bound, plain_seconds = _solve(graph, k, [])
            if (plain_bound.x_star, plain_bound.U, plain_bound.k) != (bound.x_star, bound.U, bound.k):
                raise SystemExit(f"{preset} x{boxes}: symmetry changed the bound")
            plain = plain.format(plain_seconds, plain_bound.max_flow_calls)
        result = (
            f"algbw {float(bound.allgather_algbw):.3f} GB/s, x*={bound.x_star}, k={bound.k}, U={bound.U}"
            f", given up {float(bound.given_up):.2%}"
        )
        print(
            f"{preset + ' x' + str(boxes):<22} {graph.num_gpus:>5} {k or 'auto':>5} {loaded:7.3f} "
            f"{found:6.3f} {orbits:>4} {seconds:7.4f} {bound.max_flow_calls:>5} {bound.rounds:>3} "
            f"{rs_seconds:7.4f} {plain:>20}  {result}"
        )


if __name__ == "__main__":
    main()
