"""Forests for the runtime's paths: spanning trees whose every edge crosses the links the runtime
itself gives that GPU pair.

The exact solver (:mod:`collc.solver.pipeline`) routes each tree edge through switches and NICs as
the bound needs. A runtime does not take those routes: NCCL connects two GPUs over one path of its
own, and between boxes through the sender's and the receiver's local NICs
(:meth:`collc.predict.network.Network.nic_for`). Where a box's NICs each serve only some of its GPUs
(a dual-socket PCIe server with a NIC per socket), the exact forest's edges into a box can land on
the GPUs of one NIC and be routed through the other one and the CPU link; on the runtime's paths
that NIC then carries twice its share (two boxes of 8 PCIe GPUs, 2 NICs each: 27.6 GB/s allgather
at most, against the forest's 34.1).

This module packs trees on fixed paths instead. Each GPU pair ``(u, v)`` has the path the runtime
uses, and a tree edge ``u -> v`` loads every arc of it. The most throughput per root is a linear
program over spanning arborescences (one constraint per root: its trees carry ``x``; one per arc:
the trees crossing it fit its bandwidth), solved by column generation: the dual prices of the arcs
give every GPU pair a cost (the sum over its path), and the cheapest arborescence of a root
(Chu-Liu/Edmonds) enters the program while it costs less than that root's dual price. The optimum
``x`` is then what any store-and-forward allgather on those paths can reach. Then ``k`` trees per
root are chosen among the generated ones (an integer program, CP-SAT, on a deterministic budget)
so that the busiest arc carries least; the forest's ``U`` is exact from those trees.

For reduce-scatter the data of a tree edge ``u -> v`` flows ``v -> u`` on the runtime's path from
``v`` to ``u``; for an allreduce both halves run on the same trees, so an edge loads both paths.

A pair may have several routes: where a fabric's network has planes (rails), the runtime takes a
plane by channel and the lowering gives each tree edge a channel of its path's plane, so a pair
between boxes has one route per plane, and a tree edge is a pair on one of its routes (:data:`Route`).
The pricing takes each pair's cheapest route; the ``r``-th route of ``u -> v`` and of ``v -> u``
cross the same plane, so an edge's reduce half runs on the plane of its broadcast half. A route on
which the runtime relays through another GPU (rails without a spine, GPUs in a line) is no tree
edge's: it stays in its place, marked None, so that the indices keep naming the planes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from fractions import Fraction
from math import lcm
from typing import NamedTuple

import numpy as np
from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from collc.errors import InvariantError
from collc.solver.forest import Forest, Tree, TreeEdge
from collc.stepping import drain

Arc = tuple[str, str]
Pair = tuple[int, int]
Path = tuple[str, ...]
#: a tree edge ``(u, v, r)``: from GPU ``u`` to GPU ``v`` on the ``r``-th of the pair's routes
Route = tuple[int, int, int]
#: every ordered GPU pair's routes, the runtime's paths of the data from ``u`` to ``v``; None where
#: the runtime relays through another GPU, which no tree edge does (it has no key in :func:`edge_arcs`)
Routes = Mapping[Pair, tuple[Path | None, ...]]
#: the physical arcs each tree edge loads (:func:`edge_arcs`)
Loads = Mapping[Route, tuple[Arc, ...]]

#: column generation stops after this many rounds (a round adds up to one tree per root)
MAX_ROUNDS = 200
#: the integer program's budget in CP-SAT's deterministic seconds (the same answer on any machine)
CHOICE_BUDGET = 2.0
#: the descent after the integer program stops after this many moves (each strictly improves it;
#: a few dozen are made on 64 GPUs, each a matrix pass of tens of milliseconds at most)
MAX_MOVES = 1_000
#: scale of the integer program's objective (the busiest arc's load over its bandwidth)
_SCALE = 1000
_TOLERANCE = 1e-9


class Column(NamedTuple):
    """A spanning arborescence of the program: its root and its edges, each on one of its pair's
    routes."""

    root: int
    edges: tuple[Route, ...]


class RoutedPacking(NamedTuple):
    """The linear program's optimum: ``x`` GB/s per root on the runtime's paths (allgather algbw
    ``N·x``), the trees it generated and the GB/s each carries there."""

    x: float
    columns: tuple[Column, ...]
    weights: tuple[float, ...]


def single_routes(paths: Mapping[Pair, Path]) -> dict[Pair, tuple[Path, ...]]:
    """``paths`` as routes: one per pair (a fabric without network planes)."""
    return {pair: (path,) for pair, path in paths.items()}


def edge_arcs(coll: str, routes: Routes) -> dict[Route, tuple[Arc, ...]]:
    """The physical arcs a tree edge ``u -> v`` on route ``r`` loads for ``coll``: the pair's ``r``-th
    path ``u -> v`` (allgather), that of ``v -> u`` (reduce-scatter), or both (allreduce); no key
    where either is None."""

    def arcs(path: Path) -> tuple[Arc, ...]:
        return tuple(itertools.pairwise(path))

    out: dict[Route, tuple[Arc, ...]] = {}
    for (u, v), paths in routes.items():
        back = routes[(v, u)]
        if len(back) != len(paths):
            raise InvariantError(f"GPUs {u} and {v} have {len(paths)} routes one way, {len(back)} the other")
        for r, (path, reverse) in enumerate(zip(paths, back, strict=True)):
            if path is None or reverse is None:
                continue
            forward, backward = arcs(path), arcs(reverse)
            out[(u, v, r)] = {"allgather": forward, "reducescatter": backward}.get(coll, forward + backward)
    return out


def cheapest_arborescence(cost: np.ndarray, root: int) -> tuple[Pair, ...]:
    """The spanning out-tree of ``root`` with the least total ``cost`` (``cost[u, v]``: the edge
    ``u -> v``; every pair is an edge), by Chu-Liu/Edmonds: each GPU takes its cheapest entering
    edge; a cycle among those is contracted into one node, the edges entering it priced less the
    cycle edge they would replace, and the smaller graph solved the same way; then each cycle is
    opened where the chosen edge enters it. On dense matrices: O(N^2) per contraction, at most N of
    them. Ties go to the smaller index, so the tree is deterministic."""
    n = cost.shape[0]
    weights = np.array(cost, dtype=float)
    np.fill_diagonal(weights, np.inf)
    weights[:, root] = np.inf
    origin = np.arange(n * n).reshape(n, n)  # the original edge u * n + v behind each entry
    where = np.arange(n)  # each GPU's node at the current level
    opened: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (cycle, its edges, where) per level
    top = root
    while True:
        parent = np.argmin(weights, axis=0)
        cycle = _cycle(parent, top)
        if cycle is None:
            break
        inside = np.zeros(len(weights), dtype=bool)
        inside[cycle] = True
        keep = np.flatnonzero(~inside)
        opened.append((cycle, origin[parent[cycle], cycle], where))
        weights, origin = _contracted(weights, origin, keep, cycle, parent)
        renamed = np.full(len(inside), len(keep))
        renamed[keep] = np.arange(len(keep))
        where, top = renamed[where], int(renamed[top])
    chosen = [int(origin[parent[v], v]) for v in range(len(weights)) if v != top]
    for cycle, edges, level in reversed(opened):
        (entered,) = [int(level[edge % n]) for edge in chosen if level[edge % n] in cycle]
        chosen += [int(edge) for v, edge in zip(cycle, edges, strict=True) if v != entered]
    return tuple(sorted((edge // n, edge % n) for edge in chosen))


def _cycle(parent: np.ndarray, root: int) -> np.ndarray | None:
    """A cycle of the parent pointers (every node but ``root`` points at its cheapest entering
    edge's tail), as its nodes in ascending order, or None."""
    state = np.zeros(len(parent), dtype=np.int64)  # 0 unseen, else the start of the walk that saw it
    for start in range(len(parent)):
        v = start
        while v != root and state[v] == 0:
            state[v] = start + 1
            v = int(parent[v])
        if v != root and state[v] == start + 1:
            members, w = [v], int(parent[v])
            while w != v:
                members.append(w)
                w = int(parent[w])
            return np.array(sorted(members))
    return None


def _contracted(
    weights: np.ndarray, origin: np.ndarray, keep: np.ndarray, cycle: np.ndarray, parent: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The cost and origin matrices with ``cycle`` merged into one last node: an edge into it costs
    what it costs less the cycle edge into the same node, the cheapest per tail; out of it the
    cheapest per head."""
    size = len(keep)
    merged = np.full((size + 1, size + 1), np.inf)
    sources = np.zeros((size + 1, size + 1), dtype=np.int64)
    rows = np.arange(size)
    merged[:size, :size] = weights[np.ix_(keep, keep)]
    sources[:size, :size] = origin[np.ix_(keep, keep)]
    entering = weights[np.ix_(keep, cycle)] - weights[parent[cycle], cycle][None, :]
    best_in = np.argmin(entering, axis=1)
    merged[:size, size] = entering[rows, best_in]
    sources[:size, size] = origin[np.ix_(keep, cycle)][rows, best_in]
    leaving = weights[np.ix_(cycle, keep)]
    best_out = np.argmin(leaving, axis=0)
    merged[size, :size] = leaving[best_out, rows]
    sources[size, :size] = origin[np.ix_(cycle, keep)][best_out, rows]
    return merged, sources


class _Master:
    """The linear program over the columns so far (GLOP), grown a column at a time."""

    def __init__(self, num_gpus: int, loads: Loads, bandwidth: Mapping[Arc, Fraction]) -> None:
        self.loads = loads
        self.solver = pywraplp.Solver.CreateSolver("GLOP")
        self.x = self.solver.NumVar(0, self.solver.infinity(), "x")
        self.roots = [self.solver.Constraint(0, self.solver.infinity()) for _ in range(num_gpus)]
        for constraint in self.roots:
            constraint.SetCoefficient(self.x, -1)
        self.arcs = sorted({arc for path in loads.values() for arc in path})
        infinity = self.solver.infinity()
        self.fits = {arc: self.solver.Constraint(-infinity, float(bandwidth[arc])) for arc in self.arcs}
        self.solver.Maximize(self.x)
        self.columns: list[Column] = []
        self.variables: list[pywraplp.Variable] = []

    def add(self, column: Column) -> None:
        var = self.solver.NumVar(0, self.solver.infinity(), f"tree{len(self.columns)}")
        self.roots[column.root].SetCoefficient(var, 1)
        crossed: dict[Arc, int] = {}
        for edge in column.edges:
            for arc in self.loads[edge]:
                crossed[arc] = crossed.get(arc, 0) + 1
        for arc, count in crossed.items():
            self.fits[arc].SetCoefficient(var, count)
        self.columns.append(column)
        self.variables.append(var)

    def solve(self) -> bool:
        """Whether the program solved to optimality (only then are its values and prices read)."""
        return self.solver.Solve() == pywraplp.Solver.OPTIMAL


def routed_packing(
    num_gpus: int,
    loads: Loads,
    bandwidth: Mapping[Arc, Fraction],
    ceiling: float | None = None,
) -> RoutedPacking:
    """The linear program of the module docstring, solved by column generation (GLOP): the most
    GB/s per root that spanning trees on the routes ``loads`` gives each tree edge can carry (each pair
    on its cheapest route at the current prices). It starts from every root's star (first routes) and
    stops early where it reaches ``ceiling`` (GB/s per root that no
    schedule exceeds, e.g. the exact bound's ``x*``: two dual-socket PCIe boxes reach it). GLOP
    re-solves from its last basis as columns enter; where that fails (it can on 32 GPUs) the program
    is built afresh, and where that fails too the generation stops at the last optimum."""
    return drain(routed_packing_steps(num_gpus, loads, bandwidth, ceiling))


def routed_packing_steps(
    num_gpus: int,
    loads: Loads,
    bandwidth: Mapping[Arc, Fraction],
    ceiling: float | None = None,
) -> Generator[None, None, RoutedPacking]:
    """:func:`routed_packing` in steps: it yields after each round of the generation (on 64 GPUs the
    program takes about 30 s in all, a round well under a second), so that a compile service can stop
    between them."""
    master = _Master(num_gpus, loads, bandwidth)
    keys, incidence = _incidence(loads, master.arcs)
    for column in _first_columns(num_gpus, loads, keys, incidence):
        master.add(column)
    if not master.solve():
        raise InvariantError("the routed packing's first linear program has no optimum")
    best = RoutedPacking(master.x.solution_value(), tuple(master.columns), _values(master))
    known = set(master.columns)
    for _ in range(MAX_ROUNDS):
        if ceiling is not None and best.x >= ceiling * (1 - _TOLERANCE):
            break
        yield
        price = np.array([abs(master.fits[arc].dual_value()) for arc in master.arcs])
        cost, route = _cheapest_routes(num_gpus, keys, incidence @ price)
        entering = []
        for root in range(num_gpus):
            pairs = cheapest_arborescence(cost, root)
            tree = Column(root, tuple((u, v, int(route[u, v])) for u, v in pairs))
            paid = sum(cost[pair] for pair in pairs)
            worth = paid < abs(master.roots[root].dual_value()) - _TOLERANCE
            if worth and tree not in known:
                entering.append(tree)
        if not entering:
            break
        for column in entering:
            master.add(column)
            known.add(column)
        if not master.solve():
            fresh = _Master(num_gpus, loads, bandwidth)
            for column in master.columns:
                fresh.add(column)
            if not fresh.solve():
                break
            master = fresh
        best = RoutedPacking(master.x.solution_value(), tuple(master.columns), _values(master))
    return best


def _first_columns(num_gpus: int, loads: Loads, keys: np.ndarray, incidence: np.ndarray) -> list[Column]:
    """Every root's first tree: its star on the first routes, or where the root does not reach every
    GPU directly (rails without a spine), its tree of fewest links."""
    hops, route = _cheapest_routes(num_gpus, keys, incidence.sum(axis=1))
    columns = []
    for root in range(num_gpus):
        star = tuple((root, v, 0) for v in range(num_gpus) if v != root)
        if all(edge in loads for edge in star):
            columns.append(Column(root, star))
            continue
        pairs = cheapest_arborescence(hops, root)
        if any(np.isinf(hops[pair]) for pair in pairs):
            raise InvariantError(f"GPU {root} reaches not every GPU on the runtime's routes")
        columns.append(Column(root, tuple((u, v, int(route[u, v])) for u, v in pairs)))
    return columns


def _incidence(loads: Loads, arcs: Sequence[Arc]) -> tuple[np.ndarray, np.ndarray]:
    """The tree edges (rows ``(u, v, r)``) and how often each one's paths cross each arc: an edge's
    price is its row times the arcs' prices."""
    keys = sorted(loads)
    index = {arc: i for i, arc in enumerate(arcs)}
    incidence = np.zeros((len(keys), len(arcs)))
    for row, key in enumerate(keys):
        for arc in loads[key]:
            incidence[row, index[arc]] += 1
    return np.array(keys, dtype=np.int64).reshape(-1, 3), incidence


def _cheapest_routes(num_gpus: int, keys: np.ndarray, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per GPU pair, the price of its cheapest route and that route's index (the first of equals);
    ``price`` is per row of ``keys`` (:func:`_incidence`). A pair without routes costs infinity."""
    routes = int(keys[:, 2].max(initial=0)) + 1
    costs = np.full((routes, num_gpus, num_gpus), np.inf)
    costs[keys[:, 2], keys[:, 0], keys[:, 1]] = price
    route = np.argmin(costs, axis=0)
    return np.take_along_axis(costs, route[None], axis=0)[0], route


def _values(master: _Master) -> tuple[float, ...]:
    return tuple(var.solution_value() for var in master.variables)


def choose_trees(
    packing: RoutedPacking,
    k: int,
    loads: Loads,
    bandwidth: Mapping[Arc, Fraction],
    seed: Sequence[int] | None = None,
) -> list[int]:
    """How many of its ``k`` trees each root takes of each generated tree, so that the busiest arc
    carries least relative to its bandwidth. Two stages, both deterministic:

    1. an integer program (CP-SAT, one worker, a deterministic budget), hinted with the linear optimum
       rounded root by root, twice: over the trees that carry weight at that optimum or in ``seed``,
       and over every generated tree. The smaller program gets further within the budget, the larger
       has more trees to choose from, and neither wins everywhere: on four dual-socket PCIe servers
       (allgather, k = 2) the smaller ends at 31.0 GB/s after the descent and the larger at 31.5; on
       two (allreduce, k = 2) 16.8 against 16.5;
    2. a descent over every generated tree (:func:`_descended`) from each of the programs' answers,
       the rounding and ``seed``; the best end is chosen.

    The programs alone stop short on 32 GPUs: reduce-scatter at k = 4 on those four servers, 30.3
    GB/s from the program and 32.0 after the descent, against the linear optimum's 33.0. And the best
    start need not descend furthest: on two servers of 4 PCIe GPUs, allreduce at k = 1, the program's
    answer descends to 16.0 GB/s and the rounding to 17.1. Never worse than the rounding or ``seed``.
    """
    return drain(choose_trees_steps(packing, k, loads, bandwidth, seed))


def choose_trees_steps(
    packing: RoutedPacking,
    k: int,
    loads: Loads,
    bandwidth: Mapping[Arc, Fraction],
    seed: Sequence[int] | None = None,
) -> Generator[None, None, list[int]]:
    """:func:`choose_trees` in steps: it yields after each integer program (one CP-SAT budget) and each
    descent."""
    crossing = _crossings(packing.columns, loads)
    rounded = _rounded(packing, k)
    starts = [rounded, *([list(seed)] if seed is not None else [])]
    modelled = [
        i
        for i, weight in enumerate(packing.weights)
        if weight > _TOLERANCE or any(start[i] for start in starts)
    ]
    for trees in (modelled, range(len(packing.columns))):
        if (found := _programmed(packing.columns, trees, k, crossing, bandwidth, rounded)) is not None:
            starts.append(found)
        yield
    moves = _Moves.of(packing.columns, crossing, bandwidth)
    descents = []
    for start in starts:
        descents.append(_descended(start, moves, crossing, bandwidth))
        yield
    return min(descents, key=lambda choice: _busiest(choice, crossing, bandwidth))


def _crossings(columns: Sequence[Column], loads: Loads) -> dict[Arc, dict[int, int]]:
    """How often each column's edges cross each arc (arc -> column index -> crossings)."""
    crossing: dict[Arc, dict[int, int]] = {}
    for i, column in enumerate(columns):
        for edge in column.edges:
            for arc in loads[edge]:
                users = crossing.setdefault(arc, {})
                users[i] = users.get(i, 0) + 1
    return crossing


def _programmed(
    columns: Sequence[Column],
    modelled: Iterable[int],
    k: int,
    crossing: Mapping[Arc, Mapping[int, int]],
    bandwidth: Mapping[Arc, Fraction],
    hint: Sequence[int],
) -> list[int] | None:
    """Stage 1 of :func:`choose_trees`: the counts of the ``modelled`` columns (all others 0) that
    CP-SAT finds within :data:`CHOICE_BUDGET`, or None where it finds none."""
    model = cp_model.CpModel()
    counts = {i: model.NewIntVar(0, k, f"m{i}") for i in modelled}
    for root in sorted({columns[i].root for i in counts}):
        model.Add(sum(count for i, count in counts.items() if columns[i].root == root) == k)
    used = {arc: {i: c for i, c in users.items() if i in counts} for arc, users in crossing.items()}
    used = {arc: users for arc, users in used.items() if users}
    scale = lcm(*(bandwidth[arc].denominator for arc in used))
    widest = max(bandwidth[arc] * scale for arc in used)
    # every count is at most k and every arc's width at least 1 (scaled): no objective exceeds this
    most = max(sum(users.values()) for users in used.values())
    busiest = model.NewIntVar(0, _SCALE * int(widest) * k * most, "busiest")
    for arc, users in sorted(used.items()):
        width = bandwidth[arc] * scale  # an integer
        model.Add(_SCALE * int(widest) * sum(c * counts[i] for i, c in users.items()) <= busiest * int(width))
    model.Minimize(busiest)
    for i, count in counts.items():
        model.AddHint(count, hint[i])
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = CHOICE_BUDGET
    if solver.Solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    found = [0] * len(columns)
    for i, count in counts.items():
        found[i] = solver.Value(count)
    return found


class _Moves(NamedTuple):
    """What every move of a descent reads, built once per choice: how often each generated tree
    crosses each arc (tree x arc), the arcs' bandwidths, and each root's trees."""

    matrix: np.ndarray
    width: np.ndarray
    roots: np.ndarray
    siblings: dict[int, np.ndarray]

    @classmethod
    def of(
        cls,
        columns: Sequence[Column],
        crossing: Mapping[Arc, Mapping[int, int]],
        bandwidth: Mapping[Arc, Fraction],
    ) -> _Moves:
        arcs = sorted(crossing)
        matrix = np.zeros((len(columns), len(arcs)), dtype=np.int64)
        for a, arc in enumerate(arcs):
            for i, c in crossing[arc].items():
                matrix[i, a] = c
        width = np.array([float(bandwidth[arc]) for arc in arcs])
        roots = np.array([column.root for column in columns])
        siblings = {int(root): np.flatnonzero(roots == root) for root in np.unique(roots)}
        return cls(matrix, width, roots, siblings)


def _descended(
    counts: Sequence[int],
    moves: _Moves,
    crossing: Mapping[Arc, Mapping[int, int]],
    bandwidth: Mapping[Arc, Fraction],
) -> list[int]:
    """Stage 2 of :func:`choose_trees`: steepest descent from ``counts``. A move gives one of a root's
    trees to another generated tree of the same root. Moves are ranked by the arcs' loads over their
    bandwidths sorted from the busiest down, compared as words (leximax): the busiest arc first, then
    how many are that busy, then the next level. So a move that only relieves the second busiest arc
    still counts, and the descent walks across the busiest arc's plateaus (two dual-socket PCIe
    servers, allgather at k = 4: 32.5 GB/s ranked by the busiest arc and how many share its load,
    33.0 leximax). The best move is taken (ties: lowest column indices); each strictly lowers that
    word, so the descent ends, and :data:`MAX_MOVES` bounds it. Loads are compared as floats, each a
    correctly rounded quotient and none summed, so the same on any machine; the result is kept only
    where its exact busiest arc is no worse than the start's."""
    matrix, width, roots, siblings = moves
    current = np.array(counts, dtype=np.int64)
    load = current @ matrix
    for _ in range(MAX_MOVES):
        ratio = load / width
        word = -np.sort(-ratio)
        hot = ratio == word[0]
        move: tuple[np.ndarray, int, int] | None = None
        for i in np.flatnonzero(current):
            if not matrix[i, hot].any():
                continue  # giving this tree away cannot relieve a busiest arc
            others = siblings[int(roots[i])]
            others = others[others != i]
            if not others.size:
                continue  # the root has no other tree
            words = -np.sort(-(((load - matrix[i])[None, :] + matrix[others]) / width), axis=1)
            least = int(np.lexsort(words.T[::-1])[0])  # stable: the lowest index among equals
            if _lower(words[least], word) and (move is None or _lower(words[least], move[0])):
                move = (words[least], int(i), int(others[least]))
        if move is None:
            break
        _, i, j = move
        current[i] -= 1
        current[j] += 1
        load += matrix[j] - matrix[i]
    descended = current.tolist()
    better = _busiest(descended, crossing, bandwidth) <= _busiest(counts, crossing, bandwidth)
    return descended if better else list(counts)


def _lower(word: np.ndarray, other: np.ndarray) -> bool:
    """Whether ``word`` comes strictly before ``other`` (two sorted load vectors of one length)."""
    differ = np.flatnonzero(word != other)
    return bool(differ.size) and bool(word[differ[0]] < other[differ[0]])


def _busiest(
    counts: Sequence[int], crossing: Mapping[Arc, Mapping[int, int]], bandwidth: Mapping[Arc, Fraction]
) -> Fraction:
    """The largest load over bandwidth of any arc, for ``counts`` of the columns (exact)."""
    return max(
        Fraction(sum(c * counts[i] for i, c in users.items())) / bandwidth[arc]
        for arc, users in crossing.items()
    )


def _rounded(packing: RoutedPacking, k: int) -> list[int]:
    """The linear optimum's trees rounded to ``k`` per root: each root's largest weights first, by
    largest remainder (a root whose trees carry no weight takes its first tree ``k`` times)."""
    counts = [0] * len(packing.columns)
    for root in sorted({column.root for column in packing.columns}):
        mine = [i for i, column in enumerate(packing.columns) if column.root == root]
        weights = [max(packing.weights[i], 0.0) for i in mine]
        total = sum(weights)
        if total <= 0:
            counts[mine[0]] = k
            continue
        shares = [k * weight / total for weight in weights]
        floors = [int(share) for share in shares]
        order = sorted(range(len(mine)), key=lambda j: (floors[j] - shares[j], j))
        for j in order[: k - sum(floors)]:
            floors[j] += 1
        for i, count in zip(mine, floors, strict=True):
            counts[i] = count
    return counts


#: the route an exact forest's tree edge takes on the runtime: the index among its pair's routes
#: (None: the runtime relays it through another GPU, where no tree edge of the program may go)
RouteOf = Callable[[TreeEdge], int | None]


def first_route(edge: TreeEdge) -> int:
    """:data:`RouteOf` where every pair has one route."""
    return 0


def routed_forest(
    num_gpus: int,
    k: int,
    coll: str,
    routes: Routes,
    bandwidth: Mapping[Arc, Fraction],
    seed: Forest | None = None,
    packing: RoutedPacking | None = None,
    route_of: RouteOf = first_route,
) -> Forest:
    """``k`` trees per root on the runtime's ``routes`` (every ordered GPU pair's node paths) that load
    the busiest arc least (module docstring), as a forest. ``seed`` (a forest of ``k`` for the same
    collective, e.g. the exact solver's, its edges on the routes ``route_of`` gives them) joins the
    trees to choose from, so the result loads the runtime's paths no more than it does. A
    reduce-scatter forest is marked ``reversed``: its edge ``u -> v`` carries data ``v -> u`` over the
    runtime's path from ``v``, written backwards (:class:`collc.solver.forest.Forest`). An allreduce
    forest, whose edges load both paths, records the busiest arc of both halves together
    (``allreduce_U``)."""
    return drain(routed_forest_steps(num_gpus, k, coll, routes, bandwidth, seed, packing, route_of))


def routed_forest_steps(
    num_gpus: int,
    k: int,
    coll: str,
    routes: Routes,
    bandwidth: Mapping[Arc, Fraction],
    seed: Forest | None = None,
    packing: RoutedPacking | None = None,
    route_of: RouteOf = first_route,
) -> Generator[None, None, Forest]:
    """:func:`routed_forest` in steps: those of the generation where no ``packing`` is given
    (:func:`routed_packing_steps`), then those of the choice (:func:`choose_trees_steps`)."""
    loads = edge_arcs(coll, routes)
    if packing is None:
        packing = yield from routed_packing_steps(num_gpus, loads, bandwidth)
    seeds = [_column(tree, route_of) for tree in seed.trees] if seed else []
    generated = set(packing.columns)
    extra = [column for column in dict.fromkeys(seeds) if column not in generated]
    packing = packing._replace(
        columns=packing.columns + tuple(extra), weights=packing.weights + (0.0,) * len(extra)
    )
    seed_counts = None
    if seed is not None:
        index = {column: i for i, column in enumerate(packing.columns)}
        seed_counts = [0] * len(packing.columns)
        for tree, column in zip(seed.trees, seeds, strict=True):
            seed_counts[index[column]] += tree.multiplicity
    counts = yield from choose_trees_steps(packing, k, loads, bandwidth, seed_counts)
    reverse = coll == "reducescatter"
    trees = tuple(
        Tree(column.root, count, _bfs_edges(column, routes, reverse))
        for column, count in zip(packing.columns, counts, strict=True)
        if count
    )
    own = edge_arcs("reducescatter" if reverse else "allgather", routes)
    U = _busiest(counts, _crossings(packing.columns, own), bandwidth)
    both = _busiest(counts, _crossings(packing.columns, loads), bandwidth) if coll == "allreduce" else None
    ordered = tuple(sorted(trees, key=lambda tree: tree.root))
    return Forest(num_gpus, k, U, ordered, reversed=reverse, routed=True, allreduce_U=both)


def _column(tree: Tree, route_of: RouteOf) -> Column:
    """``tree`` as a column of the program, its edges on the routes ``route_of`` gives them."""
    edges = []
    for edge in tree.edges:
        route = route_of(edge)
        if route is None:
            raise InvariantError(f"tree edge {edge.src} -> {edge.dst} is on no route a tree edge may take")
        edges.append((edge.src, edge.dst, route))
    return Column(tree.root, tuple(sorted(edges)))


def on_route_algbw(
    forest: Forest,
    coll: str,
    routes: Routes,
    bandwidth: Mapping[Arc, Fraction],
    route_of: RouteOf = first_route,
) -> Fraction:
    """What ``forest`` carries for ``coll`` (GB/s algbw) when every edge runs on the runtime's
    ``routes`` (the one ``route_of`` gives it): ``N·k/U`` on them. For an allreduce both halves load
    the arcs, so it is the allreduce's own algbw."""
    columns = [_column(tree, route_of) for tree in forest.trees]
    counts = [tree.multiplicity for tree in forest.trees]
    busiest = _busiest(counts, _crossings(columns, edge_arcs(coll, routes)), bandwidth)
    return forest.num_gpus * forest.k / busiest


def _bfs_edges(column: Column, routes: Routes, reverse: bool) -> tuple[TreeEdge, ...]:
    """The tree's edges in breadth-first order from its root, each on its route's path (for a
    reversed forest, the path of the data's direction written from ``src``)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for u, v, r in column.edges:
        children.setdefault(u, []).append((v, r))
    order, frontier = [], [column.root]
    while frontier:
        following = []
        for u in frontier:
            for v, r in sorted(children.get(u, ())):
                path = routes[(v, u)][r] if reverse else routes[(u, v)][r]
                assert path is not None  # edge_arcs gives no tree edge a relaying route
                order.append(TreeEdge(u, v, path[::-1] if reverse else path))
                following.append(v)
        frontier = following
    return tuple(order)
