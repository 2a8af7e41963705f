"""The optimal allgather bound, its bottleneck cut, and the best bound with a fixed or budgeted k.

Model (docs/solver.md §1.1): for every cut ``S`` of the fabric that holds at least one GPU and leaves
at least one GPU out, every shard that starts inside ``S`` must cross the arcs leaving it, so

    x* = min_S  B+(S) / |S ∩ GPUs|            (GB/s per GPU; optimal allgather algbw = N·x*)

and a schedule of ``k`` spanning out-trees per GPU, with at most ``floor(U·b_e)`` trees on an arc of
``b_e`` GB/s, reaches allgather algbw ``N·k/U``. Reduce-scatter is the same bound on the reversed graph.

Feasibility test (docs/solver.md §1.2): add a super source ``s`` with an arc of capacity ``k`` to every GPU
and give arc ``e`` capacity ``c_e``; then ``maxflow(s, v) >= N·k`` for every GPU ``v`` iff
``sum_{e leaving S} c_e >= k·|S ∩ GPUs|`` for every cut ``S``. The minimum cut of the GPU ``v`` with
the smallest max-flow is the *most violated* cut ``S`` (it minimises ``c(δ+(S)) - k·|S ∩ GPUs|``).

* :func:`optimal_bound` finds ``x*`` exactly by Newton/Dinkelbach on that cut (docs/solver.md §1.3):
  from an upper bound ``x``, test ``c_e = q·b_e``, ``k = p`` for ``x = p/q``; if the most violated
  cut ``S`` exists, ``x <- B+(S)/|S∩GPUs|`` (strictly smaller, and ``|S∩GPUs|`` strictly decreases,
  so at most N-1 rounds), else ``x = x*``. Then ``k`` and ``U`` are the smallest integers that make ``U·b_e``
  integral on every arc with ``k/U = x*``.
* :func:`fixed_k_bound` finds the smallest ``U`` for which the test passes with floored capacities
  ``floor(U·b_e)`` and ``k`` trees per root, by the same kind of iteration: each violated cut gives the
  exact smallest ``U`` that satisfies *that* cut (a breakpoint ``j/b_e``), a lower bound on the answer.
* :func:`budgeted_bound`: the auto-k optimum if its k fits, else the best fixed k up to the budget.

Everything is exact (:class:`fractions.Fraction`, integer max-flows). The work is ``rounds × orbits``
max-flows on one reused :class:`FlowNetwork`; ``symmetries`` (verified automorphisms, see
:mod:`collc.solver.symmetry`) reduce the tested GPUs to one per orbit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from collc.capacity import CapacityGraph
from collc.errors import InfeasibleError, InputError, InvariantError, location_in
from collc.input_limits import MAX_K
from collc.solver.maxflow import FlowNetwork
from collc.solver.symmetry import Permutation, gpu_orbits, is_automorphism


@dataclass(frozen=True)
class Bound:
    """A throughput bound: ``k`` trees per root within congestion budget ``U`` and its limiting cut.

    ``U`` is in trees per GB/s: an arc of ``b`` GB/s may carry ``floor(U·b)`` trees (exactly ``U·b``,
    an integer, for the auto-k optimum). ``x_star = k/U`` is the GB/s per GPU the schedule reaches
    (allgather algbw ``N·x_star``); ``optimal_x_star`` is the unconstrained optimum. ``cut_inside`` is
    the bottleneck cut ``S`` (node names, sorted) and ``cut_arcs`` the arcs leaving it (src, dst, GB/s).
    """

    x_star: Fraction
    U: Fraction
    k: int
    cut_inside: tuple[str, ...]
    cut_arcs: tuple[tuple[str, str, Fraction], ...]
    num_gpus: int
    optimal_x_star: Fraction
    cut_num_gpus: int = 0  # |S ∩ GPUs|
    max_flow_calls: int = 0  # max-flow calls spent computing this bound
    rounds: int = 0  # feasibility tests (Dinkelbach / fixed-k iterations) run

    @property
    def allgather_algbw(self) -> Fraction:
        """Optimal allgather (and reduce-scatter on the same graph) algbw in GB/s: ``N·k/U``."""
        return self.num_gpus * self.k / self.U

    @property
    def given_up(self) -> Fraction:
        """Fraction of the unconstrained optimum this bound loses (0 for the auto-k optimum)."""
        return 1 - self.x_star / self.optimal_x_star

    @property
    def cut_bandwidth(self) -> Fraction:
        """Total GB/s of the arcs leaving the bottleneck cut."""
        return sum((bandwidth for _, _, bandwidth in self.cut_arcs), Fraction(0))

    @property
    def is_optimal(self) -> bool:
        return self.x_star == self.optimal_x_star


def integer_capacities(graph: CapacityGraph, bound: Bound) -> list[int]:
    """Trees allowed on each arc of ``graph.arcs`` (same order): ``floor(U · bandwidth)``.

    This is the integer flow network that switch removal and tree packing work on, with a super
    source arc of capacity ``bound.k`` to every GPU.
    """
    budget = bound.U * graph.unit  # trees per capacity unit
    return [math.floor(budget * cap) for _, _, cap in graph.arcs]


class _CutOracle:
    """Finds the most violated cut of the feasibility test on one reused flow network.

    Vertex ``graph.num_nodes`` is the super source; arc ``i < m`` is ``graph.arcs[i]`` and arc ``m + g``
    is the source arc to GPU ``g``. Only one GPU per orbit is tested (identical max-flows).
    """

    def __init__(self, graph: CapacityGraph, symmetries: Sequence[Permutation]):
        for perm in symmetries:
            if not is_automorphism(graph, perm):
                raise InvariantError(f"a symmetry passed to the bound is not an automorphism: {perm}")
        self.graph = graph
        self.source = graph.num_nodes
        arcs = [(u, v, 0) for u, v, _ in graph.arcs]
        arcs += [(self.source, gpu, 0) for gpu in range(graph.num_gpus)]
        self.network = FlowNetwork(graph.num_nodes + 1, arcs)
        num_arcs = len(graph.arcs)
        self.graph_arcs = np.arange(num_arcs, dtype=np.int64)
        self.source_arcs = np.arange(num_arcs, num_arcs + graph.num_gpus, dtype=np.int64)
        self.sinks = [orbit[0] for orbit in gpu_orbits(graph.num_gpus, symmetries)]
        self.rounds = 0

    def most_violated(self, capacities: np.ndarray, per_root: int) -> frozenset[int] | None:
        """The most violated cut ``S`` (vertices, source excluded), or ``None`` if the test passes.

        ``capacities`` are the arc capacities (``graph.arcs`` order), ``per_root`` the source
        capacity to every GPU; the test passes iff every GPU receives ``N·per_root``.
        """
        self.rounds += 1
        self.network.set_capacities(self.graph_arcs, capacities)
        self.network.set_capacities(self.source_arcs, np.full(self.graph.num_gpus, per_root, dtype=np.int64))
        demand = self.graph.num_gpus * per_root
        smallest, cut = demand, None
        for sink in self.sinks:
            flow = self.network.max_flow(self.source, sink)
            if flow < smallest:
                smallest = flow
                cut = frozenset(self.network.source_side()) - {self.source}
        return cut

    @property
    def calls(self) -> int:
        return self.network.calls


def _leaving(graph: CapacityGraph, inside: frozenset[int]) -> list[int]:
    """Indices of the arcs of ``graph.arcs`` that leave ``inside``."""
    return [i for i, (u, v, _) in enumerate(graph.arcs) if u in inside and v not in inside]


def _cut_ratio(graph: CapacityGraph, inside: frozenset[int]) -> Fraction:
    """``B+(S) / |S ∩ GPUs|`` in capacity units."""
    gpus = sum(1 for v in inside if v < graph.num_gpus)
    if gpus == 0 or gpus == graph.num_gpus:
        raise InvariantError(f"cut {sorted(inside)} must hold some but not all GPUs")
    return Fraction(sum(graph.arcs[i][2] for i in _leaving(graph, inside)), gpus)


def check_gpu_count(num_gpus: int, source: str | None = None) -> None:
    """A collective needs at least 2 GPUs: every command that solves or validates refuses fewer.
    ``source``: the topology's file, which the message then names."""
    if num_gpus < 2:
        raise InputError(
            f"a collective needs at least 2 GPUs; this topology has {num_gpus}",
            location=location_in(source) if source else None,
            hint="add GPUs to the topology (or more boxes with --set boxes=N)",
        )


