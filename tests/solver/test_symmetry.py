"""Automorphisms from the topology's structure: verified, and the orbits they give."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.capacity import capacity_graph
from collc.errors import InfeasibleError
from collc.solver import symmetry
from collc.solver.bound import fixed_k_bound, optimal_bound
from collc.solver.symmetry import (
    automorphisms,
    box_automorphisms,
    gpu_orbits,
    is_automorphism,
    orbit_transversal,
)
from collc.topology import load
from collc.topology.model import Link, Node, Topology


@pytest.mark.parametrize(
    ("preset", "boxes", "orbits"),
    [
        ("dgx-a100", 1, 1),
        ("dgx-a100", 4, 2),  # even and odd GPUs hang off different IB switches
        ("mi250", 1, 4),
        ("mi250", 2, 4),
        ("dgx-h100-rail", 1, 1),
        ("dgx-h100-rail", 4, 1),
    ],
)
def test_reference_generators_are_automorphisms_with_expected_orbits(preset, boxes, orbits):
    _check_orbits(load(preset, {"boxes": str(boxes)}), orbits)


def test_leaf_spine_groups_boxes_by_scalable_unit():
    # Boxes under different leaves only swap as whole units, which box transpositions cannot do:
    # one orbit per unit, rails joined by role swaps (NIC and leaf follow their GPU).
    _check_orbits(load("dgx-h100", {"boxes": "6", "boxes_per_leaf": "3"}), 2)
    _check_orbits(load("dgx-h100", {"boxes": "4", "boxes_per_leaf": "4"}), 1)


def _check_orbits(topology, orbits):
    graph = capacity_graph(topology)
    generators = automorphisms(topology, graph)
    assert all(is_automorphism(graph, perm) for perm in generators)
    found = gpu_orbits(graph.num_gpus, generators)
    assert len(found) == orbits
    assert sorted(v for orbit in found for v in orbit) == list(range(graph.num_gpus))


def test_box_swaps_join_each_role_across_boxes():
    topology = load("dgx-a100", {"boxes": "3"})
    graph = capacity_graph(topology)
    generators = box_automorphisms(topology, graph)
    assert len(generators) == 2
    orbits = gpu_orbits(graph.num_gpus, generators)
    assert orbits == [(role, role + 8, role + 16) for role in range(8)]


def test_a_box_that_differs_is_left_out():
    topology = load("dgx-a100", {"boxes": "3"})
    # Slow down one NVLink in box 2: boxes 0 and 1 are still interchangeable, box 2 is not.
    links = tuple(
        replace(link, bandwidth=Fraction(150)) if (link.src, link.dst) == ("b2.gpu0", "b2.nvswitch") else link
        for link in topology.links
    )
    topology = replace(topology, links=links)
    graph = capacity_graph(topology)
    generators = box_automorphisms(topology, graph)
    assert len(generators) == 1
    orbits = gpu_orbits(graph.num_gpus, automorphisms(topology, graph))
    assert (16,) in orbits  # the slow GPU is alone


def test_is_automorphism_rejects_non_permutations_and_capacity_changes():
    graph = capacity_graph(load("dgx-a100", {"boxes": "1"}))
    identity = tuple(range(graph.num_nodes))
    assert is_automorphism(graph, identity)
    assert not is_automorphism(graph, identity[:-1])
    assert not is_automorphism(graph, (0, *identity[:-1]))
    gpu_to_switch = (8, *identity[1:8], 0)
    assert not is_automorphism(graph, gpu_to_switch)


def test_transversal_maps_the_representative_to_every_orbit_member():
    topology = load("dgx-h100-rail", {"boxes": "4"})
    graph = capacity_graph(topology)
    generators = automorphisms(topology, graph)
    elements = orbit_transversal(graph.num_nodes, generators, 0)
    assert sorted(elements) == list(range(graph.num_gpus))  # one orbit: every GPU
    for target, element in elements.items():
        assert element[0] == target
        assert is_automorphism(graph, element)


def _star(gpus: int) -> Topology:
    """``gpus`` GPUs on one switch: every GPU role swaps with every other."""
    nodes = (*(Node(f"gpu{i}", "gpu", 0, f"gpu{i}") for i in range(gpus)), Node("sw", "switch", 0, "sw"))
    links = tuple(Link(f"gpu{i}", "sw", Fraction(100)) for i in range(gpus))
    return Topology("star", nodes, links, tuple(f"gpu{i}" for i in range(gpus)))


def test_the_swap_searches_stop_at_their_budget(monkeypatch: pytest.MonkeyPatch):
    """4,096 GPUs on one switch spent 59 s in role swaps (each extended over the whole graph) for a
    bound that takes 7 s without them; the searches now stop at a budget and keep what they verified,
    and the bound is the same."""
    topology = _star(16)
    graph = capacity_graph(topology)
    assert len(automorphisms(topology, graph)) == 15  # every role joined to the first
    monkeypatch.setattr(symmetry, "MAX_ROLE_SWAP_VISITS", 4 * graph.num_nodes)
    generators = automorphisms(topology, graph)
    assert len(generators) == 4 and all(is_automorphism(graph, perm) for perm in generators)
    assert optimal_bound(graph, generators).x_star == optimal_bound(graph).x_star
    boxes = load("dgx-a100", {"boxes": "3"})
    boxed = capacity_graph(boxes)
    monkeypatch.setattr(symmetry, "MAX_BOX_SWAP_ARCS", len(boxed.arcs))
    assert len(box_automorphisms(boxes, boxed)) == 1  # was 2 (test_box_swaps_join_each_role_across_boxes)


@st.composite
def boxed_fabrics(draw) -> Topology:
    """Random boxes from one template (GPUs and a local switch) joined by shared switches.

    With some probability one box gets a different link so that some candidate swaps must fail.
    """
    boxes = draw(st.integers(2, 4))
    gpus = draw(st.integers(1, 4))
    shared = draw(st.integers(1, 2))
    local = [(f"gpu{i}", "sw", draw(st.integers(1, 6))) for i in range(gpus) if draw(st.booleans())]
    local += [(f"gpu{i}", f"gpu{i + 1}", draw(st.integers(1, 6))) for i in range(gpus - 1)]
    uplinks = [
        (f"gpu{i}", f"up{draw(st.integers(0, shared - 1))}", draw(st.integers(1, 3))) for i in range(gpus)
    ]
    odd_box = draw(st.sampled_from([None, *range(boxes)]))
    nodes, links = [], []
    for b in range(boxes):
        nodes += [Node(f"b{b}.gpu{i}", "gpu", b, f"gpu{i}") for i in range(gpus)]
        nodes.append(Node(f"b{b}.sw", "switch", b, "sw"))
        for src, dst, bw in local:
            links.append(Link(f"b{b}.{src}", f"b{b}.{dst}", Fraction(bw + (b == odd_box))))
        links += [Link(f"b{b}.{src}", dst, Fraction(bw)) for src, dst, bw in uplinks]
    nodes += [Node(f"up{j}", "switch") for j in range(shared)]
    return Topology("boxed", tuple(nodes), tuple(links), tuple(n.name for n in nodes if n.kind == "gpu"))


@settings(max_examples=60, deadline=None)
@given(boxed_fabrics())
def test_symmetry_never_changes_the_bound(topology):
    graph = capacity_graph(topology)
    generators = automorphisms(topology, graph)
    assert all(is_automorphism(graph, perm) for perm in generators)
    try:
        plain = optimal_bound(graph)
    except InfeasibleError:
        return
    symmetric = optimal_bound(graph, generators)
    assert (symmetric.x_star, symmetric.k, symmetric.U) == (plain.x_star, plain.k, plain.U)
    assert symmetric.cut_bandwidth / symmetric.cut_num_gpus == plain.x_star
    assert fixed_k_bound(graph, 2, generators).U == fixed_k_bound(graph, 2).U
