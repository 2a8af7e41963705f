"""Balancing switches whose ingress and egress differ (docs/solver.md §3, unbalanced switches).

Switch removal is complete where every switch takes in as much as it sends out (the directed
splitting theorem); elsewhere a switch would have to replicate data to meet the cut bound, and the
split may leave a GPU short. :func:`balanced_fabrics` turns such a fabric into ones the theorem
covers (:mod:`collc.solver.pipeline` calls it only where the split of the fabric as it is fails):

1. **Lossless caps.** Data that enters a switch from ``u`` leaves it to some ``t ≠ u`` (a turn back
   to ``u`` is a cycle that any flow can drop), so an arc ``u → w`` into a switch never carries more
   than ``w`` sends to everyone but ``u``, and an arc ``w → t`` never more than ``w`` takes in from
   everyone but ``t``. Capping the arcs there changes no max-flow between other vertices, so no cut
   bound: a NIC with a 32 GB/s PCIe link and a 25 GB/s uplink that takes in 12.5 GB/s is capped at
   25 + 12.5 each way, balanced, and its bound is the fabric's.
2. **Water-filling.** A switch still unbalanced gives up capacity on its larger side: its widest
   arcs there are lowered to one level until that side equals the other, exactly (fractions), and
   the caps run again, until no switch is unbalanced. It keeps every arc it can, but lowers arcs
   evenly where a cut needs one more than another, and one switch filled can unbalance its
   neighbours: around a cycle of switches joined both ways the excess can travel without end (rails
   joined to a spine pass it back and forth), so it gives up after :data:`MAX_FILLS` fillings.
3. **The cut program** (:mod:`collc.solver.cutprogram`): the bandwidths ``0 ≤ y ≤ c`` with every
   switch balanced whose cut bound is highest, a linear program over the fabric's cuts, generated
   for at most :data:`MAX_ROUNDS` rounds. Its ``y`` is read exactly as small fractions where they
   balance (:func:`_exact`), else rounded to 1/:data:`GRAIN` of a capacity unit by an integral
   circulation (:func:`_rounded`). On random unbalanced fabrics it is never below water-filling
   and above it on one in ten, by 15 % on average (docs/solver.md §3).

The fabrics offered are water-filling's, and the program's where water-filling does not settle or
the program's bound is higher; the solver packs the one whose bound at the k asked for is highest.
The bound is packed at a fixed k as tree capacities ``floor(U·b)``, which can floor unevenly on a
balanced fabric: :func:`balanced_trees` evens them out. Each result is a new
:class:`~collc.capacity.CapacityGraph` over the same vertices, in the finest unit its bandwidths need.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from fractions import Fraction

from ortools.graph.python import min_cost_flow

from collc.capacity import CapacityGraph, rational_gcd
from collc.errors import InfeasibleError, InvariantError
from collc.input_limits import MAX_CAPACITY_UNITS
from collc.solver.bound import Bound, integer_capacities, optimal_bound
from collc.solver.cutprogram import CutProgram, Judged, grain_below, judged_graph, maximise
from collc.solver.maxflow import FlowNetwork

Arc = tuple[int, int]

#: passes of lossless caps before a water-filling pass (each pass caps every arc it can at once)
CAP_PASSES = 8
#: water-fillings before giving up (each balances one switch and may unbalance its neighbours; each
#: costs a pass over the arcs and up to CAP_PASSES more, so the whole stays a few seconds at 1,024 GPUs)
MAX_FILLS = 64
#: halvings of the last raise of U that evened-out tree capacities needed (balanced_trees)
REFINEMENTS = 6
#: cuts the balancing program adds at most (each costs one exact bound of a rounded fabric)
MAX_ROUNDS = 64
#: the program's bandwidths are rounded to 1/GRAIN of a capacity unit (fewer where the largest arc
#: would pass MAX_CAPACITY_UNITS)
GRAIN = 1 << 10
#: how far the solver's floats may be off an integer in that unit and still round either way
SLACK = 1e-6


class UnbalancedSwitches(InfeasibleError):
    """Switch removal left a GPU short of the bound on a fabric with unbalanced switches: no tree
    schedule reaches the cut bound there (the solver then packs a balanced fabric instead)."""


def unbalanced_switches(graph: CapacityGraph) -> list[int]:
    """Non-GPU vertices whose total in-capacity differs from their total out-capacity."""
    return _unbalanced(graph.num_gpus, graph.num_nodes, {(u, v): Fraction(cap) for u, v, cap in graph.arcs})


@functools.lru_cache(maxsize=4)  # compile solves each k apart: 10 s a program at 512 GPUs
def balanced_fabrics(graph: CapacityGraph) -> tuple[CapacityGraph, ...]:
    """``graph`` with every switch's ingress equal to its egress (module docstring), best bound first:
    lossless caps, then water-filling, and the cut program's fabric where water-filling does not
    settle or the program's bound is higher (both then: at a fixed k the other may floor more
    evenly); none where neither gives a balanced fabric that connects the GPUs."""
    bandwidth = {(u, v): Fraction(cap) for u, v, cap in graph.arcs}
    _caps(graph, bandwidth)
    filled = _water_filled(graph, dict(bandwidth))
    water = () if filled is None else (_integer_graph(graph, filled),)
    programmed = _programmed(graph, bandwidth)
    if programmed is None or programmed.kept is None:
        return water
    program = _integer_graph(graph, programmed.kept)
    if water and programmed.algbw <= optimal_bound(water[0]).allgather_algbw:
        return water
    return (program, *water)


def balanced_trees(graph: CapacityGraph, bound: Bound) -> tuple[Bound, list[int]]:
    """``bound`` and its tree capacities (per arc of ``graph.arcs``) with every switch balanced.

    A balanced fabric's tree capacities ``floor(U·b)`` floor unevenly at a fixed ``k``, and the split
    needs them even: each switch's excess is taken off its larger side, the least units in all (a
    minimum-cost flow of the excesses with every GPU merged into one vertex, where a unit sent along an
    arc takes one tree off it, so excess may travel through other switches as water-filling's cannot).
    Where that leaves some GPU short of ``k`` trees from every root (the bound's condition, one
    max-flow per GPU), ``U`` is raised by 1/1024, 1/512, ... 1/4 of itself until it does not, then
    halved back towards the last raise that fell short :data:`REFINEMENTS` times, keeping the lowest
    that carries (the bound drops by as much); :class:`UnbalancedSwitches` where none does."""

    def carried(step: Fraction) -> tuple[Bound, list[int]] | None:
        budget = bound.U * (1 + step)
        trial = replace(bound, U=budget, x_star=bound.k / budget)
        trees = _evened(graph, integer_capacities(graph, trial))
        return (trial, trees) if _carries(graph, trees, bound.k) else None

    short = Fraction(0)
    for step in (0, *(Fraction(1, 1 << shift) for shift in range(10, 1, -1))):
        if (found := carried(step)) is None:
            short = step
            continue
        for _ in range(REFINEMENTS if step else 0):
            middle = (short + step) / 2
            if (closer := carried(middle)) is None:
                short = middle
            else:
                step, found = middle, closer
        return found
    raise UnbalancedSwitches(
        f"no tree schedule reaches the balanced fabric's bound at k = {bound.k}: evening its switches' "
        "tree capacities leaves a GPU short",
        hint="try another --k",
    )


def _evened(graph: CapacityGraph, capacities: Sequence[int]) -> list[int]:
    """``capacities`` with each switch's excess taken off (:func:`balanced_trees`)."""
    supply = _excess(graph, ((u, v, cap) for (u, v, _), cap in zip(graph.arcs, capacities, strict=True)))
    if not any(supply):
        return list(capacities)
    flow = min_cost_flow.SimpleMinCostFlow()
    lowered = [
        i
        for i, (u, v, _) in enumerate(graph.arcs)
        if capacities[i] and _vertex(graph, u) != _vertex(graph, v)
    ]
    for i in lowered:
        u, v, _ = graph.arcs[i]
        flow.add_arc_with_capacity_and_unit_cost(_vertex(graph, u), _vertex(graph, v), capacities[i], 1)
    for node, units in enumerate(supply):
        flow.set_node_supply(node, units)
    if flow.solve() != flow.OPTIMAL:  # taking every arc off would do, so a flow exists
        raise InvariantError("a switch's excess cannot be taken off its own arcs")
    trees = list(capacities)
    for index, i in enumerate(lowered):
        trees[i] -= flow.flow(index)
    return trees


