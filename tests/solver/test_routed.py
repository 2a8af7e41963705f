"""Forests on the runtime's paths (collc.solver.routed): the arborescence oracle, the linear
program's optimum, and the forests it chooses, on a dual-socket PCIe fabric where the exact forest's
routes are not the runtime's."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from collc.errors import InvariantError
from collc.predict.des import runtime_path
from collc.predict.network import Network
from collc.solver import routed
from collc.solver.forest import Forest, Tree
from collc.solver.invariants import check_forest
from collc.solver.pipeline import solve
from collc.solver.routed import (
    Column,
    RoutedPacking,
    cheapest_arborescence,
    edge_arcs,
    on_route_algbw,
    routed_forest,
    routed_packing,
    single_routes,
)
from collc.topology.presets import load

FIXTURE = Path(__file__).parent / "fixtures" / "pcie-2socket-x2.yaml"


@pytest.fixture(scope="module")
def fabric():
    topology = load(FIXTURE)
    network = Network.of(topology)
    n = topology.num_gpus
    paths = {(u, v): runtime_path(network, (u, v, 0), []) for u in range(n) for v in range(n) if u != v}
    return topology, single_routes(paths)


def _brute_force(n: int, root: int, cost: dict[tuple[int, int], float]) -> float:
    """The cheapest spanning out-tree of ``root`` by trying every parent for every other GPU."""
    others = [v for v in range(n) if v != root]
    best = float("inf")
    for parents in itertools.product(range(n), repeat=len(others)):
        parent = dict(zip(others, parents, strict=True))
        if any(parent[v] == v for v in others):
            continue
        if all(_reaches_root(v, parent, root) for v in others):
            best = min(best, sum(cost[(parent[v], v)] for v in others))
    return best


def _reaches_root(v: int, parent: dict[int, int], root: int) -> bool:
    seen = set()
    while v != root:
        if v in seen:
            return False
        seen.add(v)
        v = parent[v]
    return True


@pytest.mark.parametrize("seed", range(24))
def test_the_cheapest_arborescence_is_the_brute_force_minimum(seed: int) -> None:
    rng = random.Random(seed)
    n = 4 + seed % 3
    cost = {(u, v): float(rng.randint(0, 9)) for u in range(n) for v in range(n) if u != v}
    root = seed % n
    matrix = np.zeros((n, n))
    for (u, v), value in cost.items():
        matrix[u, v] = value
    edges = cheapest_arborescence(matrix, root)
    parent = {v: u for u, v in edges}
    assert sorted(parent) == [v for v in range(n) if v != root]
    assert all(_reaches_root(v, parent, root) for v in parent)
    assert sum(cost[edge] for edge in edges) == _brute_force(n, root, cost)


def test_an_edge_loads_the_runtime_path_of_the_data_direction() -> None:
    routes = single_routes({(0, 1): ("a", "s", "b"), (1, 0): ("b", "t", "a")})
    assert edge_arcs("allgather", routes)[(0, 1, 0)] == (("a", "s"), ("s", "b"))
    assert edge_arcs("reducescatter", routes)[(0, 1, 0)] == (("b", "t"), ("t", "a"))
    assert edge_arcs("allreduce", routes)[(0, 1, 0)] == (("a", "s"), ("s", "b"), ("b", "t"), ("t", "a"))


def test_an_edge_on_a_plane_loads_that_plane_both_ways() -> None:
    """Between boxes a pair has a route per network plane; the r-th route of each direction crosses
    the same plane, so an allreduce edge's reduce half runs on its broadcast half's plane."""
    routes = {(0, 1): (("a", "p", "b"), ("a", "q", "b")), (1, 0): (("b", "p", "a"), ("b", "q", "a"))}
    loads = edge_arcs("allreduce", routes)
    assert loads[(0, 1, 1)] == (("a", "q"), ("q", "b"), ("b", "q"), ("q", "a"))
    assert set(loads) == {(0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1)}
    with pytest.raises(InvariantError, match="2 routes one way, 1 the other"):
        edge_arcs("allgather", {(0, 1): routes[(0, 1)], (1, 0): routes[(1, 0)][:1]})


def test_the_program_prices_every_route_of_a_pair() -> None:
    """Two GPUs joined through two planes of 10 and 30 GB/s: each root's trees take both routes (40
    GB/s per root); on the first route alone they carry 10. Fails if the pricing keeps one route."""
    two = {(0, 1): (("a", "p", "b"), ("a", "q", "b")), (1, 0): (("b", "p", "a"), ("b", "q", "a"))}
    bandwidth = {
        arc: Fraction(10 if "p" in arc else 30)
        for path in two.values()
        for arc in itertools.pairwise(path[0] + path[1])
    }
    packing = routed_packing(2, edge_arcs("allgather", two), bandwidth)
    assert packing.x == pytest.approx(40)
    assert {column.edges for column in packing.columns if column.root == 0} == {((0, 1, 0),), ((0, 1, 1),)}
    first = {pair: paths[:1] for pair, paths in two.items()}
    assert routed_packing(2, edge_arcs("allgather", first), bandwidth).x == pytest.approx(10)


def test_a_root_that_reaches_a_gpu_only_through_others_starts_from_a_tree_of_fewest_links() -> None:
    """Rails without a spine: GPU 0 has no route to GPU 2 (the runtime would relay through another
    GPU), so its first tree is not its star; the program still spans every GPU. A GPU no route
    reaches is an error."""
    line = {(0, 1): ("a", "s", "b"), (1, 2): ("b", "t", "c")}
    routes = single_routes({**line, **{(v, u): tuple(reversed(path)) for (u, v), path in line.items()}})
    routes |= {(0, 2): (None,), (2, 0): (None,)}
    bandwidth = {arc: Fraction(10) for path in line.values() for arc in itertools.pairwise(path + path[::-1])}
    packing = routed_packing(3, edge_arcs("allgather", routes), bandwidth)
    assert Column(0, ((0, 1, 0), (1, 2, 0))) in packing.columns
    assert packing.x == pytest.approx(5)  # the middle GPU forwards both ends' data each way
    apart = {**routes, (1, 2): (None,), (2, 1): (None,)}
    with pytest.raises(InvariantError, match="reaches not every GPU"):
        routed_packing(3, edge_arcs("allgather", apart), bandwidth)


def _on_route(forest: Forest, coll: str, paths) -> Fraction:
    return on_route_algbw(forest, coll, paths, load(FIXTURE).arc_bandwidths())


def test_the_exact_forest_loses_on_the_runtime_paths_and_the_program_does_not(fabric) -> None:
    """The bound (8 GPUs behind 32 GB/s PCIe ports: 8 * 32 / 7 = 36.57 GB/s allgather) is reachable on
    the runtime's paths, but the exact forest of k = 2 enters the boxes through the wrong socket's
    NIC: on the runtime's paths it carries 22.2 GB/s."""
    topology, paths = fabric
    packing = routed_packing(topology.num_gpus, edge_arcs("allgather", paths), topology.arc_bandwidths())
    assert packing.x * topology.num_gpus == pytest.approx(256 / 7)
    exact = solve(topology, k=2).forest
    assert exact.allgather_algbw == Fraction(256, 7)
    assert _on_route(exact, "allgather", paths) == Fraction(200, 9)


