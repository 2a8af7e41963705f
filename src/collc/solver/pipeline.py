"""The whole solver: topology -> bound -> switch removal -> tree packing -> physical paths -> checks.

:func:`solve` is what the CLI (``collc trees``), the lowering and the predictor call. Every phase is
timed and its max-flow calls counted (:class:`SolveStats`); the forest's invariants are always checked
(:func:`collc.solver.invariants.check_forest`).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple, TypeVar

from collc.capacity import CapacityGraph, capacity_graph
from collc.errors import InputError
from collc.solver.balance import UnbalancedSwitches, balanced_fabrics, balanced_trees
from collc.solver.bound import Bound, budgeted_bound, fixed_k_bound, integer_capacities, optimal_bound
from collc.solver.forest import Forest
from collc.solver.invariants import check_forest
from collc.solver.packing import Packing, packing_steps, symmetric_packing_steps
from collc.solver.paths import physical_trees
from collc.solver.splitting import SwitchFreeGraph, remove_switches_steps
from collc.solver.symmetry import (
    Permutation,
    automorphisms,
    cyclic_automorphisms,
    gpu_orbits,
    orbit_transversal,
)
from collc.stepping import drain
from collc.topology.model import Topology

T = TypeVar("T")

PHASES = ("bound", "switch_removal", "packing", "mapping", "check")


@dataclass
class SolveStats:
    """Per-phase wall time (s) and max-flow calls, and figures about the result."""

    seconds: dict[str, float] = field(default_factory=dict)
    max_flow_calls: dict[str, int] = field(default_factory=dict)
    peak_rss_bytes: int = 0  # the process's peak resident memory after the solve (getrusage)
    logical_arcs: int = 0  # arcs of the switch-free graph
    logical_trees: int = 0  # distinct capacitated trees packed
    symmetries: int = 0  # verified automorphism generators of the fabric (used by the bound)
    packing_orbits: int = 0  # GPU orbits that grew trees (N without symmetric packing)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


@dataclass(frozen=True)
class Solution:
    bound: Bound
    forest: Forest
    stats: SolveStats


@contextmanager
def _phase(stats: SolveStats, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        stats.seconds[name] = stats.seconds.get(name, 0.0) + time.perf_counter() - start


def timed_phase(stats: SolveStats, name: str, steps: Generator[None, None, T]) -> Generator[None, None, T]:
    """Run ``steps`` as phase ``name``: yield where it yields, count only the time it runs."""
    while True:
        with _phase(stats, name):
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value
        yield


def _choose_bound(
    graph: CapacityGraph, symmetries: list[Permutation], k: int | None, max_k: int | None
) -> Bound:
    """The bound the forest is packed for: fixed ``k``, budgeted ``max_k``, or the optimum."""
    if k is not None and max_k is not None:
        raise InputError("--k and --max-k cannot be combined", hint="give either a fixed k or a budget")
    if k is not None:
        return fixed_k_bound(graph, k, symmetries)
    if max_k is not None:
        return budgeted_bound(graph, max_k, symmetries)
    return optimal_bound(graph, symmetries)


def _logical_automorphisms(candidates: list[Permutation], split: SwitchFreeGraph) -> list[Permutation]:
    """The candidates (GPU permutations) that preserve every logical arc's capacity."""
    identity = tuple(range(split.num_gpus))
    kept = []
    for perm in dict.fromkeys(candidates):
        if perm != identity and all(
            split.capacities.get((perm[u], perm[t])) == c for (u, t), c in split.capacities.items()
        ):
            kept.append(perm)
    return kept