def _check_solvable(graph: CapacityGraph) -> None:
    check_gpu_count(graph.num_gpus)


def _min_ingress_cut(graph: CapacityGraph) -> frozenset[int]:
    """The cut ``V - {g}`` of the GPU ``g`` with the least ingress: the Dinkelbach starting point."""
    ingress = [0] * graph.num_gpus
    for _, v, cap in graph.arcs:
        if v < graph.num_gpus:
            ingress[v] += cap
    weakest = min(range(graph.num_gpus), key=lambda g: (ingress[g], g))
    return frozenset(range(graph.num_nodes)) - {weakest}


@dataclass(frozen=True)
class _Optimum:
    x: Fraction  # x* in capacity units per GPU
    cut: frozenset[int]


def _optimum(graph: CapacityGraph, oracle: _CutOracle) -> _Optimum:
    """Exact ``x*`` by Dinkelbach iteration on the most violated cut (module docstring)."""
    capacities = np.array([cap for _, _, cap in graph.arcs], dtype=np.int64)
    cut = _min_ingress_cut(graph)
    x = _cut_ratio(graph, cut)
    while True:
        if x == 0:
            raise InfeasibleError(
                f"no link leaves {_describe(graph, cut)}, so "
                f"{_describe(graph, frozenset(range(graph.num_gpus)) - cut)} cannot receive data from it",
                hint="check that every GPU is connected to the rest of the fabric in both directions",
            )
        violated = oracle.most_violated(_scaled(capacities, x.denominator, 1), x.numerator)
        if violated is None:
            return _Optimum(x, cut)
        ratio = _cut_ratio(graph, violated)
        if ratio >= x:
            raise InvariantError(
                f"Dinkelbach step did not decrease x: {ratio} >= {x} on cut {sorted(violated)}"
            )
        x, cut = ratio, violated