def _carries(graph: CapacityGraph, trees: Sequence[int], k: int) -> bool:
    """Whether ``trees`` carry ``k`` trees from every root into every GPU: a flow of ``N·k`` from a
    source with ``k`` into each GPU (the bound's condition)."""
    network = FlowNetwork(
        graph.num_nodes + 1, ((u, v, cap) for (u, v, _), cap in zip(graph.arcs, trees, strict=True))
    )
    source, demand = graph.num_nodes, graph.num_gpus * k
    for gpu in range(graph.num_gpus):
        network.add_arc(source, gpu, k)
    return all(network.max_flow_up_to(source, gpu, demand) >= demand for gpu in range(graph.num_gpus))


def _vertex(graph: CapacityGraph, v: int) -> int:
    """``v``'s vertex with every GPU merged into vertex 0 (GPUs need no balance): switch ``w`` is
    ``w - num_gpus + 1``."""
    return 0 if v < graph.num_gpus else v - graph.num_gpus + 1


def _excess(graph: CapacityGraph, loads: Iterable[tuple[int, int, int]]) -> list[int]:
    """What each merged vertex (:func:`_vertex`) sends out beyond what it takes in, with ``units`` on
    every arc ``(u, v, units)`` of ``loads``."""
    excess = [0] * (graph.num_nodes - graph.num_gpus + 1)
    for u, v, units in loads:
        excess[_vertex(graph, u)] += units
        excess[_vertex(graph, v)] -= units
    return excess


