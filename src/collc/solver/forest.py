"""The solver's result: a forest of capacitated spanning out-trees with physical paths.

Every GPU ``r`` roots trees whose multiplicities sum to ``k``; a tree of multiplicity ``C`` stands for
``C`` identical unit trees, each carrying ``1/(N*k)`` of the collective's data from its root to every
other GPU. Each logical tree edge ``src -> dst`` (GPU ranks) travels over ``path``: the physical node
names from ``src`` to ``dst`` through switches and NICs.

``U`` is the congestion budget in trees per GB/s: on every physical arc ``e`` the number of unit trees
crossing it (counting repeats) is at most ``U * bandwidth(e)``. The forest's allgather algbw is then
``N * k / U`` GB/s, equal to the optimal bound when ``(U, k)`` is optimal.

``reversed`` marks a forest solved on the reversed fabric (reduce-scatter on asymmetric fabrics, see
:func:`collc.solver.pipeline.solve`): its trees are out-trees of the reversed graph, so each hop
``path[i] -> path[i+1]`` is the physical arc ``path[i+1] -> path[i]``.

JSON form (:func:`forest_to_json` / :func:`forest_from_json`, stable keys)::

    {"U": "p/q", "k": int, "num_gpus": int, "reversed": bool, "allgather_algbw": float,
     "packing": {"blocks": bool, "direct": bool, "breadth_first": bool, "routed": bool,
                 "allreduce_U": "p/q" | null, "balanced": bool, "faster_way": bool},
     "trees": [{"root": rank, "multiplicity": int,
                "edges": [{"src": rank, "dst": rank, "path": [node names src..dst]}, ...]}, ...]}

``allgather_algbw`` (GB/s) is informative only; ``num_gpus``, ``reversed`` and ``packing`` (how the
trees were packed: the flags of :class:`Forest`, so that a forest read back lowers and is priced as
the one written) are optional on input.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from collc.errors import InputError, location_in


@dataclass(frozen=True)
class TreeEdge:
    """One logical edge of a tree: GPU rank ``src`` sends to GPU rank ``dst`` over ``path``."""

    src: int
    dst: int
    path: tuple[str, ...]


@dataclass(frozen=True)
class Tree:
    """A spanning out-tree rooted at GPU rank ``root``; ``edges`` are in BFS order from the root."""

    root: int
    multiplicity: int
    edges: tuple[TreeEdge, ...]

    def height(self, *, physical: bool = False) -> int:
        """Longest root-to-leaf path, in GPU hops (tree edges) or in physical hops (links crossed)."""
        depth = {self.root: 0}
        for edge in self.edges:  # BFS order: a parent's depth is known before its children's
            depth[edge.dst] = depth[edge.src] + (len(edge.path) - 1 if physical else 1)
        return max(depth.values())


@dataclass(frozen=True)
class Forest:
    """All trees of a schedule, with the ``(U, k)`` they were packed for."""

    num_gpus: int
    k: int
    U: Fraction
    trees: tuple[Tree, ...]
    reversed: bool = False
    #: laid out box by box (collc.solver.blocks): the lowering merges the steps of consecutive trees
    blocks: bool = False
    #: box blocks whose every root sends to its own role in the other boxes (collc.solver.blocks)
    direct: bool = False
    #: packed symmetrically, breadth first among arcs wide enough for a whole tree
    #: (collc.solver.packing.frontier_width)
    breadth_first: bool = False
    #: packed on the runtime's own paths between GPUs, not for the bound (collc.solver.routed)
    routed: bool = False
    #: for an allreduce on a routed forest, whose halves run on the same trees at once: the unit trees
    #: crossing the busiest arc per GB/s where every edge loads the runtime's paths both ways (None:
    #: not packed so; the allreduce is then priced as reduce-scatter followed by allgather)
    allreduce_U: Fraction | None = None
    #: packed on the fabric with its unbalanced switches balanced (collc.solver.balance), for a bound
    #: below the fabric's own where that cost capacity
    balanced: bool = False
    #: packed on the fabric with each link at its faster direction and priced on the real one
    #: (collc.solver.faster_way); an allreduce runs both halves on such trees
    faster_way: bool = False

    def same_trees(self, other: Forest) -> bool:
        """Whether both forests hold the same trees (root, multiplicity and edges on the same paths),
        whatever their order and the order of their edges: the same transfers to lower."""

        def trees(forest: Forest) -> Counter[tuple[int, int, frozenset[TreeEdge]]]:
            return Counter((tree.root, tree.multiplicity, frozenset(tree.edges)) for tree in forest.trees)

        return trees(self) == trees(other)

    @property
    def layout(self) -> str:
        """``box blocks`` or ``direct box blocks`` for a box-block forest, ``breadth-first trees`` for
        a breadth-first packing, ``trees on the runtime's paths`` for a routed forest, ``trees on the
        faster directions`` for trees packed with each link at its faster direction, else ``trees``
        (``collc compile --json``'s ``layout``)."""
        if self.routed:
            return "trees on the runtime's paths"
        if self.faster_way:
            return "trees on the faster directions"
        if not self.blocks:
            return "breadth-first trees" if self.breadth_first else "trees"
        return "direct box blocks" if self.direct else "box blocks"

    @property
    def allgather_algbw(self) -> Fraction:
        """Allgather/reduce-scatter algbw in GB/s (nccl-tests units): ``N * k / U``."""
        return self.num_gpus * self.k / self.U


def renumbered(forest: Forest, rank_of: tuple[int, ...]) -> Forest:
    """``forest`` with GPU rank ``g`` renamed ``rank_of[g]`` (roots and tree edges; paths name nodes
    and stay): the same trees on the same links, for a rank order that lists the GPUs otherwise."""
    trees = tuple(
        Tree(
            root=rank_of[tree.root],
            multiplicity=tree.multiplicity,
            edges=tuple(TreeEdge(rank_of[edge.src], rank_of[edge.dst], edge.path) for edge in tree.edges),
        )
        for tree in forest.trees
    )
    return replace(forest, trees=trees)


def forest_to_json(forest: Forest) -> dict[str, Any]:
    """The documented JSON object of ``forest`` (module docstring); trees keep their order."""
    return {
        "U": _fraction_text(forest.U),
        "k": forest.k,
        "num_gpus": forest.num_gpus,
        "reversed": forest.reversed,
        "allgather_algbw": float(forest.allgather_algbw),
        "packing": {
            "blocks": forest.blocks,
            "direct": forest.direct,
            "breadth_first": forest.breadth_first,
            "routed": forest.routed,
            "allreduce_U": None if forest.allreduce_U is None else _fraction_text(forest.allreduce_U),
            "balanced": forest.balanced,
            "faster_way": forest.faster_way,
        },
        "trees": [
            {
                "root": tree.root,
                "multiplicity": tree.multiplicity,
                "edges": [{"src": e.src, "dst": e.dst, "path": list(e.path)} for e in tree.edges],
            }
            for tree in forest.trees
        ],
    }


def forest_from_json(data: Any, source: str | None = None) -> Forest:
    """Parse the JSON object written by :func:`forest_to_json`; malformed input is an :class:`InputError`
    located at ``source`` (the file it came from, if any)."""
    try:
        U = Fraction(data["U"])
        k = int(data["k"])
        trees = tuple(
            Tree(
                int(tree["root"]),
                int(tree["multiplicity"]),
                tuple(
                    TreeEdge(int(e["src"]), int(e["dst"]), tuple(str(name) for name in e["path"]))
                    for e in tree["edges"]
                ),
            )
            for tree in data["trees"]
        )
        num_gpus = int(data.get("num_gpus", len({tree.root for tree in trees})))
        packing = data.get("packing") or {}
        allreduce_U = packing.get("allreduce_U")
        return Forest(
            num_gpus,
            k,
            U,
            trees,
            _flag(data.get("reversed", False)),
            blocks=_flag(packing.get("blocks", False)),
            direct=_flag(packing.get("direct", False)),
            breadth_first=_flag(packing.get("breadth_first", False)),
            routed=_flag(packing.get("routed", False)),
            allreduce_U=None if allreduce_U is None else Fraction(allreduce_U),
            balanced=_flag(packing.get("balanced", False)),
            faster_way=_flag(packing.get("faster_way", False)),
        )
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError) as error:
        raise InputError(
            f"not a forest JSON object ({type(error).__name__}: {error})",
            location=location_in(source),
            hint='write it with `collc trees TOPO -o forest.json`; keys: "U", "k", "trees"',
        ) from error


def _fraction_text(value: Fraction) -> str:
    """``value`` as the JSON's exact ``"p/q"``."""
    return f"{value.numerator}/{value.denominator}"


def _flag(value: object) -> bool:
    """A JSON boolean; anything else is a malformed forest (a string such as "false" would read true)."""
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value