@pytest.mark.parametrize(
    ("coll", "k", "expected"),
    [
        ("allgather", 4, Fraction(256, 7)),  # the bound itself
        ("reducescatter", 4, Fraction(256, 7)),
        ("allreduce", 4, Fraction(128, 7)),  # both halves load the arcs: the bound (exact forest: 14.29)
    ],
)
def test_a_routed_forest_holds_the_invariants_on_the_runtime_paths(fabric, coll, k, expected) -> None:
    topology, paths = fabric
    bandwidth = topology.arc_bandwidths()
    exact = solve(topology, k=k, reverse=coll == "reducescatter").forest
    forest = routed_forest(topology.num_gpus, k, coll, paths, bandwidth, seed=exact)
    check_forest(forest, topology, None, reverse=forest.reversed)
    assert forest.reversed == (coll == "reducescatter")
    assert forest.routed and forest.layout == "trees on the runtime's paths"
    for tree in forest.trees:
        for edge in tree.edges:
            data_path = tuple(reversed(edge.path)) if forest.reversed else edge.path
            pair = (edge.dst, edge.src) if forest.reversed else (edge.src, edge.dst)
            assert data_path == paths[pair][0]
    assert _on_route(forest, coll, paths) == expected
    assert _on_route(forest, coll, paths) > _on_route(exact, coll, paths)
    again = routed_forest(topology.num_gpus, k, coll, paths, bandwidth, seed=exact)
    assert again == forest  # deterministic: CP-SAT on one worker and a deterministic budget


def test_the_routed_forest_in_steps_is_the_whole_one(fabric) -> None:
    """A compile service stops between steps: the generation yields after each round, the choice
    after each of its two integer programs and each descent (from the programs' answers, the
    rounding and the seed), and the forest is the same as solved whole. Fails if any stage stops
    yielding."""
    topology, paths = fabric
    n, bandwidth = topology.num_gpus, topology.arc_bandwidths()
    exact = solve(topology, k=2).forest
    steps = routed.routed_forest_steps(n, 2, "allgather", paths, bandwidth, seed=exact)
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            forest = stop.value
            break
        yields += 1
    rounds = sum(1 for _ in routed.routed_packing_steps(n, edge_arcs("allgather", paths), bandwidth))
    assert rounds >= 2  # the stars alone are not the optimum here: trees enter in the first round
    assert yields == rounds + 2 + 4  # two programs; descents from both, the rounding and the seed
    assert forest == routed_forest(n, 2, "allgather", paths, bandwidth, seed=exact)


