"""Capacity graphs of presets and random topologies: exact integer scaling (docs/topology-format.md)."""

from __future__ import annotations

from fractions import Fraction
from math import gcd

import pytest
from hypothesis import given, settings

from collc.capacity import capacity_graph
from collc.topology import load
from collc.topology.model import Topology

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
