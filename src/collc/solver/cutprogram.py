"""The best bound of a fabric whose arcs may give up bandwidth, as a linear program over its cuts.

Two questions share it: which bandwidths to keep so that every switch takes in what it sends out
(:mod:`collc.solver.balance`, where lowering arcs by rules does not settle), and how to split each link
between the two halves of an allreduce run at once (:mod:`collc.solver.overlap`). Both are

    maximise x  subject to
      0 ≤ y(a) ≤ c(a)                          every arc a (and, where links are split,
                                               y(u→v) + y(v→u) ≤ min(c(u→v), c(v→u)))
      Σ y(→w) = Σ y(w→)                         every switch w (a switch does not replicate)
      Σ y(leaving S) ≥ x · |S ∩ GPUs|            every cut S (ForestColl's cut condition)

The cuts are exponentially many, so :func:`maximise` starts from each GPU's own two cuts and adds the
bottleneck cut of the exact bound on the current ``y`` (the caller's ``judge``, which rounds ``y`` to
capacity units and takes :func:`collc.solver.bound.optimal_bound` of it: it finds the most violated cut)
and that cut's complement, until that bound meets ``x``, for at most ``rounds`` rounds. One GLOP
solver holds the program and each cut is added to it, so every solve starts from the last basis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Generic, TypeVar

from ortools.linear_solver import pywraplp

from collc.capacity import CapacityGraph
from collc.input_limits import MAX_CAPACITY_UNITS
from collc.solver.bound import optimal_bound
from collc.topology.reach import reachable

#: the bound on the rounded y meets the program's x within this share: no cut left worth adding
TOLERANCE = 1e-4

Arc = tuple[int, int]
Cut = frozenset[int]
Kept = TypeVar("Kept")


@dataclass(frozen=True)
class Judged(Generic[Kept]):
    """The exact allgather algbw (GB/s) of a rounded ``y``, its bottleneck cut (None: nothing to add)
    and what the caller keeps of it (the rounded capacities)."""

    algbw: Fraction
    cut: Cut | None
    kept: Kept


class CutProgram:
    """The linear program of the module docstring on ``upper`` (capacity units per arc); ``shared``:
    the pairs of arcs ``(u, v), (v, u)`` that split one link's ``min`` between them."""

    def __init__(self, graph: CapacityGraph, upper: dict[Arc, float], shared: Iterable[Arc] = ()):
        self.num_gpus = graph.num_gpus
        self.solver = pywraplp.Solver.CreateSolver("GLOP")
        self.y = {
            arc: self.solver.NumVar(0.0, cap, f"y{arc[0]}_{arc[1]}") for arc, cap in sorted(upper.items())
        }
        self.x = self.solver.NumVar(0.0, self.solver.infinity(), "x")
        for u, v in shared:
            self.solver.Add(self.y[(u, v)] + self.y[(v, u)] <= min(upper[(u, v)], upper[(v, u)]))
        for switch in range(graph.num_gpus, graph.num_nodes):
            into = [var for arc, var in self.y.items() if arc[1] == switch]
            out = [var for arc, var in self.y.items() if arc[0] == switch]
            if into or out:
                self.solver.Add(self.solver.Sum(into) == self.solver.Sum(out))
        self.solver.Maximize(self.x)

    def require(self, cut: Cut) -> None:
        """Add the cut condition of ``cut``: what leaves it carries ``x`` per GPU inside."""
        leaving = [var for (u, v), var in self.y.items() if u in cut and v not in cut]
        inside = sum(1 for v in cut if v < self.num_gpus)
        self.solver.Add(self.solver.Sum(leaving) >= self.x * inside)

    def solve(self) -> tuple[float, dict[Arc, float]]:
        """The program's x (capacity units per GPU) and ``y`` of every arc."""
        if self.solver.Solve() != pywraplp.Solver.OPTIMAL:
            return 0.0, {}
        return self.x.solution_value(), {arc: var.solution_value() for arc, var in self.y.items()}


def maximise(
    graph: CapacityGraph,
    program: CutProgram,
    judge: Callable[[dict[Arc, float]], Judged[Kept]],
    rounds: int,
    enough: Fraction | None = None,
) -> Judged[Kept] | None:
    """The best judged ``y`` of ``program`` with cuts generated (module docstring); None where no
    round judged one. ``enough``: stop as soon as a judged figure reaches it, or as soon as the
    program shows that none can (its ``x`` over the cuts added so far bounds its ``x`` over all)."""
    everything = frozenset(range(graph.num_nodes))
    cuts: set[Cut] = set()

    def add(cut: Cut) -> None:
        if cut not in cuts:
            cuts.add(cut)
            program.require(cut)

    for gpu in range(graph.num_gpus):
        add(frozenset({gpu}))
        add(everything - {gpu})
    best: Judged[Kept] | None = None
    for _ in range(rounds):
        x, y = program.solve()
        upper = x * graph.num_gpus * float(graph.unit)
        judged = judge(y)
        if best is None or judged.algbw > best.algbw:
            best = judged
        if enough is not None and (best.algbw >= enough or upper < float(enough) * (1 - TOLERANCE)):
            break
        cut = judged.cut
        if float(judged.algbw) >= upper * (1 - TOLERANCE) or cut is None or cut in cuts:
            break
        add(cut)
        add(everything - cut)  # the complement too: either may bind (each half of an allreduce one)
    return best


def judged_graph(graph: CapacityGraph, rounded: CapacityGraph, kept: Kept) -> Judged[Kept | None]:
    """A rounded ``y`` (a capacity graph over ``graph``'s vertices) judged: its exact allgather algbw
    and bottleneck cut (:func:`collc.solver.bound.optimal_bound`), with ``kept``; where it cuts a
    GPU off, figure 0 and the closed cut (:func:`closed_cut`), nothing kept."""
    closed = closed_cut(graph, rounded.arcs)
    if closed is not None:
        return Judged(Fraction(0), closed, None)
    bound = optimal_bound(rounded)
    index = {name: i for i, name in enumerate(graph.names)}
    return Judged(bound.allgather_algbw, frozenset(index[name] for name in bound.cut_inside), kept)


def grain_below(grain: int, largest: float) -> int:
    """The finest power-of-two share of a capacity unit, at most ``grain``, that keeps an arc of
    ``largest`` units within :data:`~collc.input_limits.MAX_CAPACITY_UNITS` (a rounded ``y`` is
    bounded exactly in that unit)."""
    while grain > 1 and largest * grain > MAX_CAPACITY_UNITS:
        grain //= 2
    return grain


def closed_cut(graph: CapacityGraph, arcs: Iterable[tuple[int, int, int]]) -> Cut | None:
    """A set of vertices with some but not all GPUs that no arc of ``arcs`` leaves, or None where
    every GPU reaches GPU 0 and GPU 0 reaches every GPU: what GPU 0 reaches, or what cannot reach it
    (a rounded ``y`` that cuts a GPU off has no bound; this is the cut to add)."""
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
