"""The allreduce ceiling: an algbw no allreduce schedule exceeds on a fabric (docs/solver.md §1.9).

The figure collc prints as the allreduce bound is reduce-scatter then allgather,
``1 / (1/RS + 1/AG)``: what the two optimal forests reach one after the other. A pipelined file runs
the halves at once, and where they load opposite directions of the busiest links it beats that
figure: a line of three GPUs at 50 GB/s simulates at 50.0 GB/s against 37.5, and 8 GPUs on a switch
with one port at 100 GB/s and seven at 300 at 99.7 against 57.1. So that figure is a target, not a
ceiling.

A ceiling that holds for every schedule: take a cut with GPUs on both sides. Every GPU outside ends
with the sum of all inputs, so the outside learns the sum of the inside's inputs, a full buffer it
cannot compute itself, and only through the arcs leaving the inside; the inside learns the outside's
sum through the arcs entering it. A call of ``S`` bytes therefore moves at least ``S`` bytes each way
across every such cut, and its algbw is at most the least capacity that crosses one, in either
direction. (It is never below the reduce-scatter + allgather figure, which a schedule reaches.)

Every such cut separates GPU 0 from some GPU ``v``, with GPU 0 inside or outside, so the least
capacity is the least of ``2 (N - 1)`` max-flows: from GPU 0 to every other GPU and back.
"""

from __future__ import annotations

from fractions import Fraction

from collc.capacity import CapacityGraph
from collc.solver.bound import check_gpu_count
from collc.solver.maxflow import FlowNetwork


def allreduce_ceiling(graph: CapacityGraph) -> Fraction:
    """The least capacity (GB/s) crossing a cut that separates two GPUs, in either direction: no
    allreduce exceeds it as algbw (module docstring)."""
    check_gpu_count(graph.num_gpus)
    network = FlowNetwork(graph.num_nodes, graph.arcs)
    least = min(min(network.max_flow(0, v), network.max_flow(v, 0)) for v in range(1, graph.num_gpus))
    return graph.to_gbps(least)
