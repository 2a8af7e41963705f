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
its bandwidth to one direction and the rest to the other (the reduce-scatter then uses the rest), as
a linear program:

    maximise x  subject to
      y(u→v) + y(v→u) ≤ min(c(u→v), c(v→u))     for every link used both ways
      Σ y(→w) = Σ y(w→)                         for every switch w (a switch does not replicate)
      Σ y(leaving S) ≥ x · |S ∩ GPUs|            for every cut S (ForestColl's cut condition)

The cuts are exponentially many, so the program starts from each GPU's own two cuts and adds the
bottleneck cut of the bound on its current ``y`` (:func:`collc.solver.bound.optimal_bound`, which finds
the most violated one) and its complement until that bound meets ``x``, for at most
:data:`MAX_ROUNDS` rounds; a caller that only asks whether a figure is reached stops once it is
decided either way. The figure returned is that exact bound on ``y``
(``N·x`` GB/s algbw, rounded down to a 1/:data:`GRAIN` of a capacity unit): a guide for the compile
search, which packs and simulates trees for both halves where it is clearly above reduce-scatter then
allgather, not a bound on every allreduce (:mod:`collc.solver.ceiling` is that).
"""

from __future__ import annotations

from fractions import Fraction

from ortools.linear_solver import pywraplp

from collc.capacity import CapacityGraph
from collc.input_limits import MAX_CAPACITY_UNITS
from collc.solver.bound import optimal_bound
from collc.topology.reach import reachable

#: cuts added at most: each costs one bound on the current split (a few max-flows per GPU orbit)
MAX_ROUNDS = 64
#: the split is rounded down to 1/GRAIN of a capacity unit before its exact bound is taken
GRAIN = 1 << 10
#: the bound on the split meets the program's x within this share: no cut left worth adding
TOLERANCE = 1e-4

Arc = tuple[int, int]
Cut = frozenset[int]


def overlap_algbw(graph: CapacityGraph, enough: Fraction | None = None) -> Fraction | None:
    """The allreduce algbw (GB/s) of trees packed for both halves at once on ``graph``, as the linear
    program of the module docstring prices it; None where no link carries both ways. ``enough``: stop
    as soon as the figure reaches it, or as soon as the program shows that it cannot (its ``x`` over
    the cuts added so far is an upper bound of its ``x`` over all of them)."""
    program = _Program.of(graph)
    if program is None:
        return None
    everything = frozenset(range(graph.num_nodes))
    cuts: set[Cut] = set()

    def add(cut: Cut) -> None:
        if cut not in cuts:
            cuts.add(cut)
            program.require(cut)

    for gpu in range(graph.num_gpus):
        add(frozenset({gpu}))
        add(everything - {gpu})
    best = Fraction(0)
    for _ in range(MAX_ROUNDS):
        x, split = program.solve()
        upper = x * graph.num_gpus * float(graph.unit)
        figure, cut = _bound_of(graph, split)
        best = max(best, figure)
        if enough is not None and (best >= enough or upper < float(enough) * (1 - TOLERANCE)):
            break
        if float(figure) >= upper * (1 - TOLERANCE) or cut is None or cut in cuts:
            break
        add(cut)
        add(everything - cut)  # the same cut the other way round: each half loads it one way
    return best


class _Program:
    """The linear program of the module docstring on one solver, its cuts added as they are found
    (the solver starts each solve from the last one's basis)."""

    def __init__(self, graph: CapacityGraph, capacity: dict[Arc, int], both: list[Arc]):
        self.num_gpus = graph.num_gpus
        self.solver = pywraplp.Solver.CreateSolver("GLOP")
        self.y = {arc: self.solver.NumVar(0.0, float(capacity[arc]), f"y{arc[0]}_{arc[1]}") for arc in both}
        self.x = self.solver.NumVar(0.0, self.solver.infinity(), "x")
        for u, v in both:
            if u < v:
                shared = float(min(capacity[(u, v)], capacity[(v, u)]))
                self.solver.Add(self.y[(u, v)] + self.y[(v, u)] <= shared)
        for switch in range(graph.num_gpus, graph.num_nodes):
            into = [self.y[arc] for arc in both if arc[1] == switch]
            out = [self.y[arc] for arc in both if arc[0] == switch]
            if into or out:
                self.solver.Add(self.solver.Sum(into) == self.solver.Sum(out))
        self.solver.Maximize(self.x)

    @classmethod
    def of(cls, graph: CapacityGraph) -> _Program | None:
        """The program on ``graph``'s links used both ways, or None where there are none."""
        capacity = {(u, v): cap for u, v, cap in graph.arcs}
        both = sorted(arc for arc in capacity if (arc[1], arc[0]) in capacity)
        return cls(graph, capacity, both) if both else None

    def require(self, cut: Cut) -> None:
        """Add the cut condition of ``cut``: what leaves it carries ``x`` per GPU inside."""
        leaving = [var for (u, v), var in self.y.items() if u in cut and v not in cut]
        inside = sum(1 for v in cut if v < self.num_gpus)
        self.solver.Add(self.solver.Sum(leaving) >= self.x * inside)

    def solve(self) -> tuple[float, dict[Arc, float]]:
        """The program's x (capacity units per GPU) and the split ``y`` of every arc."""
        if self.solver.Solve() != pywraplp.Solver.OPTIMAL:
            return 0.0, {}
        return self.x.solution_value(), {arc: var.solution_value() for arc, var in self.y.items()}


def _bound_of(graph: CapacityGraph, split: dict[Arc, float]) -> tuple[Fraction, Cut | None]:
    """The exact allgather algbw (GB/s) of ``split`` rounded down to :data:`GRAIN`, and its bottleneck
    cut: a cut that nothing leaves where the split cuts some GPU off (then the figure is 0)."""
    grain = GRAIN
    while grain > 1 and max(split.values(), default=0.0) * grain > MAX_CAPACITY_UNITS:
        grain //= 2
    arcs = tuple(sorted((u, v, cap) for (u, v), share in split.items() if (cap := int(share * grain + 1e-6))))
    closed = _closed_cut(graph, arcs)
    if closed is not None:
        return Fraction(0), closed
    bound = optimal_bound(CapacityGraph(graph.names, graph.num_gpus, arcs, graph.unit / grain))
    index = {name: i for i, name in enumerate(graph.names)}
    return bound.allgather_algbw, frozenset(index[name] for name in bound.cut_inside)


def _closed_cut(graph: CapacityGraph, arcs: tuple[tuple[int, int, int], ...]) -> Cut | None:
    """A set of vertices with some but not all GPUs that no arc leaves, or None where every GPU
    reaches GPU 0 and GPU 0 reaches every GPU: what GPU 0 reaches, or what cannot reach it."""
    gpus = frozenset(range(graph.num_gpus))
    forward: dict[int, list[int]] = {}
    backward: dict[int, list[int]] = {}
    for u, v, _ in arcs:
        forward.setdefault(u, []).append(v)
        backward.setdefault(v, []).append(u)
    reached = frozenset(reachable(forward, 0))
    if not gpus <= reached:
        return reached
    reaching = frozenset(reachable(backward, 0))
    if not gpus <= reaching:
        return frozenset(range(graph.num_nodes)) - reaching
    return None
