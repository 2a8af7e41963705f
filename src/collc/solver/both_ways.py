"""One forest for both halves of an allreduce on a fabric whose two directions differ.

An allreduce there runs its reduce-scatter half on a forest solved on the reversed fabric and its
allgather half on the fabric's own forest (docs/lowering.md §3): each half then reaches its own
bound at ``k``. Where the slower direction of every link is not what limits either half (a derated
xGMI link one way in a mesh whose busiest arcs lie elsewhere), that costs schedule quality for
nothing: the fabric has lost the symmetries the packing uses (:mod:`collc.solver.symmetry`), so the
forests come out irregular, and their files pipeline worse. On 1x16 MI250 with two xGMI links at
37.5 GB/s one way, k = 8's file simulates at 154.1 GB/s at 1 GiB against 164.7 for the trees of the
symmetric fabric (the same bound, 168.4).

So the trees are also packed on the fabric *with each link at its faster direction*
(:func:`faster_way`), which keeps the symmetries of the fabric that was derated, and then priced on
the real fabric in both directions (:func:`priced_both_ways`). Where neither half loses anything
against its own bound at ``k``, those trees serve both halves; else the two forests are solved as
before. Packing on the faster way is only worth trying where its bound at ``k`` equals both halves'
(:func:`costs_nothing`): a forest packed there cannot do better than that on the real fabric.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from collc.solver.bound import Bound
from collc.solver.forest import Forest
from collc.solver.invariants import arc_loads
from collc.topology.model import Link, Topology


def faster_way(topology: Topology) -> Topology | None:
    """``topology`` with every pair of nodes joined both ways at the faster direction's bandwidth (one
    full-duplex link per pair, parallel links added up), or None where some arc has no reverse (a
    forest packed there could use an arc the fabric does not have). The nodes and ranks are the
    same, so trees packed on it name the real fabric's nodes; latencies are left out (the solver
    does not read them)."""
    bandwidths = topology.arc_bandwidths()
    if any((dst, src) not in bandwidths for src, dst in bandwidths):
        return None
    classes: dict[frozenset[str], str | None] = {}
    for link in topology.links:
        classes.setdefault(frozenset((link.src, link.dst)), link.link_class)
    links = tuple(
        Link(src, dst, max(bandwidth, bandwidths[(dst, src)]), link_class=classes[frozenset((src, dst))])
        for (src, dst), bandwidth in sorted(bandwidths.items())
        if src < dst
    )
    return replace(topology, links=links)


def costs_nothing(faster: Bound, allreduce_algbw: Fraction) -> bool:
    """Whether the fabric's slower directions cost an allreduce nothing at ``faster.k``:
    ``allreduce_algbw``, its bound with a forest per half (``1/(1/AG + 1/RS)``, each half's bound at
    ``k``), equals half the faster way's allgather bound. Each half's bound is at most the faster
    way's (its arcs are at least as fast), so they are equal only where both halves reach it."""
    return faster.allgather_algbw / 2 == allreduce_algbw


def priced_both_ways(forest: Forest, topology: Topology) -> tuple[Forest, Forest]:
    """``forest`` (packed on :func:`faster_way`) priced on ``topology`` itself: its trees for the
    allgather half, and the same trees read backwards (``reversed``) for the reduce-scatter half,
    each with the ``U`` of its busiest real arc (unit trees crossing it per GB/s,
    :func:`collc.solver.invariants.arc_loads`), both marked ``both_ways``. An allreduce on the pair
    is priced like any forest with a reduce forest of its own
    (:func:`collc.lowering.lower.coll_algbw`)."""
    bandwidths = topology.arc_bandwidths()

    def busiest(reverse: bool) -> Fraction:
        loads = arc_loads(forest, reverse=reverse)
        return max(Fraction(load) / bandwidths[arc] for arc, load in loads.items())

    return (
        replace(forest, U=busiest(False), both_ways=True),
        replace(forest, reversed=True, U=busiest(True), both_ways=True),
    )
