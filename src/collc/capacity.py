"""Stage 2: the capacity graph the solver works on.

The topology's bandwidths are exact fractions in GB/s. The solver needs integer capacities (max-flow
libraries are integral, and edge splitting and tree packing move whole units). We scale by the
*rational gcd* of all arc bandwidths::

    unit = gcd(numerators) / lcm(denominators)        (in GB/s)
    capacity(e) = bandwidth(e) / unit                 (a positive integer, all capacities coprime)

so that ``bandwidth = capacity * unit`` exactly. Example: DGX A100's 300 and 25 GB/s become 12 and 1
with unit 25 GB/s; MI250's 200/100/50/16 become 100/50/25/8 with unit 2 GB/s. Parallel links are summed first.

Vertices are numbered with the GPUs first, in rank order (vertex ``r`` is rank ``r``), then the other
nodes in sorted name order, so the numbering is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd, lcm

from collc.errors import InputError
from collc.input_limits import MAX_CAPACITY_UNITS
from collc.topology.model import Topology


@dataclass(frozen=True)
class CapacityGraph:
    """A directed graph with positive integer capacities; vertices ``0..num_gpus-1`` are the GPU ranks."""

    names: tuple[str, ...]
    num_gpus: int
    arcs: tuple[tuple[int, int, int], ...]  # (src, dst, capacity), sorted, no parallel arcs, no loops
    unit: Fraction  # GB/s per capacity unit

    @property
    def num_nodes(self) -> int:
        return len(self.names)

    def to_gbps(self, capacity: int | Fraction) -> Fraction:
        """Convert a capacity (or a sum of capacities) back to GB/s, exactly."""
        return Fraction(capacity) * self.unit

    def reversed(self) -> CapacityGraph:
        """The same graph with every arc turned around (reduce-scatter runs on it)."""
        arcs = tuple(sorted((dst, src, cap) for src, dst, cap in self.arcs))
        return CapacityGraph(self.names, self.num_gpus, arcs, self.unit)


def rational_gcd(values: list[Fraction]) -> Fraction:
    """The largest fraction g such that every value is an integer multiple of g."""
    numerators = 0
    denominators = 1
    for value in values:
        numerators = gcd(numerators, value.numerator)
        denominators = lcm(denominators, value.denominator)
    return Fraction(numerators, denominators)


def capacity_graph(topology: Topology) -> CapacityGraph:
    """Build the integer capacity graph of ``topology`` (see the module docstring for the scaling)."""
    others = sorted(node.name for node in topology.nodes if node.kind != "gpu")
    names = tuple(topology.ranks) + tuple(others)
    index = {name: i for i, name in enumerate(names)}
    bandwidths = {pair: bw for pair, bw in topology.arc_bandwidths().items() if pair[0] != pair[1]}
    unit = rational_gcd(list(bandwidths.values()))
    arcs = sorted((index[src], index[dst], int(bw / unit)) for (src, dst), bw in bandwidths.items())
    largest = max((capacity for _src, _dst, capacity in arcs), default=0)
    if largest > MAX_CAPACITY_UNITS:
        raise InputError(
            f"the link bandwidths of {topology.name} have no common unit coarse enough: the largest is "
            f"about 2^{largest.bit_length() - 1} times their greatest common divisor, collc's limit is "
            f"2^{MAX_CAPACITY_UNITS.bit_length() - 1}",
            hint="round the bandwidths to fewer significant digits (e.g. whole GB/s) so their ratios are "
            "simple",
        )
    return CapacityGraph(names, len(topology.ranks), tuple(arcs), unit)
