"""Benchmark of topology loading (``make bench`` runs it): time to read a preset and build its graph.

Run: ``.venv/bin/python scripts/bench_topology.py``. For each case it prints the GPUs, nodes and links,
the best-of-3 load time (YAML parse, template expansion, selectors, validation) and the time to build
the integer capacity graph. The target is < 1 s for the 1024-GPU rail-optimised cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from collc.capacity import capacity_graph
from collc.topology import load

T = TypeVar("T")

CASES = [
    ("dgx-a100", {"boxes": "16"}),
    ("mi250", {"boxes": "8"}),
    ("dgx-h100-rail", {"boxes": "128"}),
    ("dgx-h100", {"boxes": "128"}),
    ("dgx-h100", {"boxes": "512", "spine_oversubscription": "2"}),
    ("gb200-nvl72", {"racks": "16"}),
]


def best_of(repeats: int, action: Callable[[], T]) -> tuple[T, float]:
    """(result, best wall time in seconds) of ``repeats`` runs of ``action``."""
    best = float("inf")
    result = action()
    for _ in range(repeats - 1):
        start = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - start)
    return result, best


def main() -> None:
    sizes = f"{'GPUs':>6} {'nodes':>6} {'links':>6}"
    print(f"{'preset':<16} {'parameters':<40} {sizes} {'load s':>8} {'graph s':>8}")
    for preset, params in CASES:
        topology, load_time = best_of(3, lambda preset=preset, params=params: load(preset, params))
        _graph, graph_time = best_of(3, lambda topology=topology: capacity_graph(topology))
        shown = " ".join(f"{key}={value}" for key, value in params.items())
        print(
            f"{preset:<16} {shown:<40} {topology.num_gpus:>6} {len(topology.nodes):>6} "
            f"{len(topology.links):>6} {load_time:>8.3f} {graph_time:>8.3f}"
        )


if __name__ == "__main__":
    main()