def test_the_seed_bounds_the_choice_from_below(fabric) -> None:
    """With only the stars to choose from (a planted, poor generation), k = 1 carries 12.5 GB/s on
    the runtime's paths; with the exact forest as a seed the choice is never worse than that forest
    (33.3)."""
    topology, paths = fabric
    n, bandwidth = topology.num_gpus, topology.arc_bandwidths()
    stars = tuple(Column(root, tuple((root, v, 0) for v in range(n) if v != root)) for root in range(n))
    poor = RoutedPacking(0.0, stars, (1.0,) * n)
    exact = solve(topology, k=1).forest
    alone = routed_forest(n, 1, "allgather", paths, bandwidth, packing=poor)
    seeded = routed_forest(n, 1, "allgather", paths, bandwidth, seed=exact, packing=poor)
    assert _on_route(alone, "allgather", paths) == Fraction(25, 2)
    assert _on_route(exact, "allgather", paths) == Fraction(100, 3)
    assert _on_route(seeded, "allgather", paths) >= _on_route(exact, "allgather", paths)


def test_the_descent_walks_a_plateau_of_the_busiest_arc_to_a_lower_one() -> None:
    """Arcs a, b, c of 1 GB/s. Root 0 takes P0 (crosses a and b) or Q0 (a and c); root 1 takes P1 (a)
    or Q1 (b); roots 2 and 3 have one tree each (b, and a). From P0 and P1 the loads are a 3, b 2, c 0,
    and no single move lowers the busiest arc or how many arcs are that busy: P0 -> Q0 keeps a at 3,
    P1 -> Q1 puts b at 3. Ranked leximax, P0 -> Q0 lowers b (3, 1, 1 against 3, 2, 0), and then P1 ->
    Q1 brings the busiest arc down to 2. Fails if the descent is dropped or ranks moves by the busiest
    arc and its count alone."""
    columns = [Column(0, ()), Column(0, ()), Column(1, ()), Column(1, ()), Column(2, ()), Column(3, ())]
    crossing = {"a": {0: 1, 1: 1, 2: 1, 5: 1}, "b": {0: 1, 3: 1, 4: 1}, "c": {1: 1}}
    bandwidth = {arc: Fraction(1) for arc in crossing}
    start = [1, 0, 1, 0, 1, 1]
    moves = routed._Moves.of(columns, crossing, bandwidth)
    assert routed._descended(start, moves, crossing, bandwidth) == [0, 1, 0, 1, 1, 1]


def test_the_choice_descends_from_the_rounded_optimum(fabric, monkeypatch) -> None:
    """With no budget for the integer program, the choice is the descent from the linear optimum's
    rounding: allgather at k = 2 carries 512/17 GB/s rounded and 100/3 descended. Fails if the
    choice stops at its starts."""
    topology, paths = fabric
    n, bandwidth = topology.num_gpus, topology.arc_bandwidths()
    loads = edge_arcs("allgather", paths)
    packing = routed_packing(n, loads, bandwidth)
    monkeypatch.setattr(routed, "CHOICE_BUDGET", 1e-9)
    counts = routed.choose_trees(packing, 2, loads, bandwidth)
    crossing = routed._crossings(packing.columns, loads)
    assert n * 2 / routed._busiest(routed._rounded(packing, 2), crossing, bandwidth) == Fraction(512, 17)
    assert n * 2 / routed._busiest(counts, crossing, bandwidth) >= Fraction(100, 3)


def test_the_packing_stops_at_a_ceiling(fabric) -> None:
    """A ceiling the stars' program already reaches stops the generation before its first round; the
    full generation reaches the bound's 36.57 GB/s (x* = 32/7 per root) with more trees."""
    topology, paths = fabric
    n, loads = topology.num_gpus, edge_arcs("allgather", paths)
    full = routed_packing(n, loads, topology.arc_bandwidths(), ceiling=32 / 7)
    capped = routed_packing(n, loads, topology.arc_bandwidths(), ceiling=0.0)
    assert full.x == pytest.approx(32 / 7)
    assert len(capped.columns) == n < len(full.columns)
    assert capped.x < full.x


def test_check_forest_without_a_bound_still_checks_the_trees(fabric) -> None:
    topology, paths = fabric
    forest = routed_forest(topology.num_gpus, 1, "allgather", paths, topology.arc_bandwidths())
    broken = Forest(forest.num_gpus, forest.k, forest.U, (*forest.trees, Tree(0, 1, forest.trees[0].edges)))
    with pytest.raises(InvariantError, match="multiplicities sum to 2"):
        check_forest(broken, topology, None)
    tight = Forest(forest.num_gpus, forest.k, forest.U / 2, forest.trees)
    with pytest.raises(InvariantError, match="U·bandwidth"):
        check_forest(tight, topology, None)
