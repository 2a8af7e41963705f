"""Balancing switches whose ingress and egress differ (docs/solver.md §3, unbalanced switches).

Switch removal is complete where every switch takes in as much as it sends out (the directed
splitting theorem); elsewhere a switch would have to replicate data to meet the cut bound, and the
split may leave a GPU short. :func:`balanced` turns such a fabric into one the theorem covers, in two
steps (:mod:`collc.solver.pipeline` calls it only where the split of the fabric as it is fails):

1. **Lossless caps.** Data that enters a switch from ``u`` leaves it to some ``t ≠ u`` (a turn back
   to ``u`` is a cycle that any flow can drop), so an arc ``u → w`` into a switch never carries more
   than ``w`` sends to everyone but ``u``, and an arc ``w → t`` never more than ``w`` takes in from
   everyone but ``t``. Capping the arcs there changes no max-flow between other vertices, so no cut
   bound: a NIC with a 32 GB/s PCIe link and a 25 GB/s uplink that takes in 12.5 GB/s is capped at
   25 + 12.5 each way, balanced, and its bound is the fabric's.
2. **Water-filling.** A switch still unbalanced gives up capacity on its larger side: its widest
   arcs there are lowered to one level until that side equals the other, exactly (fractions). This
   may lower the bound; the forest is then packed for the lower bound, and the fabric's own bound
   stays what the report compares with.

Steps 1 and 2 repeat until no switch is unbalanced. Water-filling one switch can unbalance its
neighbours, and around a cycle of switches joined both ways the excess can travel without end (rails
joined to a spine both ways pass it back and forth): after :data:`MAX_FILLS` water-fillings (or where
the levels would need a unit finer than capacities may have) the fabric is left unbalanced, and the
solver reports the switches (:class:`UnbalancedSwitches`). The fabrics with unbalanced NICs met so far
need at most one filling (the caps balance the NICs themselves). The result is a new
:class:`~collc.capacity.CapacityGraph` over the same vertices, in the finest unit its bandwidths need.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

from collc.capacity import CapacityGraph, rational_gcd
from collc.errors import InfeasibleError
from collc.input_limits import MAX_CAPACITY_UNITS

Arc = tuple[int, int]

#: passes of lossless caps before a water-filling pass (each pass caps every arc it can at once)
CAP_PASSES = 8
#: water-fillings before giving up (each balances one switch and may unbalance its neighbours; each
#: costs a pass over the arcs and up to CAP_PASSES more, so the whole stays a few seconds at 1,024 GPUs)
MAX_FILLS = 64


class UnbalancedSwitches(InfeasibleError):
    """Switch removal left a GPU short of the bound on a fabric with unbalanced switches: no tree
    schedule reaches the cut bound there (the solver then packs a balanced fabric instead)."""


def unbalanced_switches(graph: CapacityGraph) -> list[int]:
    """Non-GPU vertices whose total in-capacity differs from their total out-capacity."""
    return _unbalanced(graph.num_gpus, graph.num_nodes, {(u, v): Fraction(cap) for u, v, cap in graph.arcs})


def balanced(graph: CapacityGraph) -> CapacityGraph | None:
    """``graph`` with every switch's ingress equal to its egress (module docstring): lossless caps,
    then water-filling where they do not suffice; None where that does not settle."""
    bandwidth = {(u, v): Fraction(cap) for u, v, cap in graph.arcs}
    _caps(graph, bandwidth)
    filled = _water_filled(graph, bandwidth)
    return None if filled is None else _integer_graph(graph, filled)


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