def _describe(graph: CapacityGraph, vertices: frozenset[int]) -> str:
    names = sorted(graph.names[v] for v in vertices)
    return "{" + ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "") + "}"


_INT64_HEADROOM = 2**62  # max-flow sums capacities: keep every product well inside int64


def _scaled(capacities: np.ndarray, numerator: int, denominator: int) -> np.ndarray:
    """``floor(c · numerator / denominator)`` for every capacity, exactly, refusing int64 overflow."""
    if int(capacities.max(initial=0)) * numerator * max(len(capacities), 1) >= _INT64_HEADROOM:
        raise InputError(
            "the bandwidths need integers too large for an exact 64-bit max-flow "
            f"(scale factor {numerator}, largest capacity {int(capacities.max())} units)",
            hint="round the link bandwidths to fewer significant digits so their ratios are simpler",
        )
    return (capacities * numerator) // denominator


def _smallest_budget(capacities: Sequence[int], target: int) -> Fraction:
    """The smallest ``U >= 0`` with ``sum floor(U·c) >= target`` (exact).

    ``sum floor(U·c)`` is a step function that only jumps at breakpoints ``j/c``; it lies in
    ``(U·C - m, U·C]`` for ``C = sum c`` over ``m`` arcs, so the answer is a breakpoint in
    ``[target/C, (target+m)/C]``. There are at most about ``2m`` of them; binary search them.
    """
    counts = Counter(c for c in capacities if c > 0)
    total = sum(c * n for c, n in counts.items())
    if total == 0:
        raise InvariantError("a violated cut with no outgoing capacity after x* > 0")
    low = Fraction(target, total)
    high = Fraction(target + sum(counts.values()), total)
    candidates = sorted(
        {Fraction(j, c) for c in counts for j in range(math.ceil(low * c), math.floor(high * c) + 1)}
    )

    def reaches(budget: Fraction) -> bool:
        return sum(n * math.floor(budget * c) for c, n in counts.items()) >= target

    lo, hi = 0, len(candidates) - 1  # reaches(candidates[hi]) holds by the bound above
    while lo < hi:
        mid = (lo + hi) // 2
        if reaches(candidates[mid]):
            hi = mid
        else:
            lo = mid + 1
    return candidates[lo]


def _fixed_k_budget(
    graph: CapacityGraph, oracle: _CutOracle, optimum: _Optimum, k: int
) -> tuple[Fraction, frozenset[int]]:
    """The smallest per-capacity-unit budget feasible with ``k`` trees per root, and its limiting cut."""
    capacities = np.array([cap for _, _, cap in graph.arcs], dtype=np.int64)
    budget = k / optimum.x  # floors never help, so k/x* is a lower bound
    cut = optimum.cut
    while True:
        violated = oracle.most_violated(_scaled(capacities, budget.numerator, budget.denominator), k)
        if violated is None:
            return budget, cut
        gpus = sum(1 for v in violated if v < graph.num_gpus)
        needed = _smallest_budget([graph.arcs[i][2] for i in _leaving(graph, violated)], k * gpus)
        if needed <= budget:
            raise InvariantError(f"fixed-k step did not raise U: {needed} <= {budget} on {sorted(violated)}")
        budget, cut = needed, violated


