"""Which chunks of a loop each root and each tree carries (docs/lowering.md §2).

A file's loop has ``nchunksperloop`` chunks, and the runtime runs it only for counts that this
divides (times the collective's size multiplier). Allgather and reduce-scatter fix each root's share:
the root's own block, ``k`` chunks per instance, and ``count × N`` is always divisible by ``N·k``. An
allreduce has no such tie: any chunk may be reduced at and broadcast from any GPU. With the equal
shares of ``k`` chunks, ``nchunksperloop = N·k``, which no power of two is a multiple of when ``N`` is
not a power of two (3 boxes of 8 GPUs, or 6 GPUs of a box), so such a file would never run for a
power-of-two count. Giving the roots shares as equal as a power-of-two loop allows (24 GPUs and 64
chunks: 16 roots own 3 and 8 own 2) lets the file serve every power of two, at the price of the
heavier roots' extra traffic, which :func:`layout_algbw` states exactly.

A root's share is split among its trees by multiplicity, by largest remainder (a tree of
multiplicity ``C`` among ``k`` gets ``share·C/k`` chunks, exactly so with equal shares), and the
chunks are numbered root by root, instance by instance, tree by tree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction

from collc.errors import InvariantError
from collc.solver.forest import Forest
from collc.solver.invariants import arc_loads


def equal_shares(num_gpus: int, per_root: int) -> tuple[int, ...]:
    """Every root ``per_root`` chunks per instance: the layout of every file whose
    ``nchunksperloop`` is ``N·k`` (:func:`collc.lowering.plan.chunks_per_root`)."""
    return (per_root,) * num_gpus


def spread_shares(num_gpus: int, chunks: int) -> tuple[int, ...]:
    """``chunks`` per instance over ``num_gpus`` roots as evenly as possible: each root gets the floor
    of the mean and the remainder goes one chunk each to roots spaced evenly in rank order (rank
    ``r`` gets one when ``⌊(r+1)·e/N⌋ > ⌊r·e/N⌋`` for ``e`` extra chunks), so that boxes, which
    launchers number contiguously, get their fair part of the heavier roots."""
    if chunks < num_gpus:
        raise InvariantError(f"{chunks} chunks per loop cannot give each of {num_gpus} roots one")
    base, extra = divmod(chunks, num_gpus)
    return tuple(base + (r + 1) * extra // num_gpus - r * extra // num_gpus for r in range(num_gpus))


def tree_chunks(forest: Forest, shares: Sequence[int]) -> tuple[int, ...]:
    """Chunks per instance of each tree of ``forest`` (in forest order): its root's share split among
    the root's trees in proportion to their multiplicities, the remainder by largest fraction, then
    forest order."""
    if len(shares) != forest.num_gpus:
        raise InvariantError(f"{len(shares)} root shares for a forest of {forest.num_gpus} GPUs")
    by_root: dict[int, list[int]] = {}
    for index, tree in enumerate(forest.trees):
        by_root.setdefault(tree.root, []).append(index)
    counts = [0] * len(forest.trees)
    for root, indices in by_root.items():
        exact = [Fraction(shares[root] * forest.trees[index].multiplicity, forest.k) for index in indices]
        floors = [int(value) for value in exact]
        left = shares[root] - sum(floors)
        order = sorted(range(len(indices)), key=lambda i: (floors[i] - exact[i], i))
        for rank, i in enumerate(order):
            counts[indices[i]] = floors[i] + (rank < left)
    if any(sum(counts[i] for i in indices) != shares[root] for root, indices in by_root.items()):
        raise InvariantError("the trees of a root do not carry its share of the loop")
    return tuple(counts)


def layout_algbw(
    forest: Forest,
    shares: Sequence[int],
    arc_bandwidths: Mapping[tuple[str, str], Fraction],
    *,
    both_halves: bool = False,
) -> Fraction:
    """Allgather/reduce-scatter algbw (GB/s) of ``forest`` when its roots carry ``shares`` chunks of
    the loop: every arc moves the chunks of the trees that cross it, a ``1/Σshares`` part of the
    buffer each, so the busiest arc relative to its bandwidth sets the time. With equal shares this
    is the forest's own ``N·k/U``. ``both_halves``: an allreduce whose trees carry both halves at once
    (:attr:`~collc.solver.forest.Forest.allreduce_U`), each arc moving the trees' chunks of both
    directions together.
    """
    weights = tree_chunks(forest, shares)
    loads = arc_loads(forest, reverse=forest.reversed, weights=weights)
    if both_halves:
        loads += arc_loads(forest, reverse=not forest.reversed, weights=weights)
    busiest = max(Fraction(load) / arc_bandwidths[arc] for arc, load in loads.items())
    return sum(shares) / busiest