def _packing_steps(
    graph: CapacityGraph,
    symmetries: list[Permutation],
    split: SwitchFreeGraph,
    stats: SolveStats,
    breadth_first: bool,
) -> Generator[None, None, Packing]:
    """Symmetric packing (breadth first or widest arc first) when the switch-free graph has
    verified automorphisms and it completes, else exact packing of every root (docs/solver.md §4);
    yields after each tree."""
    n = graph.num_gpus
    candidates = [perm[:n] for perm in symmetries]
    generators = _logical_automorphisms(candidates, split)
    orbits = gpu_orbits(n, generators)
    stats.packing_orbits = n
    if len(orbits) < n:
        transversals = {}
        for orbit in orbits:
            elements = orbit_transversal(n, generators, orbit[0])
            transversals[orbit[0]] = [elements[v] for v in orbit]
        packing = yield from symmetric_packing_steps(
            n, split.k, split.capacities, transversals, breadth_first
        )
        if packing is not None:
            stats.packing_orbits = len(orbits)
            return packing
    return (yield from packing_steps(n, split.k, split.capacities))


class _Split(NamedTuple):
    """What :func:`_split_steps` returns: the graph solved on, its symmetries, the bound and the
    switch-free graph."""

    graph: CapacityGraph
    symmetries: list[Permutation]
    bound: Bound
    structural: list[Permutation]
    split: SwitchFreeGraph


class _Bounded(NamedTuple):
    """A graph to split, its symmetries, the bound its forest is packed for and that bound's tree
    capacities per arc."""

    graph: CapacityGraph
    symmetries: list[Permutation]
    bound: Bound
    capacities: list[int]


def _bounded(topology: Topology, graph: CapacityGraph, k: int | None, max_k: int | None) -> _Bounded:
    """``graph``'s bound (:func:`_choose_bound`) and its tree capacities ``floor(U·b)``."""
    symmetries = automorphisms(topology, graph)
    bound = _choose_bound(graph, symmetries, k, max_k)
    return _Bounded(graph, symmetries, bound, integer_capacities(graph, bound))


def _evened(bounded: _Bounded) -> _Bounded | None:
    """``bounded`` with its tree capacities evened out (:func:`collc.solver.balance.balanced_trees`,
    which may lower the bound); None where that leaves a GPU short at every budget it tries."""
    try:
        bound, capacities = balanced_trees(bounded.graph, bounded.bound)
    except UnbalancedSwitches:
        return None
    return bounded._replace(bound=bound, capacities=capacities)


def _split_steps(
    topology: Topology,
    graphs: Sequence[CapacityGraph],
    k: int | None,
    max_k: int | None,
    stats: SolveStats,
    even: bool = False,
) -> Generator[None, None, _Split]:
    """The bound and switch-free graph (the first two phases of :func:`solve_steps`) of the first of
    ``graphs`` that splits, highest bound first. ``even``: ``graphs`` are balanced fabrics
    (:func:`collc.solver.balance.balanced_fabrics`), whose tree capacities can floor unevenly at a
    fixed k (a split may still succeed): each is also tried with its capacities evened out, at the
    bound that leaves (:func:`_evened`), which the splitting theorem guarantees to split. Raises the
    last :class:`UnbalancedSwitches` where nothing splits."""
    with _phase(stats, "bound"):
        attempts = [_bounded(topology, graph, k, max_k) for graph in graphs]
        calls = sum(attempt.bound.max_flow_calls for attempt in attempts)
        if even:
            attempts += [evened for attempt in attempts if (evened := _evened(attempt))]
    stats.max_flow_calls["bound"] = stats.max_flow_calls.get("bound", 0) + calls
    failure: UnbalancedSwitches | None = None
    for attempt in sorted(attempts, key=_highest_first):  # stable: floors as they are first on a tie
        try:
            return (yield from _split(topology, attempt, stats))
        except UnbalancedSwitches as error:
            failure = error
    assert failure is not None
    raise failure


def _highest_first(bounded: _Bounded) -> Fraction:
    return -bounded.bound.x_star