def _make_bound(
    graph: CapacityGraph,
    oracle: _CutOracle,
    optimum: _Optimum,
    k: int,
    budget: Fraction,
    cut: frozenset[int],
) -> Bound:
    """Assemble a :class:`Bound` in GB/s units from capacity-unit results."""
    leaving = _leaving(graph, cut)
    cut_arcs = tuple(
        sorted(
            (graph.names[graph.arcs[i][0]], graph.names[graph.arcs[i][1]], graph.to_gbps(graph.arcs[i][2]))
            for i in leaving
        )
    )
    return Bound(
        x_star=k / budget * graph.unit,
        U=budget / graph.unit,
        k=k,
        cut_inside=tuple(sorted(graph.names[v] for v in cut)),
        cut_arcs=cut_arcs,
        num_gpus=graph.num_gpus,
        optimal_x_star=optimum.x * graph.unit,
        cut_num_gpus=sum(1 for v in cut if v < graph.num_gpus),
        max_flow_calls=oracle.calls,
        rounds=oracle.rounds,
    )


def _auto_k(graph: CapacityGraph, optimum: _Optimum) -> tuple[int, Fraction]:
    """Smallest ``k`` (and its ``U`` per capacity unit) with ``U·c_e`` integral and ``k/U = x*``.

    With ``1/x* = p/q`` in lowest terms, ``U·c_e = p·k·c_e/q`` is integral for every arc iff ``q``
    divides ``k·c_e`` for all e, i.e. iff ``q / gcd(q, c_1, ..., c_m)`` divides ``k``.
    """
    inverse = 1 / optimum.x
    divisor = math.gcd(inverse.denominator, *(cap for _, _, cap in graph.arcs))
    return inverse.denominator // divisor, Fraction(inverse.numerator, divisor)


def optimal_bound(graph: CapacityGraph, symmetries: Sequence[Permutation] = ()) -> Bound:
    """The unconstrained optimum: exact ``x*``, its bottleneck cut, and the smallest exact ``k``."""
    _check_solvable(graph)
    oracle = _CutOracle(graph, symmetries)
    optimum = _optimum(graph, oracle)
    k, budget = _auto_k(graph, optimum)
    return _make_bound(graph, oracle, optimum, k, budget, optimum.cut)


def check_k(k: int, option: str) -> None:
    """``k`` trees per root must be 1 to :data:`MAX_K`: the forest and the program grow with ``k``.

    The compile checks its ``--k`` and ``--max-k`` with it before its first step, so that a service
    refuses them before it accepts a job; the bounds check again for their other callers."""
    if not 1 <= k <= MAX_K:
        raise InputError(
            f"{option} must be a number of trees per root from 1 to {MAX_K}, got {k}",
            hint=f"e.g. {option} 1; without {option} collc picks the smallest exact k",
        )


def fixed_k_bound(graph: CapacityGraph, k: int, symmetries: Sequence[Permutation] = ()) -> Bound:
    """The best bound with exactly ``k`` equal trees per root (smallest feasible floored ``U``)."""
    check_k(k, "--k")
    _check_solvable(graph)
    oracle = _CutOracle(graph, symmetries)
    optimum = _optimum(graph, oracle)
    budget, cut = _fixed_k_budget(graph, oracle, optimum, k)
    return _make_bound(graph, oracle, optimum, k, budget, cut)


def budgeted_bound(graph: CapacityGraph, max_k: int, symmetries: Sequence[Permutation] = ()) -> Bound:
    """The best bound with at most ``max_k`` trees per root: auto k if it fits, else the best fixed k.

    Ties between fixed k go to the smallest k (fewer chunks and threadblocks).
    """
    check_k(max_k, "--max-k")
    _check_solvable(graph)
    oracle = _CutOracle(graph, symmetries)
    optimum = _optimum(graph, oracle)
    auto_k, auto_budget = _auto_k(graph, optimum)
    if auto_k <= max_k:
        return _make_bound(graph, oracle, optimum, auto_k, auto_budget, optimum.cut)
    best: tuple[int, Fraction, frozenset[int]] | None = None
    for k in range(1, max_k + 1):
        budget, cut = _fixed_k_budget(graph, oracle, optimum, k)
        if best is None or k / budget > best[0] / best[1]:
            best = (k, budget, cut)
        if k / budget == optimum.x:
            break
    assert best is not None  # max_k >= 1
    return _make_bound(graph, oracle, optimum, *best)
