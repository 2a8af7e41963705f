"""Invariants of a solved forest, checked after every solve.

A forest is a correct optimal schedule when:

1. every GPU roots trees whose multiplicities sum to ``k``, and no other vertex roots a tree;
2. every tree is an arborescence rooted at its root spanning all GPUs (each other GPU entered by
   exactly one edge, every edge leaving an already reached GPU, edges in breadth-first-compatible order);
3. every edge's path is a real path of physical arcs from ``src`` to ``dst`` whose inner nodes are not
   GPUs (switches and NICs only forward);
4. on every physical arc the load -- the multiplicities of all tree edges whose path crosses it,
   counting repeats -- is at most ``U·bandwidth`` (so every unit tree gets ``1/(N·k)`` of the data
   through in time ``U/k`` per byte of a shard, docs/solver.md);
5. ``(U, k)`` are the bound's, so the forest's allgather algbw ``N·k/U`` equals the bound's.

The check is linear in the forest's size (edges times path length). Any violation is a bug in collc:
it raises :class:`InvariantError` listing the first few violations.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from fractions import Fraction

from collc.errors import InvariantError
from collc.solver.bound import Bound
from collc.solver.forest import Forest, Tree
from collc.topology.model import Topology

_SHOWN = 8  # violations listed in the error message


def _tree_violations(tree: Tree, topology: Topology, arcs: dict[tuple[str, str], Fraction]) -> list[str]:
    """Problems with one tree's shape and paths (invariants 2 and 3)."""
    problems = []
    ranks = topology.ranks
    n = len(ranks)
    where = f"tree of root {tree.root}"
    if tree.multiplicity < 1:
        problems.append(f"{where}: multiplicity {tree.multiplicity} < 1")
    reached = {tree.root}
    for edge in tree.edges:
        if not (0 <= edge.src < n and 0 <= edge.dst < n):
            problems.append(f"{where}: edge {edge.src}->{edge.dst} names a rank outside 0..{n - 1}")
            continue
        if edge.src not in reached:
            problems.append(f"{where}: edge {edge.src}->{edge.dst} leaves a GPU the tree has not reached")
        if edge.dst in reached:
            problems.append(f"{where}: GPU {edge.dst} is entered twice (or is the root)")
        reached.add(edge.dst)
        path = edge.path
        if len(path) < 2 or path[0] != ranks[edge.src] or path[-1] != ranks[edge.dst]:
            problems.append(
                f"{where}: path {list(path)} does not run from {ranks[edge.src]} to {ranks[edge.dst]}"
            )
        for inner in path[1:-1]:
            if topology.node(inner).kind == "gpu":
                problems.append(f"{where}: path {list(path)} passes through GPU {inner}")
        for hop in itertools.pairwise(path):
            if hop not in arcs:
                problems.append(f"{where}: path {list(path)} uses {hop[0]}->{hop[1]}, not a physical arc")
    if len(reached) != n:
        missing = sorted(set(range(n)) - reached)
        problems.append(f"{where}: does not reach GPUs {missing[:_SHOWN]}")
    return problems


def arc_loads(
    forest: Forest, *, reverse: bool = False, weights: Sequence[int] | None = None
) -> Counter[tuple[str, str]]:
    """Unit trees crossing each physical arc (repeats counted). ``reverse``: paths are reversed-graph
    paths (see :func:`collc.solver.pipeline.solve`), so hop ``a -> b`` is the physical arc ``b -> a``.
    ``weights``: what each tree counts instead of its multiplicity (its chunks of a loop,
    :func:`collc.lowering.layout.layout_algbw`)."""
    loads: Counter[tuple[str, str]] = Counter()
    counts = [tree.multiplicity for tree in forest.trees] if weights is None else weights
    for tree, count in zip(forest.trees, counts, strict=True):
        for edge in tree.edges:
            for a, b in zip(edge.path, edge.path[1:], strict=False):
                loads[(b, a) if reverse else (a, b)] += count
    return loads


def check_forest(forest: Forest, topology: Topology, bound: Bound | None, *, reverse: bool = False) -> None:
    """Raise :class:`InvariantError` unless ``forest`` satisfies every invariant of the module docstring.

    ``reverse=True`` checks a forest solved on the reversed fabric (paths are reversed-graph paths).
    ``bound`` None: a forest that is not packed for a bound (:mod:`collc.solver.routed`), checked for
    invariants 1 to 4 only.
    """
    problems: list[str] = []
    if bound is not None:
        if (forest.U, forest.k, forest.num_gpus) != (bound.U, bound.k, bound.num_gpus):
            problems.append(
                f"forest (U={forest.U}, k={forest.k}, N={forest.num_gpus}) does not match the bound "
                f"(U={bound.U}, k={bound.k}, N={bound.num_gpus})"
            )
        if forest.allgather_algbw != bound.allgather_algbw:
            problems.append(f"forest algbw {forest.allgather_algbw} != bound algbw {bound.allgather_algbw}")
    bandwidth = topology.arc_bandwidths()
    arcs = {(b, a): bw for (a, b), bw in bandwidth.items()} if reverse else bandwidth
    per_root: dict[int, int] = defaultdict(int)
    for tree in forest.trees:
        per_root[tree.root] += tree.multiplicity
        problems += _tree_violations(tree, topology, arcs)
    for root in range(topology.num_gpus):
        if per_root.get(root, 0) != forest.k:
            problems.append(f"root {root}: multiplicities sum to {per_root.get(root, 0)}, not k = {forest.k}")
    for root in sorted(set(per_root) - set(range(topology.num_gpus))):
        problems.append(f"a tree is rooted at {root}, which is not a GPU rank")
    for (a, b), load in sorted(arc_loads(forest, reverse=reverse).items()):
        budget = forest.U * bandwidth.get((a, b), Fraction(0))
        if load > budget:
            problems.append(f"arc {a}->{b}: load {load} unit trees > U·bandwidth = {budget}")
    if problems:
        shown = "\n  ".join(problems[:_SHOWN])
        more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise InvariantError(f"the forest violates {len(problems)} invariant(s):\n  {shown}{more}")