def _split(topology: Topology, bounded: _Bounded, stats: SolveStats) -> Generator[None, None, _Split]:
    """Split ``bounded``'s graph at its tree capacities (:func:`remove_switches_steps`)."""
    graph, symmetries, bound, capacities = bounded
    stats.symmetries = len(symmetries)
    yield
    with _phase(stats, "switch_removal"):
        structural = cyclic_automorphisms(topology, graph)
        box_of = {node.name: node.box for node in topology.nodes}
        removal = remove_switches_steps(
            graph,
            capacities,
            bound.k,
            symmetries=structural,
            boxes=[box_of[name] for name in graph.names],
        )
    split = yield from timed_phase(stats, "switch_removal", removal)
    return _Split(graph, symmetries, bound, structural, split)


def solve(
    topology: Topology,
    *,
    k: int | None = None,
    max_k: int | None = None,
    reverse: bool = False,
    breadth_first: bool = False,
) -> Solution:
    """Solve ``topology`` for allgather: the bound and a forest meeting it exactly.

    * ``k``: exactly ``k`` trees per root (the best ``U`` for that k); ``max_k``: the best schedule
      with at most ``max_k`` trees per root; neither: the optimum with the smallest exact k.
    * ``reverse=True`` solves on the reversed fabric (every arc turned around), which is what
      reduce-scatter needs on asymmetric fabrics. The bound is then the reduce-scatter bound, and the
      forest (``forest.reversed`` is true) holds out-trees of the *reversed* graph: an edge
      ``{src, dst, path}`` means ``path[i] -> path[i+1]`` are reversed-graph arcs, i.e. the physical
      data of a reduce-scatter flows ``dst -> src`` over ``reversed(path)``, and each tree read that
      way is an in-tree that reduces into its root. Loads and invariants are checked on the physical
      arcs ``path[i+1] -> path[i]``.
    * ``breadth_first=True`` packs symmetric fabrics breadth first
      (:func:`collc.solver.packing.frontier_width`): the same bound, other trees. The forest is
      marked ``breadth_first`` only where the symmetric packing ran (the exact packing has one order).
    """
    return drain(solve_steps(topology, k=k, max_k=max_k, reverse=reverse, breadth_first=breadth_first))


def solve_steps(
    topology: Topology,
    *,
    k: int | None = None,
    max_k: int | None = None,
    reverse: bool = False,
    breadth_first: bool = False,
) -> Generator[None, None, Solution]:
    """:func:`solve` in steps: it yields after each phase and after each tree packed, so that a caller
    (a compile service) can stop between them, and returns the solution. The phases' times count only
    while it runs."""
    stats = SolveStats()
    with _phase(stats, "bound"):
        fabric = capacity_graph(topology)
        if reverse:
            fabric = fabric.reversed()
    try:
        solved = yield from _split_steps(topology, [fabric], k, max_k, stats)
    except UnbalancedSwitches:  # no tree schedule reaches this bound: pack a balanced fabric's
        with _phase(stats, "bound"):
            fabrics = balanced_fabrics(fabric)
        if not fabrics:
            raise
        solved = yield from _split_steps(topology, fabrics, k, max_k, stats, even=True)
    graph, symmetries, bound, structural, split = solved
    stats.max_flow_calls["switch_removal"] = split.max_flow_calls
    stats.logical_arcs = len(split.capacities)
    yield
    packing_run = _packing_steps(graph, structural + symmetries, split, stats, breadth_first)
    packing = yield from timed_phase(stats, "packing", packing_run)
    stats.max_flow_calls["packing"] = packing.max_flow_calls
    stats.logical_trees = len(packing.trees)
    with _phase(stats, "mapping"):
        trees = physical_trees(packing.trees, split, graph.names)
        breadth_first = breadth_first and stats.packing_orbits < graph.num_gpus  # symmetric packing ran
        forest = Forest(
            graph.num_gpus,
            bound.k,
            bound.U,
            tuple(trees),
            reverse,
            breadth_first=breadth_first,
            balanced=graph is not fabric,
        )
    with _phase(stats, "check"):
        check_forest(forest, topology, bound, reverse=reverse)
    stats.peak_rss_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return Solution(bound, forest, stats)
