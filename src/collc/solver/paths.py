"""Mapping logical tree edges back to physical paths (docs/solver.md).

Switch removal records, for every unit of every logical arc ``(u, t)``, the physical vertex path it
was split from (:attr:`SwitchFreeGraph.routes`, ``(path, units)`` pairs). A logical tree of
multiplicity ``C`` takes ``C`` units of each of its arcs, first come first served, so different trees
(and different copies of one tree) get disjoint physical capacity and the per-arc load stays within
``U·b_e``. When the ``C`` units of one logical arc come from several routes, the tree splits into
several physical trees: the copies ``0..C-1`` are cut at every route boundary of every edge, and each
piece becomes one tree (same logical shape, one route per edge) whose multiplicity is the piece's
length. Identical physical trees of one root are then merged.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Sequence

from collc.solver.forest import Tree, TreeEdge
from collc.solver.packing import LogicalTree
from collc.solver.splitting import Arc, Path, SwitchFreeGraph, take_units


def _pieces(tree: LogicalTree, pools: dict[Arc, deque[list]]) -> list[tuple[int, tuple[Path, ...]]]:
    """Cut the copies of ``tree`` at every route boundary: ``(units, one path per edge)`` pieces."""
    per_edge = [take_units(pools[edge], tree.multiplicity) for edge in tree.edges]
    boundaries = sorted({0} | {end for routes in per_edge for end in _ends(routes)})
    pieces = []
    cursors = [0] * len(per_edge)
    consumed = [0] * len(per_edge)  # units of the current route of each edge already passed
    for start, end in itertools.pairwise(boundaries):
        paths = []
        for i, routes in enumerate(per_edge):
            while consumed[i] + routes[cursors[i]][1] <= start:
                consumed[i] += routes[cursors[i]][1]
                cursors[i] += 1
            paths.append(routes[cursors[i]][0])
        pieces.append((end - start, tuple(paths)))
    return pieces


def _ends(routes: list[tuple[Path, int]]) -> list[int]:
    ends, total = [], 0
    for _, units in routes:
        total += units
        ends.append(total)
    return ends


def physical_trees(trees: Sequence[LogicalTree], split: SwitchFreeGraph, names: Sequence[str]) -> list[Tree]:
    """Turn logical trees into :class:`Tree` objects whose edges carry physical node-name paths.

    The result is sorted by root, then by edges, with identical trees of a root merged; each tree's
    edges are in breadth-first order from its root (children in the order they were added).
    """
    pools = {arc: deque([list(entry) for entry in routes]) for arc, routes in split.routes.items()}
    merged: dict[tuple[int, tuple[TreeEdge, ...]], int] = defaultdict(int)
    for tree in trees:
        if not tree.edges:  # a single-GPU "tree" (N = 1)
            merged[(tree.root, ())] += tree.multiplicity
            continue
        order = _breadth_first(tree)
        for units, paths in _pieces(tree, pools):
            edges = tuple(TreeEdge(*tree.edges[i], tuple(names[v] for v in paths[i])) for i in order)
            merged[(tree.root, edges)] += units
    return [Tree(root, units, edges) for (root, edges), units in sorted(merged.items(), key=_tree_key)]


def _breadth_first(tree: LogicalTree) -> list[int]:
    """Indices of ``tree.edges`` in breadth-first order from the root."""
    children: dict[int, list[int]] = defaultdict(list)
    for i, (x, _) in enumerate(tree.edges):
        children[x].append(i)
    order: list[int] = []
    frontier = [tree.root]
    for vertex in frontier:
        for i in children[vertex]:
            order.append(i)
            frontier.append(tree.edges[i][1])
    return order


def _tree_key(item: tuple[tuple[int, tuple[TreeEdge, ...]], int]) -> tuple:
    (root, edges), _ = item
    return (root, [(e.src, e.dst, e.path) for e in edges])