def _programmed(
    graph: CapacityGraph, bandwidth: dict[Arc, Fraction]
) -> Judged[dict[Arc, Fraction] | None] | None:
    """The balanced bandwidths below ``bandwidth`` whose bound is the best the cut program finds
    (module docstring, step 3), with that bound; nothing kept where none connects the GPUs."""
    grain = grain_below(GRAIN, float(max(bandwidth.values())))
    upper = {arc: float(cap) for arc, cap in bandwidth.items() if cap > 0}
    program = CutProgram(graph, upper)
    return maximise(graph, program, lambda y: _judged(graph, bandwidth, y, grain), MAX_ROUNDS)


def _judged(
    graph: CapacityGraph, bandwidth: dict[Arc, Fraction], y: dict[Arc, float], grain: int
) -> Judged[dict[Arc, Fraction] | None]:
    """The program's ``y`` as a balanced fabric (:func:`_exact`, else :func:`_rounded`), its exact
    bound and bottleneck cut (a cut that nothing leaves where it cuts a GPU off: figure 0, nothing
    kept)."""
    shares = _exact(graph, bandwidth, y) or _rounded(graph, bandwidth, y, grain)
    if shares is None:
        return Judged(Fraction(0), None, None)
    return judged_graph(graph, _integer_graph(graph, shares), shares)


def _exact(
    graph: CapacityGraph, bandwidth: dict[Arc, Fraction], y: dict[Arc, float]
) -> dict[Arc, Fraction] | None:
    """``y`` read as fractions of a capacity unit with denominators up to :data:`GRAIN`, where they are
    within :data:`SLACK` of it, within the bandwidths and balanced: the program's optimum is a vertex
    of small integer coefficients, usually such fractions, and read so it loses no bound to rounding
    (4 boxes of 2 GPUs on two rails, reduce-scatter: 100 GB/s, where rounding gives 99.93). None
    otherwise. Arcs between GPUs keep their whole bandwidth."""
    shares: dict[Arc, Fraction] = {}
    for arc, cap in bandwidth.items():
        if arc[0] < graph.num_gpus and arc[1] < graph.num_gpus:
            shares[arc] = cap
            continue
        value = y.get(arc, 0.0)
        share = Fraction(value).limit_denominator(GRAIN)
        if abs(share - value) > SLACK or not 0 <= share <= cap:
            return None
        shares[arc] = share
    if _unbalanced(graph.num_gpus, graph.num_nodes, shares):
        return None
    widths = [share for share in shares.values() if share > 0]
    return shares if max(widths) / rational_gcd(widths) <= MAX_CAPACITY_UNITS else None


def _rounded(
    graph: CapacityGraph, bandwidth: dict[Arc, Fraction], y: dict[Arc, float], grain: int
) -> dict[Arc, Fraction] | None:
    """``y`` in 1/``grain`` of a capacity unit, each arc rounded to a multiple next to it (within its
    bandwidth) so that every switch stays balanced; None where the solver's ``y`` is too far off.

    With every GPU merged into one vertex (GPUs need no balance) a balanced ``y`` is a circulation,
    and between the floors and ceilings of a fractional circulation lies an integral one (Hoffman's
    circulation theorem): it is found as a flow of the roundings up that the floors' imbalances
    supply. Arcs between GPUs keep their whole bandwidth."""
    gpus = graph.num_gpus
    low: dict[Arc, int] = {}
    high: dict[Arc, int] = {}
    for arc, cap in sorted(bandwidth.items()):
        top = math.floor(cap * grain)
        share = y.get(arc, 0.0) * grain
        if arc[0] < gpus and arc[1] < gpus:
            low[arc] = high[arc] = top
            continue
        low[arc] = max(0, min(top, math.floor(share - SLACK)))
        high[arc] = max(low[arc], min(top, math.ceil(share + SLACK)))
    arcs = sorted(low)
    supply = [-units for units in _excess(graph, ((u, v, low[(u, v)]) for u, v in arcs))]
    flow = min_cost_flow.SimpleMinCostFlow()
    loose = [(u, v) for u, v in arcs if high[(u, v)] > low[(u, v)] and _vertex(graph, u) != _vertex(graph, v)]
    for u, v in loose:
        flow.add_arc_with_capacity_and_unit_cost(
            _vertex(graph, u), _vertex(graph, v), high[(u, v)] - low[(u, v)], 0
        )
    for node, units in enumerate(supply):
        flow.set_node_supply(node, units)
    if flow.solve() != flow.OPTIMAL:
        return None
    rounded = dict(low)
    for index, arc in enumerate(loose):
        rounded[arc] += flow.flow(index)
    return {arc: Fraction(units, grain) for arc, units in rounded.items()}


