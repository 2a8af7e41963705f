"""Capacitated spanning-tree packing on switch-free graphs."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.errors import InvariantError
from collc.solver.packing import LogicalTree, pack_trees, pack_trees_symmetric


def _check_packing(num_gpus: int, k: int, capacities: dict, trees: list[LogicalTree]) -> None:
    per_root: Counter[int] = Counter()
    load: Counter[tuple[int, int]] = Counter()
    for tree in trees:
        per_root[tree.root] += tree.multiplicity
        graph = nx.DiGraph(tree.edges)
        graph.add_node(tree.root)
        assert graph.number_of_nodes() == num_gpus
        assert nx.is_arborescence(graph)
        assert graph.in_degree(tree.root) == 0
        for edge in tree.edges:
            load[edge] += tree.multiplicity
    assert per_root == dict.fromkeys(range(num_gpus), k)
    assert all(load[arc] <= capacities.get(arc, 0) for arc in load)


def test_complete_graph_packs_one_tree_per_root_tightly() -> None:
    # K4 with capacity 1 per arc: 12 arcs, 4 roots x 3 edges = 12 -> every arc used exactly once
    capacities = {(u, v): 1 for u in range(4) for v in range(4) if u != v}
    packing = pack_trees(4, 1, capacities)
    _check_packing(4, 1, capacities, packing.trees)
    assert len(packing.trees) == 4
    assert sum(len(t.edges) * t.multiplicity for t in packing.trees) == sum(capacities.values())


def test_multiplicities_split_when_capacity_is_short() -> None:
    # root 0 has k = 2 copies but one unit on each of its arcs: copy A goes 0->1->2, copy B 0->2->1
    capacities = {(0, 1): 1, (0, 2): 1, (1, 2): 3, (2, 1): 3, (1, 0): 4, (2, 0): 4}
    packing = pack_trees(3, 2, capacities)
    _check_packing(3, 2, capacities, packing.trees)
    root_zero = [tree for tree in packing.trees if tree.root == 0]
    assert sorted(tree.multiplicity for tree in root_zero) == [1, 1]
    assert {tuple(sorted(tree.edges)) for tree in root_zero} == {((0, 1), (1, 2)), ((0, 2), (2, 1))}


def test_infeasible_capacities_are_an_invariant_error() -> None:
    with pytest.raises(InvariantError, match="cannot reach"):
        pack_trees(3, 1, {(0, 1): 1, (1, 2): 1, (2, 0): 1, (1, 0): 1})


def _edmonds_k(num_gpus: int, capacities: dict) -> int:
    """Largest k with λ(s, v) >= N·k for all v (s feeding k to every GPU), by networkx."""
    k = 0
    while True:
        graph = nx.DiGraph()
        graph.add_nodes_from(range(num_gpus))
        for (u, v), cap in capacities.items():
            graph.add_edge(u, v, capacity=cap)
        for gpu in range(num_gpus):
            graph.add_edge("s", gpu, capacity=k + 1)
        if min(nx.maximum_flow_value(graph, "s", v) for v in range(num_gpus)) < num_gpus * (k + 1):
            return k
        k += 1


@st.composite
def switch_free(draw: st.DrawFn) -> tuple[int, dict]:
    num_gpus = draw(st.integers(2, 6))
    arcs = [(u, v) for u in range(num_gpus) for v in range(num_gpus) if u != v]
    capacities = {arc: draw(st.integers(0, 6)) for arc in arcs}
    return num_gpus, {arc: cap for arc, cap in capacities.items() if cap > 0}


@settings(max_examples=60, deadline=None)
@given(case=switch_free())
def test_random_graphs_pack_the_edmonds_optimum(case: tuple[int, dict]) -> None:
    num_gpus, capacities = case
    k = _edmonds_k(num_gpus, capacities)
    if k == 0:
        return
    packing = pack_trees(num_gpus, k, capacities)
    _check_packing(num_gpus, k, capacities, packing.trees)


def _cyclic_transversal(num_gpus: int) -> dict[int, list[tuple[int, ...]]]:
    """One orbit: the shift by ``d`` maps root 0 to root ``d``."""
    return {0: [tuple((v + d) % num_gpus for v in range(num_gpus)) for d in range(num_gpus)]}


def test_symmetric_packing_builds_one_root_and_maps_it() -> None:
    capacities = {(u, v): 1 for u in range(5) for v in range(5) if u != v}
    packing = pack_trees_symmetric(5, 1, capacities, _cyclic_transversal(5))
    assert packing is not None
    _check_packing(5, 1, capacities, packing.trees)
    shapes = {tuple(sorted(((x - t.root) % 5, (y - t.root) % 5) for x, y in t.edges)) for t in packing.trees}
    assert len(shapes) == 1  # every root's tree is the shifted representative
    assert packing.max_flow_calls < 4 * 5  # one check per added edge of one tree (+ failed probes)


@st.composite
def circulants(draw: st.DrawFn) -> tuple[int, dict]:
    """A circulant digraph: arc ``u -> u + d`` has a capacity that depends only on ``d``."""
    num_gpus = draw(st.integers(2, 7))
    by_offset = {d: draw(st.integers(0, 5)) for d in range(1, num_gpus)}
    capacities = {(u, (u + d) % num_gpus): c for u in range(num_gpus) for d, c in by_offset.items() if c}
    return num_gpus, capacities


@settings(max_examples=40, deadline=None)
@given(case=circulants(), breadth_first=st.booleans())
def test_random_symmetric_packings_are_valid(case: tuple[int, dict], breadth_first: bool) -> None:
    num_gpus, capacities = case
    k = _edmonds_k(num_gpus, capacities)
    if k == 0:
        return
    packing = pack_trees_symmetric(num_gpus, k, capacities, _cyclic_transversal(num_gpus), breadth_first)
    if packing is not None:  # None: no symmetric completion found, the caller packs every root
        _check_packing(num_gpus, k, capacities, packing.trees)


def _height(tree: LogicalTree) -> int:
    depth = {tree.root: 0}
    for x, y in tree.edges:
        depth[y] = depth[x] + 1
    return max(depth.values())


def test_breadth_first_takes_the_direct_arc_where_the_widest_goes_round() -> None:
    """4 GPUs, arcs to the next GPU 4 wide, the others 1: widest first, a tree runs round the ring
    (height 3); breadth first every arc can take the whole tree, so it is a star (height 1)."""
    capacities = {(u, (u + d) % 4): 4 if d == 1 else 1 for u in range(4) for d in (1, 2, 3)}
    packings = {
        order: pack_trees_symmetric(4, 1, capacities, _cyclic_transversal(4), breadth_first=order)
        for order in (False, True)
    }
    for packing in packings.values():
        assert packing is not None
        _check_packing(4, 1, capacities, packing.trees)
    assert {_height(tree) for tree in packings[False].trees} == {3}
    assert {_height(tree) for tree in packings[True].trees} == {1}
