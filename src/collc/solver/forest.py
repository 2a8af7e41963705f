"""The solver's result: a forest of capacitated spanning out-trees with physical paths.

Every GPU ``r`` roots trees whose multiplicities sum to ``k``; a tree of multiplicity ``C`` stands for
``C`` identical unit trees, each carrying ``1/(N*k)`` of the collective's data from its root to every
other GPU. Each logical tree edge ``src -> dst`` (GPU ranks) travels over ``path``: the physical node
names from ``src`` to ``dst`` through switches and NICs.

``U`` is the congestion budget in trees per GB/s: on every physical arc ``e`` the number of unit trees
crossing it (counting repeats) is at most ``U * bandwidth(e)``. The forest's allgather algbw is then
``N * k / U`` GB/s, equal to the optimal bound when ``(U, k)`` is optimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


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


@dataclass(frozen=True)
class Forest:
    """All trees of a schedule, with the ``(U, k)`` they were packed for."""

    num_gpus: int
    k: int
    U: Fraction
    trees: tuple[Tree, ...]

    @property
    def allgather_algbw(self) -> Fraction:
        """Allgather/reduce-scatter algbw in GB/s (nccl-tests units): ``N * k / U``."""
        return self.num_gpus * self.k / self.U
