"""Hand-built topologies and forests for lowering tests (independent of the solver)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

from collc.solver.forest import Forest, Tree, TreeEdge
from collc.topology.model import Link, Metadata, Node, Topology


def flat_topology(num_gpus: int, bandwidth: int = 100, sms: int | None = 108) -> Topology:
    """``num_gpus`` GPUs, every pair joined by a direct link of ``bandwidth`` GB/s."""
    nodes = tuple(Node(f"g{r}", "gpu") for r in range(num_gpus))
    links = tuple(
        Link(f"g{a}", f"g{b}", Fraction(bandwidth)) for a in range(num_gpus) for b in range(a + 1, num_gpus)
    )
    return Topology(
        "flat", nodes, links, tuple(f"g{r}" for r in range(num_gpus)), metadata=Metadata(sms_per_gpu=sms)
    )


def _edge(a: int, b: int) -> TreeEdge:
    return TreeEdge(a, b, (f"g{a}", f"g{b}"))


def _bfs_edges(root: int, children: dict[int, list[int]]) -> tuple[TreeEdge, ...]:
    order, edges = [root], []
    for node in order:
        for child in children.get(node, []):
            edges.append(_edge(node, child))
            order.append(child)
    return tuple(edges)


def chain(root: int, n: int, multiplicity: int = 1) -> Tree:
    children = {(root + i) % n: [(root + i + 1) % n] for i in range(n - 1)}
    return Tree(root, multiplicity, _bfs_edges(root, children))


def star(root: int, n: int, multiplicity: int = 1) -> Tree:
    return Tree(root, multiplicity, _bfs_edges(root, {root: [(root + i) % n for i in range(1, n)]}))


def binary(root: int, n: int, multiplicity: int = 1) -> Tree:
    """Heap-shaped binary tree over ranks ``root, root+1, ...`` (mod n): several children per node."""
    label = [(root + i) % n for i in range(n)]
    children = {label[i]: [label[c] for c in (2 * i + 1, 2 * i + 2) if c < n] for i in range(n)}
    return Tree(root, multiplicity, _bfs_edges(root, children))


def forest(n: int, shapes: list[tuple], U: Fraction = Fraction(1)) -> Forest:
    """Every root gets one tree per ``(shape, multiplicity)`` in ``shapes``."""
    trees = tuple(shape(root, n, mult) for root in range(n) for shape, mult in shapes)
    k = sum(mult for _, mult in shapes)
    return Forest(n, k, U, trees)


@st.composite
def random_forests(draw, num_gpus: int | None = None, max_multiplicity: int = 80) -> Forest:
    """2..6 GPUs (or ``num_gpus``), 1..3 trees per root of random shape (random parent among earlier
    BFS nodes) and multiplicity up to ``max_multiplicity`` (the last tree of a root may get more)."""
    n = num_gpus or draw(st.integers(2, 6))
    trees = []
    k = None
    for root in range(n):
        multiplicities = draw(st.lists(st.integers(1, max_multiplicity), min_size=1, max_size=3))
        if k is None:
            k = sum(multiplicities)
        else:  # every root needs the same k: rescale the last tree
            multiplicities[-1] += k - sum(multiplicities)
            if multiplicities[-1] < 1:
                multiplicities = [k]
        for multiplicity in multiplicities:
            order = [root, *draw(st.permutations([g for g in range(n) if g != root]))]
            parents = [draw(st.integers(0, i - 1)) for i in range(1, n)]
            children: dict[int, list[int]] = {}
            for position, parent in enumerate(parents, start=1):
                children.setdefault(order[parent], []).append(order[position])
            edges, queue = [], [root]
            for node in queue:
                for child in children.get(node, []):
                    edges.append(TreeEdge(node, child, (f"g{node}", f"g{child}")))
                    queue.append(child)
            trees.append(Tree(root, multiplicity, tuple(edges)))
    return Forest(n, k, Fraction(1, draw(st.integers(1, 50))), tuple(trees))
