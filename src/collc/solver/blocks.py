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
``c``, in cyclic rank order from the one after box ``c``'s highest, are cut into ``G`` runs of
``B − 1`` ranks, and run ``j`` enters box ``c`` through role ``j``. Every GPU then receives
exactly ``B − 1`` trees from the network, and sends exactly ``B − 1``: as ``c`` goes round, a sending
box's ``G`` ranks take every position of that order once, so each run holds ``B − 1`` of them. Where
the network's arcs are the fabric's bottleneck, that is the bound's load (rail-optimised DGX
H100, DGX A100's NIC per GPU); the boxes' own arcs carry ``B·(G − 1)`` trees per GPU.

Where every box holds consecutive ranks, the ranks of a run are consecutive; where the ranks go
round the boxes (rank ``r`` in box ``r mod B``, as a launcher's cyclic distribution numbers them), a
run is one round, ``B − 1`` consecutive ranks again, and the counts above hold the same way (box
``b``'s GPU of each round falls in that round's run). Either way the trees that a peer forwards to one
box-mate, and that a GPU sends to one peer, have consecutive chunks in every buffer (a root's chunks
sit at its rank's place, docs/lowering.md §2): :func:`collc.lowering.runs.merge_runs` moves each such
set in one step. Other rank orders get the same trees, with fewer such sets and whatever load they put
on the network (the forest's ``U`` says it). A forest is built where every box has the same roles and
every GPU pair of a box is joined inside it (a switch or a direct link). Each box is taken in the
order in which the first box's ranks hold the roles, so trees pair GPUs by role (the rail or NIC
they share) whatever order the ranks are in; the direct box blocks then keep the network's load
(3x8 A100 with seeded random ranks: 300 GB/s allgather, the fabric's bound; the runs, cut in rank
order, load some NICs twice: 150).

*Direct* box blocks take ``j_c(root)`` = the root's own role for every ``c`` (:func:`own_roles`): the
root sends to its own role in every other box itself, so the trees are 2 hops high instead of 3,
with the same load (every GPU sends and receives ``B − 1`` trees across the network, and its box
arcs carry ``B·(G − 1)``). The trees a peer forwards to one box-mate are then the roots of one role,
whose chunks are ``G`` apart where boxes hold consecutive ranks: they move one tree per step, which
fits the runtime only in small programs. Compile tries them where the search is wide (4x8 A100
allreduce: 36.0 / 119.8 / 132.4 GB/s at 1 MiB / 64 MiB / 1 GiB against 16.7 / 107.9 / 130.0 for
the file it wrote before), and at scale where the ranks go round the boxes, whose rounds make the
roots of one role consecutive (:func:`direct_merges_as_well`). With two boxes both layouts are the
same trees.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from fractions import Fraction
from itertools import pairwise
from typing import NamedTuple

from collc.solver.bound import Bound
from collc.solver.forest import Forest, Tree, TreeEdge
from collc.solver.pipeline import Solution, SolveStats
from collc.topology.model import Topology

Path = tuple[str, ...]


def box_layout(topology: Topology) -> list[list[int]] | None:
    """The ranks of every box in role order (the order in which the first box's ranks hold the
    roles), boxes in the order of their first rank, or None where the fabric has no box layout this
    module can use: at least two boxes of at least two GPUs, every box of the same roles. A role is a
    GPU's place in its box, the one whose rail or NIC reaches the same place in every other box, so
    trees pair GPUs by role whatever order the ranks are in."""
    nodes = [topology.node(name) for name in topology.ranks]
    if any(node.box is None or node.role is None for node in nodes):
        return None
    members: dict[int, list[int]] = {}
    for rank, node in enumerate(nodes):
        members.setdefault(node.box, []).append(rank)
    boxes = list(members.values())
    place = {nodes[rank].role: index for index, rank in enumerate(boxes[0])}
    if len(boxes) < 2 or len(place) < 2:
        return None
    if any(len(box) != len(place) or any(nodes[rank].role not in place for rank in box) for box in boxes):
        return None
    return [sorted(box, key=lambda rank: place[nodes[rank].role]) for box in boxes]


def entry_roles(boxes: list[list[int]]) -> list[dict[int, int]]:
    """Per destination box, the role through which every outside root's tree enters it (module
    docstring): the run of ``B − 1`` ranks that holds the root in the cyclic rank order of the ranks
    outside the box, starting after the box's last (highest) rank."""
    count = sum(len(box) for box in boxes)
    runs = []
    for box in boxes:
        inside = set(box)
        order = [(max(box) + 1 + step) % count for step in range(count)]
        outside = [rank for rank in order if rank not in inside]
        runs.append({rank: position // (len(boxes) - 1) for position, rank in enumerate(outside)})
    return runs


Pair = tuple[int, int]  # (sending rank, receiving rank) of a tree edge


class _Graph:
    """The fabric's arcs as sorted neighbour lists, with each node's kind and box."""

    def __init__(self, topology: Topology):
        neighbours: dict[str, set[str]] = {}
        for src, dst, _ in topology.arcs():
            neighbours.setdefault(src, set()).add(dst)
        self.neighbours = {node: sorted(targets) for node, targets in neighbours.items()}
        self.gpu = {node.name: node.kind == "gpu" for node in topology.nodes}
        self.box = {node.name: node.box for node in topology.nodes}

    def predecessors(self, source: str, box: int | None = None) -> _Reach:
        """Every node reached from ``source`` by fewest hops, forwarding only through switches and
        NICs (with ``box``, only through that box's nodes), with the nodes one hop before it on such
        a path, in name order: every shortest path is a walk back through these lists."""
        depth = {source: 0}
        before: dict[str, list[str]] = {source: []}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            if node != source and self.gpu[node]:
                continue  # GPUs do not forward
            for nxt in self.neighbours.get(node, ()):
                if box is not None and self.box[nxt] != box:
                    continue
                if nxt not in depth:
                    depth[nxt] = depth[node] + 1
                    before[nxt] = [node]
                    queue.append(nxt)
                elif depth[nxt] == depth[node] + 1:
                    before[nxt].append(node)
        return _Reach(before, depth)


class _Reach(NamedTuple):
    """The shortest paths from one node (:meth:`_Graph.predecessors`)."""

    before: dict[str, list[str]]
    depth: dict[str, int]


class _Router:
    """Shortest paths for the trees' GPU pairs, spread over the arcs by load: where several shortest
    paths join a pair (GPUs behind a PCIe or NVSwitch switch with several NICs), each pair, heaviest
    first (most trees, then rank order), takes the one whose busiest arc would carry the least load
    over bandwidth with the pair's trees added (then the least such load summed over its arcs, then
    node names). 4 boxes of 8 GPUs, NIC ``i`` of every box on rail ``i``: with the NICs on each box's
    NVSwitch, the first path by name sent a whole box through one NIC (a forest allgather bound of
    33.3 GB/s against the fabric's 266.7; 133.3 with two GPUs and two NICs per PCIe switch), and the
    pairs in rank order rather than heaviest first reach 160.0 on both; heaviest first, 266.7."""

    def __init__(self, topology: Topology, graph: _Graph):
        self.topology, self.graph = topology, graph
        self.bandwidth = topology.arc_bandwidths()
        self.loads: Counter[tuple[str, str]] = Counter()

    def routes(self, trees: Counter[Pair], inside: bool) -> dict[Pair, Path] | None:
        """A path for each pair of ``trees`` (with the trees on it): inside the sender's box where
        ``inside``, else through the whole fabric; None where a pair has no path."""
        ranks, graph = self.topology.ranks, self.graph
        reaches: dict[int, _Reach] = {}
        paths: dict[Pair, Path] = {}
        for pair in sorted(trees, key=lambda pair: (-trees[pair], pair)):
            source = ranks[pair[0]]
            if pair[0] not in reaches:
                reaches[pair[0]] = graph.predecessors(source, graph.box[source] if inside else None)
            path = self._route(reaches[pair[0]], source, ranks[pair[1]], trees[pair])
            if path is None:
                return None
            paths[pair] = path
        return paths

    def _route(self, reach: _Reach, source: str, target: str, count: int) -> Path | None:
        """The least loaded shortest path from ``source`` to ``target`` (class docstring), with
        ``count`` trees added to each of its arcs; None where there is none."""
        if target not in reach.depth:
            return None
        on_paths = {target}  # the nodes of some shortest path to the target
        stack = [target]
        while stack:
            for prev in reach.before[stack.pop()]:
                if prev not in on_paths:
                    on_paths.add(prev)
                    stack.append(prev)
        best: dict[str, tuple[Fraction, Fraction, Path]] = {source: (Fraction(0), Fraction(0), (source,))}
        for node in sorted(on_paths - {source}, key=lambda name: (reach.depth[name], name)):
            best[node] = min(self._extended(best[prev], prev, node, count) for prev in reach.before[node])
        path = best[target][2]
        for arc in pairwise(path):
            self.loads[arc] += count
        return path

    def _extended(
        self, route: tuple[Fraction, Fraction, Path], prev: str, node: str, count: int
    ) -> tuple[Fraction, Fraction, Path]:
        """``route`` (busiest share, summed shares, path) to ``prev`` continued to ``node``."""
        share = (self.loads[(prev, node)] + count) / self.bandwidth[(prev, node)]
        return max(route[0], share), route[1] + share, (*route[2], node)


def own_roles(boxes: list[list[int]]) -> list[dict[int, int]]:
    """:func:`entry_roles` for direct box blocks (module docstring): every root's tree enters every
    other box through the root's own role."""
    role = {rank: index for box in boxes for index, rank in enumerate(box)}
    insides = [set(box) for box in boxes]
    return [{rank: place for rank, place in role.items() if rank not in inside} for inside in insides]


def merged_steps(boxes: list[list[int]], runs: list[dict[int, int]]) -> int:
    """How many network and forwarding transfers the box blocks of ``runs`` (:func:`entry_roles` or
    :func:`own_roles`) take with consecutive roots merged (:func:`collc.lowering.runs.merge_runs`): per
    destination box and entry role, the runs of consecutive ranks among the roots entering there (a
    peer forwards each to a box-mate in one step), and among those of each source box (its gateway
    sends each to the peer in one step)."""
    box_of = {rank: index for index, box in enumerate(boxes) for rank in box}
    entering: dict[tuple[int, int, int | None], list[int]] = {}  # source box None: from every box
    for destination, roles in enumerate(runs):
        for root, role in roles.items():
            for source in (None, box_of[root]):
                entering.setdefault((destination, role, source), []).append(root)
    return sum(1 + sum(b != a + 1 for a, b in pairwise(sorted(roots))) for roots in entering.values())


def direct_merges_as_well(topology: Topology) -> bool:
    """Whether the direct box blocks merge about as well as the box blocks (:func:`merged_steps`), at
    most one more step per destination box and role: where the ranks go round the boxes, each round
    enters every box through one role, cut once by the box's own rank (13x8: 1,440 steps against
    1,363), and the direct trees, 2 hops high, pipeline better (13x8 A100 allreduce: 107.1 against
    87.8 GB/s at 1 GiB, bound 108.3). Where boxes hold consecutive ranks they take far more (16x8:
    3,840 against 494)."""
    boxes = box_layout(topology)
    if boxes is None:
        return False
    slack = len(boxes) * len(boxes[0])
    return merged_steps(boxes, own_roles(boxes)) <= merged_steps(boxes, entry_roles(boxes)) + slack


def box_block_forest(topology: Topology, direct: bool = False) -> Forest | None:
    """The box-block forest of ``topology`` (module docstring), direct where asked, or None where it has
    no usable box layout or a pair the trees need has no path. ``U`` is the forest's own: the largest
    load over bandwidth of any arc, so its allgather algbw is what these trees reach, which can be
    below the fabric's bound."""
    boxes = box_layout(topology)
    if boxes is None:
        return None
    roots = [root for box in boxes for root in box]
    runs = own_roles(boxes) if direct else entry_roles(boxes)
    shapes = [_shape(root, source_box, boxes, runs) for source_box, box in enumerate(boxes) for root in box]
    router = _Router(topology, _Graph(topology))
    paths: dict[Pair, Path] = {}
    for across in (True, False):  # the network's pairs first: their NICs decide the boxes' load
        pairs = Counter(edge.pair for shape in shapes for edge in shape if edge.across == across)
        routed = router.routes(pairs, inside=not across)
        if routed is None:
            return None
        paths.update(routed)
    trees = tuple(
        Tree(root, 1, tuple(TreeEdge(*edge.pair, paths[edge.pair]) for edge in shape))
        for root, shape in zip(roots, shapes, strict=True)
    )
    congestion = max(Fraction(load) / router.bandwidth[arc] for arc, load in router.loads.items())
    return Forest(len(topology.ranks), 1, congestion, trees, blocks=True, direct=direct)


class _Edge(NamedTuple):
    """A tree edge before routing: its GPU pair and whether it crosses the network."""

    pair: Pair
    across: bool


def _shape(root: int, source_box: int, boxes: list[list[int]], runs: list[dict[int, int]]) -> list[_Edge]:
    """The edges of ``root``'s tree (module docstring) in breadth-first order; ``runs`` from
    :func:`entry_roles` or :func:`own_roles`."""
    box = boxes[source_box]
    levels: list[list[_Edge]] = [[], [], []]  # edges entering depth 1, 2 and 3
    levels[0] = [_Edge((root, mate), False) for mate in box if mate != root]
    for destination, other in enumerate(boxes):
        if destination == source_box:
            continue
        role = runs[destination][root]
        gateway, peer = box[role], other[role]
        depth = 0 if gateway == root else 1
        levels[depth].append(_Edge((gateway, peer), True))
        levels[depth + 1] += [_Edge((peer, mate), False) for mate in other if mate != peer]
    return [edge for level in levels for edge in level]


def box_block_solution(topology: Topology, direct: bool = False) -> Solution | None:
    """:func:`box_block_forest` as a :class:`Solution`, whose bound is the forest's own (its ``U`` and
    ``k = 1``: what these trees reach, not the fabric's optimum), or None where there is none."""
    start = time.perf_counter()
    forest = box_block_forest(topology, direct)
    if forest is None:
        return None
    rate = forest.k / forest.U
    bound = Bound(rate, forest.U, forest.k, (), (), forest.num_gpus, rate)
    return Solution(bound, forest, SolveStats(seconds={"blocks": time.perf_counter() - start}))