def _caps(graph: CapacityGraph, bandwidth: dict[Arc, Fraction]) -> None:
    """Lossless caps (module docstring, step 1), pass after pass while they change something."""
    for _ in range(CAP_PASSES):
        if not _cap(graph.num_gpus, graph.num_nodes, bandwidth):
            return


def _water_filled(graph: CapacityGraph, bandwidth: dict[Arc, Fraction]) -> dict[Arc, Fraction] | None:
    """``bandwidth`` balanced by water-filling and caps (module docstring, step 2); None where
    :data:`MAX_FILLS` fillings leave a switch unbalanced, or where the levels need a
    unit finer than :data:`~collc.input_limits.MAX_CAPACITY_UNITS` capacities allow."""
    for _ in range(MAX_FILLS):
        unbalanced = _unbalanced(graph.num_gpus, graph.num_nodes, bandwidth)
        if not unbalanced:
            return bandwidth
        _water_fill(unbalanced[0], bandwidth)
        widths = [cap for cap in bandwidth.values() if cap > 0]
        if max(widths) / rational_gcd(widths) > MAX_CAPACITY_UNITS:
            return None
        _caps(graph, bandwidth)
    return None


def _unbalanced(num_gpus: int, num_nodes: int, bandwidth: dict[Arc, Fraction]) -> list[int]:
    ingress, egress = _totals(bandwidth, num_nodes)
    return [w for w in range(num_gpus, num_nodes) if ingress[w] != egress[w]]


def _totals(bandwidth: dict[Arc, Fraction], num_nodes: int) -> tuple[list[Fraction], list[Fraction]]:
    ingress: list[Fraction] = [Fraction(0)] * num_nodes
    egress: list[Fraction] = [Fraction(0)] * num_nodes
    for (u, v), cap in bandwidth.items():
        egress[u] += cap
        ingress[v] += cap
    return ingress, egress


def _cap(num_gpus: int, num_nodes: int, bandwidth: dict[Arc, Fraction]) -> bool:
    """One pass of lossless caps (module docstring, step 1) from the totals before the pass; whether
    any arc changed."""
    ingress, egress = _totals(bandwidth, num_nodes)
    changed = False
    for (u, v), cap in sorted(bandwidth.items()):
        limits = []
        if v >= num_gpus:  # into a switch: what it sends to everyone but u
            limits.append(egress[v] - bandwidth.get((v, u), Fraction(0)))
        if u >= num_gpus:  # out of a switch: what it takes in from everyone but v
            limits.append(ingress[u] - bandwidth.get((v, u), Fraction(0)))
        limit = min(limits, default=cap)
        if limit < cap:
            bandwidth[(u, v)] = limit
            changed = True
    return changed


def _water_fill(switch: int, bandwidth: dict[Arc, Fraction]) -> None:
    """Lower the widest arcs on ``switch``'s larger side to one level, until that side carries what
    the smaller one does (module docstring, step 2)."""
    into = sorted(arc for arc in bandwidth if arc[1] == switch)
    out = sorted(arc for arc in bandwidth if arc[0] == switch)
    taken, sent = (sum((bandwidth[arc] for arc in arcs), Fraction(0)) for arcs in (into, out))
    larger, target = (into, sent) if taken > sent else (out, taken)
    level = _level([bandwidth[arc] for arc in larger], target)
    for arc in larger:
        bandwidth[arc] = min(bandwidth[arc], level)


def _level(widths: Iterable[Fraction], target: Fraction) -> Fraction:
    """The level ``L`` with ``sum(min(w, L)) == target`` (``0 <= target < sum(widths)``)."""
    below = Fraction(0)
    ordered = sorted(widths)
    for index, width in enumerate(ordered):
        above = len(ordered) - index  # arcs at least as wide as this one
        if below + width * above >= target:
            return (target - below) / above
        below += width
    raise AssertionError("the target is below the total")


def _integer_graph(graph: CapacityGraph, bandwidth: dict[Arc, Fraction]) -> CapacityGraph:
    """The balanced bandwidths (in ``graph``'s units) as a capacity graph in the finest unit they
    need; arcs lowered to nothing are dropped."""
    kept = {arc: cap for arc, cap in bandwidth.items() if cap > 0}
    scale = rational_gcd(list(kept.values()))
    arcs = tuple(sorted((u, v, int(cap / scale)) for (u, v), cap in kept.items()))
    return CapacityGraph(graph.names, graph.num_gpus, arcs, graph.unit * scale)
