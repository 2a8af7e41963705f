"""What an allreduce reaches with trees that carry both halves at once (docs/solver.md §1.9).

The allreduce figure collc prints is reduce-scatter then allgather, ``1 / (1/RS + 1/AG)``. A file whose
trees run both halves at once loads each link with the allgather one way and the reduce-scatter (the
same trees reversed) the other way, so what counts is what the two halves put on a link together. On
a fabric where every cut is as busy one way as the other (every preset) that is the same figure; on a
tree of switches whose uplinks are narrower than what hangs below them it is not: four GPUs behind a
12.5 GB/s leaf uplink take in 6/8 of the buffer in the allgather and send 6/8 in the reduce-scatter,
but the allgather sends out only 2/8 and the reduce-scatter takes in 2/8, so run together the halves
move one buffer each way in the time the figure spends on 3/2 of one.

:func:`overlap_algbw` prices that: the best allgather a fabric carries when each link gives part of
its bandwidth to one direction and the rest to the other (the reduce-scatter then uses the rest), the
cut program of :mod:`collc.solver.cutprogram` on the links used both ways, each link's ``min`` split
between its two arcs, for at most :data:`MAX_ROUNDS` rounds; a caller that only asks whether a figure
is reached stops once it is decided either way. The figure returned is the exact bound on the split
(``N·x`` GB/s algbw, rounded down to a 1/:data:`GRAIN` of a capacity unit): a guide for the compile
search, which packs and simulates trees for both halves where it is clearly above reduce-scatter then
allgather, not a bound on every allreduce (:mod:`collc.solver.ceiling` is that).
"""

from __future__ import annotations

from fractions import Fraction

from collc.capacity import CapacityGraph
from collc.solver.cutprogram import Arc, CutProgram, Judged, grain_below, judged_graph, maximise

#: cuts added at most: each costs one bound on the current split (a few max-flows per GPU orbit)
MAX_ROUNDS = 64
#: the split is rounded down to 1/GRAIN of a capacity unit before its exact bound is taken
GRAIN = 1 << 10


def overlap_algbw(graph: CapacityGraph, enough: Fraction | None = None) -> Fraction | None:
    """The allreduce algbw (GB/s) of trees packed for both halves at once on ``graph``, as the cut
    program prices it (module docstring); None where no link carries both ways. ``enough``: stop as
    soon as the figure reaches it, or as soon as the program shows that it cannot."""
    capacity = {(u, v): cap for u, v, cap in graph.arcs}
    both = sorted(arc for arc in capacity if (arc[1], arc[0]) in capacity)
    if not both:
        return None
    program = CutProgram(
        graph, {arc: float(capacity[arc]) for arc in both}, shared=[(u, v) for u, v in both if u < v]
    )
    best = maximise(graph, program, lambda split: _judged(graph, split), MAX_ROUNDS, enough)
    return Fraction(0) if best is None else best.algbw


def _judged(graph: CapacityGraph, split: dict[Arc, float]) -> Judged[None]:
    """The exact allgather algbw (GB/s) of ``split`` rounded down to :data:`GRAIN`, and its bottleneck
    cut: a cut that nothing leaves where the split cuts some GPU off (then the figure is 0)."""
    grain = grain_below(GRAIN, max(split.values(), default=0.0))
    arcs = tuple(sorted((u, v, cap) for (u, v), share in split.items() if (cap := int(share * grain + 1e-6))))
    return judged_graph(graph, CapacityGraph(graph.names, graph.num_gpus, arcs, graph.unit / grain), None)
