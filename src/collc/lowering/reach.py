"""How large a fabric one file can serve: the runtime's element limit against the steps a forest needs.

The runtime's XML parser keeps at most ``max_elements_per_rank`` (4,096) elements for the rank that
parses the file: the ``<algo>`` element, one ``<gpu>`` element per rank of the file (every rank's,
not only its own), its own threadblocks and its own steps. The lowering moves every tree's data in
pieces (docs/lowering.md §2), and each piece costs every GPU a fixed number of steps that depends only
on its place in that tree:

* allgather: a receive unless the GPU is the root, a send per child, and the root's copy of its own
  input (out-of-place files);
* reduce-scatter: a send unless it is the root, a receive and a fold (``re``) per child, and the
  root's copy;
* allreduce: the reduce-scatter steps on the reduce forest plus the allgather steps without the copy.

Summed over the GPUs, a piece costs ``a·(N−1) + c`` steps (``a`` = 2, 3, 5; ``c`` = 1 with the copy),
because the children of a spanning tree number ``N−1``. Every GPU roots at least one tree, so there
are at least ``N`` pieces and the busiest GPU has at least ``a·(N−1) + c`` steps, whatever the forest,
k or instances: :func:`check_reach` rejects a fabric on that alone, before anything is solved.
:func:`forest_elements` counts the same steps exactly for a solved forest, and as threadblocks the
most peers a GPU sends to or receives from (a threadblock has one of each), so a piece size that cannot
fit is rejected before a plan is built. Neither counts ``nop`` steps, and the shape-free check counts
one threadblock: both are lower bounds, and the lowering may still need more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from collc.errors import InputError
from collc.lowering.layout import tree_chunks
from collc.lowering.plan import split_pieces, tree_offsets
from collc.solver.forest import Forest

# Steps per piece summed over the GPUs, per N-1 (the children of a spanning tree): see the module doc.
STEPS_PER_CHILD = {"allgather": 2, "reducescatter": 3, "allreduce": 5}


class BeyondReach(InputError):
    """The fabric has too many GPUs for one file of this collective within the runtime's limits."""


@dataclass(frozen=True)
class ElementCount:
    """The XML elements one rank parses: ``1 + ngpus + threadblocks + steps``."""

    num_gpus: int
    threadblocks: int
    steps: int

    @property
    def total(self) -> int:
        return 1 + self.num_gpus + self.threadblocks + self.steps

    def describe(self) -> str:
        return (
            f"{self.total} XML elements per rank (1 <algo> + {self.num_gpus} <gpu> + "
            f"{self.threadblocks} threadblock(s) + {self.steps} steps)"
        )


def least_elements(coll: str, num_gpus: int, copy_own_input: bool) -> ElementCount:
    """The fewest elements the busiest rank of any file of ``coll`` on ``num_gpus`` GPUs parses."""
    steps = STEPS_PER_CHILD[coll] * (num_gpus - 1) + int(copy_own_input)
    return ElementCount(num_gpus, 1, steps)


def largest_fabric(coll: str, max_elements: int, copy_own_input: bool) -> int:
    """The most GPUs whose :func:`least_elements` is within ``max_elements`` (the reach's upper end)."""
    # 1 + N + 1 + a·(N-1) + c <= E  <=>  N <= (E - 2 - c + a) / (a + 1)
    a = STEPS_PER_CHILD[coll]
    return (max_elements - 2 - int(copy_own_input) + a) // (a + 1)


def check_reach(coll: str, num_gpus: int, max_elements: int, copy_own_input: bool) -> None:
    """Raise :class:`BeyondReach` (exit 2) when no forest of ``coll`` on ``num_gpus`` GPUs can fit
    ``max_elements`` per rank, naming the limit and by how much the least file is over it."""
    least = least_elements(coll, num_gpus, copy_own_input)
    if least.total <= max_elements:
        return
    over = least.total - max_elements
    reach = largest_fabric(coll, max_elements, copy_own_input)
    alternatives = sorted(
        (other for other in STEPS_PER_CHILD if other != coll),
        key=lambda other: -largest_fabric(other, max_elements, copy_own_input),
    )
    hint = (
        f"one {coll} file serves at most {reach} GPUs; "
        + ", ".join(
            f"{other} up to {largest_fabric(other, max_elements, copy_own_input)}" for other in alternatives
        )
        + "; beyond that keep the runtime's own algorithms"
    )
    raise BeyondReach(
        f"{coll} on {num_gpus} GPUs needs at least {least.describe()}: every GPU takes part in a tree "
        f"rooted at every other GPU; the runtime's parser takes {max_elements}, {over} over "
        f"({least.total / max_elements:.2f}x)",
        hint=hint,
    )


def forest_elements(
    forests: Sequence[Forest],
    coll: str,
    shares: Sequence[int],
    instances: int,
    max_piece: int,
    copy_own_input: bool,
) -> ElementCount:
    """The busiest GPU's elements when ``forests`` are lowered in pieces of at most ``max_piece``
    chunks: its exact steps without ``nop``, and as threadblocks the most peers it sends to or receives
    from (a threadblock has one of each). A lower bound on what the lowering emits.

    ``forests`` is ``(forest,)``, or ``(forest, reduce_forest)`` for an allreduce that reduces over a
    forest of its own; ``shares`` are the roots' chunks per instance
    (:func:`collc.lowering.plan.root_shares`).
    """
    num_gpus = forests[0].num_gpus
    tally = _Tally([0] * num_gpus, [set() for _ in range(num_gpus)], [set() for _ in range(num_gpus)])
    if coll in ("reducescatter", "allreduce"):
        _add_steps(tally, forests[-1], shares, instances, max_piece, up=True, copy=copy_own_input)
    if coll in ("allgather", "allreduce"):
        copy = copy_own_input and coll == "allgather"
        _add_steps(tally, forests[0], shares, instances, max_piece, up=False, copy=copy)
    counts = [
        ElementCount(num_gpus, max(len(tally.sends_to[gpu]), len(tally.receives_from[gpu]), 1), steps)
        for gpu, steps in enumerate(tally.steps)
    ]
    return max(counts, key=lambda count: count.total)


@dataclass(frozen=True)
class _Tally:
    """Per GPU: steps so far, and the peers it sends to and receives from."""

    steps: list[int]
    sends_to: list[set[int]]
    receives_from: list[set[int]]


def _add_steps(
    tally: _Tally,
    forest: Forest,
    shares: Sequence[int],
    instances: int,
    max_piece: int,
    *,
    up: bool,
    copy: bool,
) -> None:
    """Add every GPU's steps and peers for every piece of ``forest``: aggregation (``up``) or broadcast."""
    tree_offsets(forest)  # checks that the multiplicities per root sum to k
    per_child = 2 if up else 1
    steps = tally.steps
    for tree, count in zip(forest.trees, tree_chunks(forest, shares), strict=True):
        pieces = len(split_pieces(count, max_piece)) * instances
        if not pieces:
            continue  # a tree its root's share leaves without chunks moves nothing
        steps[tree.root] += pieces * int(copy)
        for edge in tree.edges:
            steps[edge.dst] += pieces  # the child's receive (broadcast) or send (aggregation)
            steps[edge.src] += pieces * per_child  # the parent's send, or receive and fold
            sender, receiver = (edge.dst, edge.src) if up else (edge.src, edge.dst)
            tally.sends_to[sender].add(receiver)
            tally.receives_from[receiver].add(sender)
