"""Trees packed on the fabric with each link at its faster direction, for a fabric whose two
directions differ.

Where a link is slowed one way (a derated xGMI link, a NIC that takes in less than it sends) but is
not what limits the collective, the bound stays and the schedule's quality does not: the derated
fabric has lost the symmetries the packing uses (:mod:`collc.solver.symmetry`), so its forests come
out irregular, and their files pipeline worse. On 1x16 MI250 with two xGMI links at 37.5 GB/s one
way, the allreduce file at k = 8 simulates at 154.1 GB/s at 1 GiB against 164.7 for the trees of the
symmetric fabric (the same bound, 168.4).

So the trees are also packed on the fabric *with each link at its faster direction*
(:func:`faster_way`), which keeps the symmetries of the fabric before it was derated, and then
priced on the real fabric (:func:`priced_on`). They are worth packing only where the faster way's
bound at ``k`` is the collective's own (a forest packed there cannot do better on the real fabric),
and worth keeping only where their price on the real fabric is that bound. An allreduce runs both
halves on them (:func:`priced_both_ways`): the same trees read backwards reduce, and both halves
keep their bound only where the slower directions limit neither.
"""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

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


def priced_on(forest: Forest, topology: Topology) -> Forest:
    """``forest`` (packed on :func:`faster_way`) with the ``U`` of its busiest arc of ``topology``
    itself (unit trees crossing it per GB/s, :func:`collc.solver.invariants.arc_loads`; a
    ``reversed`` forest's hops run backwards), marked ``faster_way``."""
    bandwidths = topology.arc_bandwidths()
    loads = arc_loads(forest, reverse=forest.reversed)
    busiest = max(Fraction(load) / bandwidths[arc] for arc, load in loads.items())
    return replace(forest, U=busiest, faster_way=True)


def priced_both_ways(forest: Forest, topology: Topology) -> tuple[Forest, Forest]:
    """An allreduce's trees packed on :func:`faster_way`, priced on ``topology`` for both halves: the
    allgather half on the trees, the reduce-scatter half on the same trees read backwards
    (``reversed``), each with the ``U`` of its own busiest real arc. The pair is priced like any
    allgather forest with a reduce forest of its own (:func:`collc.lowering.lower.coll_algbw`)."""
    return priced_on(forest, topology), priced_on(replace(forest, reversed=True), topology)
