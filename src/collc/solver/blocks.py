"""Box-block forests: spanning trees laid out box by box, so that many trees share each step.

A spanning-tree forest from :func:`collc.solver.pipeline.solve` moves every tree in steps of its own:
at N GPUs every rank then holds at least ``a·(N − 1)`` steps (docs/lowering.md §6), which past a
few hundred GPUs is more than the runtime parses, and well before that more than a threadblock may
hold without carrying several tree depths. On a fabric of ``B`` boxes of ``G`` GPUs each, with the GPU
of role ``j`` in one box reaching the GPU of role ``j`` in every other box through the network (a
rail, a NIC on a shared switch), this module builds one tree per GPU (k = 1) whose data crosses the
network as blocks of consecutive roots:

1. the root sends to every other GPU of its box (depth 1);
2. for every other box ``c``, the root's GPU of role ``j_c(root)`` sends to the GPU of role
   ``j_c(root)`` in box ``c`` (the *peer*; depth 1 where the root has that role, else 2);
3. the peer sends to every other GPU of box ``c``.

The role ``j_c`` comes from box ``c``'s view of the other ranks: the ``(B − 1)·G`` ranks outside box
``c``, in cyclic rank order from the one after box ``c``'s last, are cut into ``G`` runs of ``B − 1``
consecutive ranks, and run ``j`` enters box ``c`` through role ``j``. Every GPU then receives
exactly ``B − 1`` trees from the network, and sends exactly ``B − 1``: as ``c`` goes round, a sending
box's ``G`` ranks take every position of that order once, so each run holds ``B − 1`` of them. Where
the network's arcs are the fabric's bottleneck, that is the bound's load (rail-optimised DGX
H100, DGX A100's NIC per GPU); the boxes' own arcs carry ``B·(G − 1)`` trees per GPU.

Because the ranks of a run are consecutive, the trees that a peer forwards to one box-mate, and that
a GPU sends to one peer, have consecutive chunks in every buffer (a root's chunks sit at its rank's
place, docs/lowering.md §2): :func:`collc.lowering.runs.merge_runs` moves each such set in one step.
Only where the boxes hold consecutive ranks, all of the same roles in the same order, and every GPU
pair of a box is joined inside it (a switch or a direct link), is a forest built.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from fractions import Fraction

from collc.solver.bound import Bound
from collc.solver.forest import Forest, Tree, TreeEdge
from collc.solver.pipeline import Solution, SolveStats
from collc.topology.model import Topology

Path = tuple[str, ...]


def box_layout(topology: Topology) -> list[list[int]] | None:
    """The ranks of every box in role order, box after box, or None where the fabric has no box
    layout this module can use: at least two boxes of at least two GPUs, every box of the same
    roles in the same order, each holding consecutive ranks."""
    nodes = [topology.node(name) for name in topology.ranks]
    if any(node.box is None or node.role is None for node in nodes):
        return None
    boxes: list[list[int]] = []
    for rank, node in enumerate(nodes):
        if rank == 0 or node.box != nodes[rank - 1].box:
            boxes.append([])
        boxes[-1].append(rank)
    if len(boxes) < 2 or len({nodes[box[0]].box for box in boxes}) != len(boxes):
        return None  # a box whose ranks are not consecutive
    roles = [[nodes[rank].role for rank in box] for box in boxes]
    if len(roles[0]) < 2 or any(other != roles[0] for other in roles[1:]):
        return None
    return boxes


def entry_role(box_count: int, per_box: int, destination: int, root: int) -> int:
    """The role through which ``root``'s tree enters box ``destination`` (module docstring): the run
    of ``box_count − 1`` ranks that holds ``root`` in the cyclic order starting after the box."""
    outside = box_count * per_box
    position = (root - (destination + 1) * per_box) % outside
    return position // (box_count - 1)


class _Graph:
    """The fabric's arcs as sorted neighbour lists, with each node's kind and box."""

    def __init__(self, topology: Topology):
        neighbours: dict[str, set[str]] = {}
        for src, dst, _ in topology.arcs():
            neighbours.setdefault(src, set()).add(dst)
        self.neighbours = {node: sorted(targets) for node, targets in neighbours.items()}
        self.gpu = {node.name: node.kind == "gpu" for node in topology.nodes}
        self.box = {node.name: node.box for node in topology.nodes}

    def paths(self, source: str, box: int | None = None) -> dict[str, Path]:
        """Shortest paths (fewest hops, then node names) from ``source`` to the GPUs it reaches,
        forwarding only through switches and NICs; with ``box``, only through that box's nodes."""
        found: dict[str, Path] = {source: (source,)}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if node != source and self.gpu[node]:
                continue  # GPUs do not forward
            for nxt in self.neighbours.get(node, ()):
                if nxt not in found and (box is None or self.box[nxt] == box):
                    found[nxt] = (*found[node], nxt)
                    queue.append(nxt)
        return {name: path for name, path in found.items() if name != source and self.gpu[name]}


