"""Mapping logical tree edges back to physical paths (docs/forestcoll.md §3d).

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

    The result is sorted by root, then by edges, with identical trees of a root merged.
    """
    pools = {arc: deque([list(entry) for entry in routes]) for arc, routes in split.routes.items()}
    merged: dict[tuple[int, tuple[TreeEdge, ...]], int] = defaultdict(int)
    for tree in trees:
        if not tree.edges:  # a single-GPU "tree" (N = 1)
            merged[(tree.root, ())] += tree.multiplicity
            continue
        for units, paths in _pieces(tree, pools):
            edges = tuple(
                TreeEdge(x, y, tuple(names[v] for v in path))
                for (x, y), path in zip(tree.edges, paths, strict=True)
            )
            merged[(tree.root, edges)] += units
    return [Tree(root, units, edges) for (root, edges), units in sorted(merged.items(), key=_tree_key)]


def _tree_key(item: tuple[tuple[int, tuple[TreeEdge, ...]], int]) -> tuple:
    (root, edges), _ = item
    return (root, [(e.src, e.dst, e.path) for e in edges])
