"""The bound against a brute-force enumeration of every cut of small random fabrics (hypothesis)."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from collc.capacity import CapacityGraph, capacity_graph
from collc.errors import InfeasibleError
from collc.solver.bound import budgeted_bound, fixed_k_bound, integer_capacities, optimal_bound
from collc.solver.ceiling import allreduce_ceiling
from collc.solver.overlap import overlap_algbw
from collc.topology.model import Link, Node, Topology


@st.composite
def fabrics(draw) -> Topology:
    """Up to 10 nodes (2-6 GPUs, the rest switches), random capacities, directed or full-duplex links."""
    num_gpus = draw(st.integers(2, 6))
    num_switches = draw(st.integers(0, 10 - num_gpus))
    names = [f"g{i}" for i in range(num_gpus)] + [f"s{i}" for i in range(num_switches)]
    nodes = [Node(name, "gpu" if name[0] == "g" else "switch") for name in names]
    pairs = list(combinations(names, 2))
    size = min(len(pairs), 3 * len(names))
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=len(names) - 1, max_size=size, unique=True))
    directed = draw(st.booleans())
    links = []
    for a, b in chosen:
        src, dst = (b, a) if directed and draw(st.booleans()) else (a, b)
        bandwidth = Fraction(draw(st.integers(1, 12)), draw(st.sampled_from([1, 2, 5])))
        links.append(Link(src, dst, bandwidth, directed=directed))
    return Topology("random", tuple(nodes), tuple(links), tuple(names[:num_gpus]))


def _cuts(graph: CapacityGraph):
    """Every vertex set holding some but not all GPUs."""
    for mask in range(1, 1 << graph.num_nodes):
        gpus = sum(1 for v in range(graph.num_gpus) if mask >> v & 1)
        if 0 < gpus < graph.num_gpus:
            yield mask, gpus


def _leaving(graph: CapacityGraph, mask: int, capacities: list[int] | None = None) -> int:
    caps = capacities if capacities is not None else [cap for _, _, cap in graph.arcs]
    return sum(
        c for (u, v, _), c in zip(graph.arcs, caps, strict=True) if mask >> u & 1 and not mask >> v & 1
    )


def _brute_x_star(graph: CapacityGraph) -> Fraction:
    """min_S B+(S)/|S ∩ GPUs| in GB/s."""
    return min(Fraction(_leaving(graph, mask), gpus) for mask, gpus in _cuts(graph)) * graph.unit


def _feasible(graph: CapacityGraph, capacities: list[int], k: int) -> bool:
    return all(_leaving(graph, mask, capacities) >= k * gpus for mask, gpus in _cuts(graph))


def _floored(graph: CapacityGraph, budget: Fraction) -> list[int]:
    return [math.floor(budget * graph.to_gbps(cap)) for _, _, cap in graph.arcs]


@settings(max_examples=120, deadline=None)
@given(fabrics())
def test_optimal_bound_matches_every_cut(topology):
    graph = capacity_graph(topology)
    expected = _brute_x_star(graph)
    if expected == 0:
        try:
            optimal_bound(graph)
        except InfeasibleError:
            return
        raise AssertionError("a fabric with a zero cut must be reported infeasible")
    bound = optimal_bound(graph)
    assert bound.x_star == expected
    # The reported cut attains x*.
    assert bound.cut_bandwidth / bound.cut_num_gpus == expected
    # k and U: U·b integral on every arc, k/U = x*, and no smaller k can do that.
    assert bound.k / bound.U == expected
    assert integer_capacities(graph, bound) == [bound.U * graph.to_gbps(cap) for _, _, cap in graph.arcs]
    assert _feasible(graph, integer_capacities(graph, bound), bound.k)
    for smaller in range(1, bound.k):
        budget = smaller / expected
        assert any((budget * graph.to_gbps(cap)).denominator != 1 for _, _, cap in graph.arcs)


def _previous_breakpoint(graph: CapacityGraph, budget: Fraction) -> Fraction:
    """The largest U' < budget at which some floor(U'·b) changes (below it the floors are smaller)."""
    candidates = []
    for _, _, cap in graph.arcs:
        bandwidth = graph.to_gbps(cap)
        j = math.ceil(budget * bandwidth) - 1
        if j >= 0:
            candidates.append(Fraction(j) / bandwidth)
    return max(candidates)


@settings(max_examples=80, deadline=None)
@given(fabrics(), st.integers(1, 4))
def test_fixed_k_is_the_smallest_feasible_floored_budget(topology, k):
    graph = capacity_graph(topology)
    if _brute_x_star(graph) == 0:
        return
    bound = fixed_k_bound(graph, k)
    assert bound.k == k
    assert _feasible(graph, _floored(graph, bound.U), k)
    assert not _feasible(graph, _floored(graph, _previous_breakpoint(graph, bound.U)), k)
    assert bound.x_star <= bound.optimal_x_star == _brute_x_star(graph)
    assert bound.x_star == k / bound.U


@settings(max_examples=40, deadline=None)
@given(fabrics(), st.integers(1, 4))
def test_budgeted_is_the_best_of_fixed_k(topology, max_k):
    graph = capacity_graph(topology)
    if _brute_x_star(graph) == 0:
        return
    best = budgeted_bound(graph, max_k)
    optimum = optimal_bound(graph)
    assert best.k <= max_k
    candidates = [fixed_k_bound(graph, k).x_star for k in range(1, max_k + 1)]
    assert best.x_star == (optimum.x_star if optimum.k <= max_k else max(candidates))


def _entering(graph: CapacityGraph, mask: int) -> int:
    return sum(cap for u, v, cap in graph.arcs if not mask >> u & 1 and mask >> v & 1)


@settings(max_examples=120, deadline=None)
@given(fabrics())
def test_allreduce_ceiling_is_the_least_cut_between_gpus_and_never_below_the_figure(topology):
    """The ceiling is the least capacity crossing a cut with GPUs on both sides, either way (every
    cut enumerated), and a schedule reaches reduce-scatter then allgather, so it is never below that."""
    graph = capacity_graph(topology)
    least = min(min(_leaving(graph, mask), _entering(graph, mask)) for mask, _ in _cuts(graph))
    ceiling = allreduce_ceiling(graph)
    assert ceiling == least * graph.unit
    if _brute_x_star(graph) and _brute_x_star(graph.reversed()):
        gather, scatter = optimal_bound(graph), optimal_bound(graph.reversed())
        assert ceiling >= 1 / (1 / gather.allgather_algbw + 1 / scatter.allgather_algbw)


@settings(max_examples=80, deadline=None)
@given(fabrics())
def test_the_overlap_figure_never_passes_the_allreduce_ceiling(topology) -> None:
    """Across any cut between GPUs the two halves move one buffer each way, so the figure stays at or
    below the least capacity crossing such a cut (the ceiling), on random fabrics with switches and
    one-way links."""
    graph = capacity_graph(topology)
    figure = overlap_algbw(graph)
    assert figure is None or 0 <= figure <= allreduce_ceiling(graph)