def box_block_forest(topology: Topology) -> Forest | None:
    """The box-block forest of ``topology`` (module docstring), or None where it has no usable box
    layout or a pair the trees need has no path. ``U`` is the forest's own: the largest load over
    bandwidth of any arc, so its allgather algbw is what these trees reach, which can be below the
    fabric's bound."""
    boxes = box_layout(topology)
    if boxes is None:
        return None
    ranks = topology.ranks
    graph = _Graph(topology)
    inside: dict[tuple[int, int], Path] = {}  # (rank, box-mate) -> path inside the box
    across: dict[tuple[int, int], Path] = {}  # (rank, same role in another box) -> network path
    for box in boxes:
        for slot, rank in enumerate(box):
            within = graph.paths(ranks[rank], graph.box[ranks[rank]])
            everywhere = graph.paths(ranks[rank])
            for mate in box:
                if mate != rank:
                    inside[(rank, mate)] = within.get(ranks[mate], ())
            for other in boxes:
                if other is not box:
                    across[(rank, other[slot])] = everywhere.get(ranks[other[slot]], ())
    if not all(inside.values()) or not all(across.values()):
        return None
    trees = [
        _tree(root, source_box, boxes, inside, across) for source_box, box in enumerate(boxes) for root in box
    ]
    loads: Counter[tuple[str, str]] = Counter()
    for tree in trees:
        for edge in tree.edges:
            loads.update(zip(edge.path, edge.path[1:], strict=False))
    bandwidth = topology.arc_bandwidths()
    congestion = max(Fraction(load) / bandwidth[arc] for arc, load in loads.items())
    return Forest(len(ranks), 1, congestion, tuple(trees), blocks=True)


def _tree(
    root: int,
    source_box: int,
    boxes: list[list[int]],
    inside: dict[tuple[int, int], Path],
    across: dict[tuple[int, int], Path],
) -> Tree:
    """The tree of ``root`` (module docstring), its edges in breadth-first order."""
    box, count, per_box = boxes[source_box], len(boxes), len(boxes[source_box])
    levels: list[list[TreeEdge]] = [[], [], []]  # edges entering depth 1, 2 and 3
    levels[0] = [TreeEdge(root, mate, inside[(root, mate)]) for mate in box if mate != root]
    for destination, other in enumerate(boxes):
        if destination == source_box:
            continue
        role = entry_role(count, per_box, destination, root)
        gateway, peer = box[role], other[role]
        depth = 0 if gateway == root else 1
        levels[depth].append(TreeEdge(gateway, peer, across[(gateway, peer)]))
        levels[depth + 1] += [TreeEdge(peer, mate, inside[(peer, mate)]) for mate in other if mate != peer]
    return Tree(root, 1, tuple(edge for level in levels for edge in level))


def box_block_solution(topology: Topology) -> Solution | None:
    """:func:`box_block_forest` as a :class:`Solution`, whose bound is the forest's own (its ``U`` and
    ``k = 1``: what these trees reach, not the fabric's optimum), or None where there is none."""
    start = time.perf_counter()
    forest = box_block_forest(topology)
    if forest is None:
        return None
    rate = forest.k / forest.U
    bound = Bound(rate, forest.U, forest.k, (), (), forest.num_gpus, rate)
    return Solution(bound, forest, SolveStats(seconds={"blocks": time.perf_counter() - start}))
