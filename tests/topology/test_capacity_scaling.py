"""Capacity graphs of presets and random topologies: exact integer scaling (docs/topology-format.md)."""

from __future__ import annotations

from fractions import Fraction
from math import gcd, lcm

import pytest
from hypothesis import given, settings

from collc.capacity import capacity_graph
from collc.errors import InputError
from collc.input_limits import MAX_CAPACITY_UNITS
from collc.topology import load
from collc.topology.model import Link, Node, Topology

from .strategies import topologies


@pytest.mark.parametrize(
    ("preset", "boxes", "unit", "capacities"),
    [
        ("dgx-a100", 1, 300, {1}),
        ("dgx-a100", 2, 25, {12, 1}),
        ("mi250", 2, 2, {100, 50, 25, 8}),
        ("dgx-h100-rail", 4, 50, {9, 1, 4}),
    ],
)
def test_documented_scaling_of_presets(preset: str, boxes: int, unit: int, capacities: set[int]) -> None:
    graph = capacity_graph(load(preset, {"boxes": str(boxes)}))
    assert graph.unit == unit
    assert {capacity for _u, _v, capacity in graph.arcs} == capacities


def check_graph(topology: Topology) -> None:
    bandwidths = [bw for (src, dst), bw in topology.arc_bandwidths().items() if src != dst]
    unit = Fraction(gcd(*(bw.numerator for bw in bandwidths)), lcm(*(bw.denominator for bw in bandwidths)))
    if max(bw / unit for bw in bandwidths) > MAX_CAPACITY_UNITS:  # int64 max-flow sums could overflow
        with pytest.raises(InputError, match="no common unit coarse enough"):
            capacity_graph(topology)
        return
    graph = capacity_graph(topology)
    others = sorted(node.name for node in topology.nodes if node.kind != "gpu")
    assert graph.names == topology.ranks + tuple(others)
    assert graph.num_gpus == topology.num_gpus
    expected = {
        (graph.names.index(src), graph.names.index(dst)): bandwidth
        for (src, dst), bandwidth in topology.arc_bandwidths().items()
    }
    assert {(u, v): graph.to_gbps(c) for u, v, c in graph.arcs} == expected
    assert list(graph.arcs) == sorted(graph.arcs)
    assert all(isinstance(c, int) and c > 0 for _u, _v, c in graph.arcs)
    common = 0
    for _u, _v, capacity in graph.arcs:
        common = gcd(common, capacity)
    assert common == 1  # the unit is the largest exact common measure
    assert isinstance(graph.unit, Fraction)


@settings(max_examples=40, deadline=None)
@given(topologies())
def test_random_topologies_scale_exactly(topology: Topology) -> None:
    check_graph(topology)


@pytest.mark.parametrize("preset", ["dgx1", "gb200-nvl72", "mi300x", "dgx-h100"])
def test_realistic_presets_scale_exactly(preset: str) -> None:
    check_graph(load(preset))


def test_capacities_too_fine_for_int64_are_an_input_error() -> None:
    """Bandwidths 1/p for 30 primes p have a common unit of 1/(their product): capacities of 2^150."""
    primes = [p for p in range(2, 200) if all(p % q for q in range(2, p))][:30]
    nodes = tuple(Node(f"g{i}", "gpu") for i in range(31))
    links = tuple(Link(f"g{i}", f"g{i + 1}", Fraction(1, p)) for i, p in enumerate(primes))
    topology = Topology("primes", nodes, links, tuple(node.name for node in nodes))
    with pytest.raises(InputError, match=r"largest is about 2\^1\d\d times .* limit is 2\^47"):
        capacity_graph(topology)
