"""Stage 1 of the lowering: a forest becomes a flat list of keyed operations (the lowering's own IR).

An *operation* is either a :class:`Transfer` (one message from GPU ``src`` to GPU ``dst``: a send step
on ``src`` and the matching receive step on ``dst``) or a :class:`LocalOp` (a ``cpy`` or ``re`` on one
GPU). Nothing here knows about threadblocks or channels yet (see :mod:`collc.lowering.assign`).

Chunk layout (docs/lowering.md §2): ``nchunksperloop = N·k·I``; root ``r``'s shard is the chunk range
``[r·k·I, (r+1)·k·I)``; inside it instance ``j`` owns ``[j·k, (j+1)·k)`` and the trees of ``r`` split
that range by multiplicity in forest order (a tree of multiplicity ``C`` owns ``C`` consecutive chunks;
an allreduce with a reduce forest of its own uses ``lcm`` of both k per root, :func:`chunks_per_root`).
A tree's chunks travel in *pieces* of at most ``max_piece`` chunks (at most :data:`MAX_CNT`, the
runtime's ``cnt`` limit). One-chunk pieces pipeline best: a GPU forwards a piece only once all of it
has arrived, so a piece of ``c`` chunks delays every hop by ``c`` calls (docs/lowering.md §2).

Every operation carries a *key* (a tuple of ints) that increases along the data flow: a message is
sent only after everything it depends on has a smaller key. Emitting every threadblock's steps in
increasing key order therefore cannot deadlock (docs/lowering.md §4).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from itertools import pairwise
from math import lcm
from typing import Literal, NamedTuple

import numpy as np

from collc.errors import InvariantError
from collc.lowering.layout import equal_shares, spread_shares, tree_chunks
from collc.msccl.program import BUFFERS, SCHEDULED_COLLECTIVES, STEP_TYPES
from collc.solver.forest import Forest, Tree
from collc.topology.model import Topology

MAX_CNT = 71  # the executor's parser requires cnt < MSCCL_MAX_COUNT = 72
COLLECTIVES = SCHEDULED_COLLECTIVES
UP, DOWN = 0, 1  # phases: aggregation towards the root, then broadcast from it

Key = tuple[int, ...]


@dataclass(frozen=True)
class Span:
    """``cnt`` consecutive chunks of buffer ``buf`` (``i``, ``o`` or ``s``) starting at ``off``."""

    buf: str
    off: int
    cnt: int

    def chunks(self) -> range:
        return range(self.off, self.off + self.cnt)


@dataclass(frozen=True)
class Transfer:
    """One message: ``src`` sends ``source`` (its buffer) and ``dst`` receives it into ``target``.

    ``plane`` is the index of the network plane (rail) the physical path crosses, or None.
    ``bandwidth`` is the GB/s of the slowest arc of that path, None when the arcs were not given.
    """

    key: Key
    src: int
    dst: int
    source: Span
    target: Span
    plane: int | None
    bandwidth: Fraction | None = None


@dataclass(frozen=True)
class LocalOp:
    """A ``cpy`` (target <- source) or ``re`` (target <- target ⊕ source) on ``gpu``.

    It runs on the threadblock that handles ``host``: side ``send`` or ``recv`` of transfer number
    ``host[0]`` on this GPU, so that local work is spread like the traffic it belongs to.
    """

    key: Key
    gpu: int
    type: Literal["cpy", "re"]
    source: Span
    target: Span
    host: tuple[int, Literal["send", "recv"]]


@dataclass(frozen=True)
class Plan:
    """All operations of one collective, with the buffer sizes they need (in chunks)."""

    coll: str
    num_gpus: int
    nchunksperloop: int
    transfers: tuple[Transfer, ...]
    local_ops: tuple[LocalOp, ...]
    i_chunks: int
    o_chunks: int
    s_chunks: tuple[int, ...]  # per GPU

    @cached_property
    def ends(self) -> Ends:
        """Every operation's end on a GPU as arrays (:class:`Ends`), made once per plan."""
        return _ends(self)

    @cached_property
    def columns(self) -> TransferColumns:
        """What the lane assignment reads of every transfer, as columns (:class:`TransferColumns`),
        made once per plan."""
        return _transfer_columns(self.transfers)


class Ends(NamedTuple):
    """Every operation's end on a GPU, one entry each: a transfer's send (on ``src``) and receive (on
    ``dst``), then every local op. The lowering's compiled passes (hazards, list schedule, emitter)
    read the plan through these arrays.

    ``node`` numbers operations as the passes do: transfers ``0..T-1``, then local ops ``T..``.
    ``kind`` is an index into :data:`collc.msccl.program.STEP_TYPES` (``s``, ``r``, ``cpy``, ``re``).
    ``src_*``/``dst_*`` are the span the step reads/writes as a buffer index into :data:`BUFFERS`
    and an offset (a send's target is its source, a receive's source its target), ``cnt`` its chunks.
    ``host``/``side`` name the transfer end whose threadblock runs the step: the transfer itself for
    its two ends, :attr:`LocalOp.host` for a local op (``side``: an index into :data:`SIDES`).
    """

    gpu: np.ndarray
    node: np.ndarray
    kind: np.ndarray
    src_buf: np.ndarray
    src_off: np.ndarray
    dst_buf: np.ndarray
    dst_off: np.ndarray
    cnt: np.ndarray
    host: np.ndarray
    side: np.ndarray

    def buffer_bases(self) -> np.ndarray:
        """Where each buffer of :data:`BUFFERS` starts in one table that holds every chunk these ends
        touch on a GPU, and (last) the table's size: the lowering's compiled passes keep a value per
        chunk of a GPU in such a table."""
        extent = np.zeros(len(BUFFERS), dtype=np.int64)
        np.maximum.at(extent, self.src_buf, self.src_off + self.cnt)
        np.maximum.at(extent, self.dst_buf, self.dst_off + self.cnt)
        return np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(extent)))


class TransferColumns(NamedTuple):
    """Per transfer (in plan order): ``cnt``, the chunks it moves; ``unit``, a number for its tree
    piece ``key[2:5]`` (tree, instance, piece), equal exactly where those are; ``rate``, the index
    in ``rates`` of its path's bandwidth (:attr:`Transfer.bandwidth`, exact GB/s; None where unknown).
    """

    cnt: list[int]
    unit: np.ndarray
    rate: np.ndarray
    rates: tuple[Fraction | None, ...]


def _transfer_columns(transfers: tuple[Transfer, ...]) -> TransferColumns:
    """:attr:`Plan.columns`."""
    units: dict[Key, int] = {}
    rates: dict[Fraction | None, int] = {}
    by_object: dict[int, int] = {}  # a path's bandwidth is one object: hash each object once
    rate = []
    for transfer in transfers:
        index = by_object.get(id(transfer.bandwidth))
        if index is None:
            index = by_object[id(transfer.bandwidth)] = rates.setdefault(transfer.bandwidth, len(rates))
        rate.append(index)
    return TransferColumns(
        [transfer.source.cnt for transfer in transfers],
        np.array([units.setdefault(transfer.key[2:5], len(units)) for transfer in transfers], dtype=np.int64),
        np.array(rate, dtype=np.int64),
        tuple(rates),
    )


_BUFFER = {buf: index for index, buf in enumerate(BUFFERS)}
_KIND = {kind: STEP_TYPES.index(kind) for kind in ("s", "r", "cpy", "re")}
SIDES = ("send", "recv")  # a transfer end's side, as :attr:`Ends.side` numbers it


def _ends(plan: Plan) -> Ends:
    """:attr:`Plan.ends`; a local op must run on its host transfer's end on its own GPU."""
    rows: list[tuple[int, ...]] = []
    count = len(plan.transfers)
    send, recv = _KIND["s"], _KIND["r"]
    for node, transfer in enumerate(plan.transfers):
        for gpu, kind, span, side in (
            (transfer.src, send, transfer.source, 0),
            (transfer.dst, recv, transfer.target, 1),
        ):
            buf = _BUFFER[span.buf]
            rows.append((gpu, node, kind, buf, span.off, buf, span.off, span.cnt, node, side))
    for index, op in enumerate(plan.local_ops):
        host, side = op.host
        transfer = plan.transfers[host]
        if (transfer.src if side == "send" else transfer.dst) != op.gpu:
            raise InvariantError(f"local op on GPU {op.gpu} is hosted by a transfer end on another GPU")
        source_buf, target_buf = _BUFFER[op.source.buf], _BUFFER[op.target.buf]
        kind, cnt = _KIND[op.type], op.source.cnt
        rows.append(
            (
                op.gpu,
                count + index,
                kind,
                source_buf,
                op.source.off,
                target_buf,
                op.target.off,
                cnt,
                host,
                SIDES.index(side),
            )
        )
    table = np.array(rows, dtype=np.int64).reshape(-1, len(Ends._fields))
    return Ends(*(np.ascontiguousarray(table[:, column]) for column in range(len(Ends._fields))))


@dataclass(frozen=True)
class _Shape:
    """Parent/children/depth of one tree, derived from its BFS-ordered edges."""

    parent: dict[int, int]
    children: dict[int, list[int]]
    depth: dict[int, int]
    edge_index: dict[tuple[int, int], int]


def tree_shape(tree: Tree, num_gpus: int) -> _Shape:
    """Check that ``tree`` is a spanning arborescence of all GPUs and return its shape."""
    parent: dict[int, int] = {}
    children: dict[int, list[int]] = {gpu: [] for gpu in range(num_gpus)}
    depth = {tree.root: 0}
    edge_index: dict[tuple[int, int], int] = {}
    for index, edge in enumerate(tree.edges):
        if edge.src not in depth or edge.dst in depth or not 0 <= edge.dst < num_gpus:
            raise InvariantError(
                f"tree rooted at GPU {tree.root} is not a BFS-ordered spanning arborescence "
                f"(edge {edge.src}->{edge.dst})"
            )
        parent[edge.dst] = edge.src
        children[edge.src].append(edge.dst)
        depth[edge.dst] = depth[edge.src] + 1
        edge_index[(edge.src, edge.dst)] = index
    if len(depth) != num_gpus:
        raise InvariantError(f"tree rooted at GPU {tree.root} spans {len(depth)} of {num_gpus} GPUs")
    return _Shape(parent, children, depth, edge_index)


def network_planes(topology: Topology) -> dict[str, int]:
    """Plane index of each shared network switch that a NIC or GPU attaches to (the rails).

    A plane switch is a switch outside every box (``box is None``) with a direct link to a NIC or a
    GPU: DGX A100's ``ib.even``/``ib.odd``, a rail-optimised cluster's rail switches (the spine above
    them is not a plane). They are planes only where a box reaches two or more of them, i.e. where
    its NICs are spread over the network (rails): leaf switches that each take every NIC of their
    boxes are not, since a channel of any number leaves a box through its one leaf. Taken for
    planes, leaves made every connection into a box enter through its NIC first by name (a plane's
    connection takes the widest path on from the plane switch), where the runtime uses the
    receiver's own NIC (docs/cost-model.md §1, Paths): two boxes of four GPUs under a leaf each, two
    NICs per box, were predicted at 19.9 of a 36.6 GB/s allgather bound, and the compile search
    packed no trees on the runtime's paths there. Fewer than two planes means there are none to
    keep apart. Planes are numbered in sorted name order.
    """
    nodes = {node.name: node for node in topology.nodes}
    shared = {node.name for node in topology.nodes if node.kind == "switch" and node.box is None}
    reached: dict[str | int, set[str]] = {}  # box (or the node itself outside every box) -> switches
    for link in topology.links:
        for a, b in ((link.src, link.dst), (link.dst, link.src)):
            if a in shared and b in nodes and nodes[b].kind in ("nic", "gpu"):
                box = nodes[b].box
                reached.setdefault(b if box is None else box, set()).add(a)
    if all(len(switches) < 2 for switches in reached.values()):
        return {}
    planes = set().union(*reached.values())
    return {name: index for index, name in enumerate(sorted(planes))}


def path_plane(path: tuple[str, ...], planes: dict[str, int]) -> int | None:
    """The plane of the first plane switch on ``path``, or None when it crosses none."""
    for name in path:
        if name in planes:
            return planes[name]
    return None


def path_bandwidth(
    path: tuple[str, ...], arc_bandwidths: Mapping[tuple[str, str], Fraction]
) -> Fraction | None:
    """GB/s of the slowest arc of ``path`` (node names in the direction data flows); None if an arc
    of it is not in ``arc_bandwidths``."""
    rates = [arc_bandwidths.get(arc) for arc in pairwise(path)]
    known = [rate for rate in rates if rate is not None]
    return min(known) if len(known) == len(rates) else None


def split_pieces(count: int, max_piece: int = MAX_CNT) -> list[tuple[int, int]]:
    """Split ``count`` chunks into near-equal ``(start, cnt)`` pieces of at most ``max_piece`` (none for
    a tree whose root's share leaves it no chunk)."""
    if count == 0:
        return []
    pieces = -(-count // max_piece)
    base, extra = divmod(count, pieces)
    result, start = [], 0
    for index in range(pieces):
        size = base + (1 if index < extra else 0)
        result.append((start, size))
        start += size
    return result


def tree_offsets(forest: Forest) -> list[int]:
    """Offset of each tree's first chunk inside its root's per-instance range ``[0, k)``."""
    used = [0] * forest.num_gpus
    offsets = []
    for tree in forest.trees:
        offsets.append(used[tree.root])
        used[tree.root] += tree.multiplicity
    if any(total != forest.k for total in used):
        raise InvariantError(f"tree multiplicities per root {used} do not all sum to k = {forest.k}")
    return offsets


def chunks_per_root(forest: Forest, reduce_forest: Forest | None = None) -> int:
    """Chunks of one root's shard per instance: ``k``, or the lcm of both forests' k for allreduce.

    Both forests root trees of multiplicities summing to their k at every GPU, so with ``L`` chunks
    per root a tree of multiplicity ``C`` in a forest of ``k`` trees per root owns ``C·L/k`` of its
    root's chunks in either phase, and every chunk is reduced and broadcast at the same root.
    """
    return forest.k if reduce_forest is None else lcm(forest.k, reduce_forest.k)


def root_shares(
    forest: Forest, coll: str, reduce_forest: Forest | None = None, loop_chunks: int | None = None
) -> tuple[int, ...]:
    """Each root's chunks per instance: :func:`chunks_per_root` each, or ``loop_chunks`` spread over
    the roots (allreduce only: the other collectives' roots own their rank's block)."""
    if loop_chunks is None:
        return equal_shares(forest.num_gpus, chunks_per_root(forest, reduce_forest))
    if coll != "allreduce":
        raise InvariantError(f"only an allreduce can share its loop unequally, not {coll}")
    return spread_shares(forest.num_gpus, loop_chunks)


class _Builder:
    """Accumulates operations and scratch slots while walking the trees."""

    def __init__(self, num_gpus: int) -> None:
        self.transfers: list[Transfer] = []
        self.local_ops: list[LocalOp] = []
        self.scratch = [0] * num_gpus

    def scratch_span(self, gpu: int, cnt: int) -> Span:
        span = Span("s", self.scratch[gpu], cnt)
        self.scratch[gpu] += cnt
        return span

    def transfer(self, key: Key, src: int, dst: int, source: Span, target: Span, hop: _Hop) -> int:
        self.transfers.append(Transfer(key, src, dst, source, target, hop.plane, hop.bandwidth))
        return len(self.transfers) - 1

    def local(
        self,
        key: Key,
        gpu: int,
        kind: Literal["cpy", "re"],
        source: Span,
        target: Span,
        host: tuple[int, Literal["send", "recv"]],
    ) -> None:
        self.local_ops.append(LocalOp(key, gpu, kind, source, target, host))


def build_plan(
    forest: Forest,
    coll: str,
    *,
    reduce_forest: Forest | None = None,
    instances: int = 1,
    inplace: bool = True,
    outofplace: bool = True,
    planes: dict[str, int] | None = None,
    arc_bandwidths: Mapping[tuple[str, str], Fraction] | None = None,
    max_piece: int = MAX_CNT,
    loop_chunks: int | None = None,
) -> Plan:
    """Lower ``forest`` to the keyed operations of ``coll`` (allgather, reducescatter or allreduce).

    Allreduce reduces over ``reduce_forest`` when given — a forest solved on the reversed fabric
    (``solve(reverse=True)``), whose trees read backwards are aggregation trees on the fast arcs of
    reduce-scatter — and broadcasts over ``forest``; without it both halves use ``forest``, the
    aggregation running on its reversed arcs (right where the fabric is symmetric). A program marked
    both in-place and out-of-place must be right under both aliasings: the root's
    copy of its own input into the output is then kept (it is a harmless self-copy in place); a
    program for in-place calls only leaves it out. ``arc_bandwidths`` (GB/s per physical arc, by node
    names, as :meth:`Topology.arc_bandwidths`) gives every transfer the bandwidth of its path.
    ``loop_chunks`` (allreduce only): the chunks per instance, shared among the roots as evenly as
    they allow (:func:`~collc.lowering.layout.spread_shares`), instead of every root's
    :func:`chunks_per_root`; a power of two lets a file on a fabric of any size serve power-of-two
    counts.
    """
    if coll not in COLLECTIVES:
        raise InvariantError(f"cannot lower collective {coll!r}")
    if not 1 <= max_piece <= MAX_CNT:
        raise InvariantError(f"pieces of {max_piece} chunks: the runtime allows 1 to {MAX_CNT}")
    if reduce_forest is not None:
        _check_reduce_forest(forest, reduce_forest, coll)
    num_gpus = forest.num_gpus
    shares = root_shares(forest, coll, reduce_forest, loop_chunks)
    per_root = shares[0] * instances  # the per-rank block of allgather and reduce-scatter (equal shares)
    nchunks = sum(shares) * instances
    links = _Links(planes or {}, arc_bandwidths)
    copy_own_input = outofplace
    builder = _Builder(num_gpus)
    if coll == "allgather":
        for walk in _walks(forest, shares, instances, max_piece, links):
            _allgather(builder, walk, copy_own_input)
    else:
        for walk in _walks(reduce_forest or forest, shares, instances, max_piece, links):
            _reduce(builder, walk, coll, copy_own_input)
    if coll == "allreduce":
        for walk in _walks(forest, shares, instances, max_piece, links):
            _broadcast(builder, walk)
    i_chunks = per_root if coll == "allgather" else nchunks
    o_chunks = per_root if coll == "reducescatter" else nchunks
    return Plan(
        coll,
        num_gpus,
        nchunks,
        tuple(builder.transfers),
        tuple(builder.local_ops),
        i_chunks,
        o_chunks,
        tuple(builder.scratch),
    )


def _check_reduce_forest(forest: Forest, reduce_forest: Forest, coll: str) -> None:
    """A separate reduce forest is allreduce's, solved on the reversed fabric, over the same GPUs."""
    if coll != "allreduce":
        raise InvariantError(f"a separate reduce forest is for allreduce, not {coll}")
    if not reduce_forest.reversed:
        raise InvariantError("the reduce forest must be solved on the reversed fabric (solve(reverse=True))")
    if reduce_forest.num_gpus != forest.num_gpus:
        raise InvariantError(
            f"the reduce forest spans {reduce_forest.num_gpus} GPUs, the broadcast forest {forest.num_gpus}"
        )


@dataclass(frozen=True)
class _Unit:
    """One piece of one instance of one tree: ``cnt`` chunks at shard offset ``local``, global ``chunk``."""

    tree: int
    instance: int
    piece: int
    root: int
    local: int
    chunk: int
    cnt: int

    def key(self, phase: int, level: int, role: int = 0) -> Key:
        return (phase, level, self.tree, self.instance, self.piece, role)


@dataclass(frozen=True)
class _Hop:
    """What a transfer between two neighbours of a tree crosses: its plane and its path's bandwidth."""

    plane: int | None
    bandwidth: Fraction | None


@dataclass(frozen=True)
class _Links:
    """The fabric facts a plan records per transfer: network planes and arc bandwidths (if given).

    Every tree of a forest reuses the same few paths, so each path's hops are worked out once.
    """

    planes: dict[str, int]
    arc_bandwidths: Mapping[tuple[str, str], Fraction] | None
    known: dict[tuple[str, ...], tuple[_Hop, _Hop]] = field(default_factory=dict, compare=False)

    def hops(self, tree: Tree) -> dict[tuple[int, int], _Hop]:
        """Per ``(sender, receiver)``: a tree edge broadcast along its path, or aggregated against it.

        The plane is the path's either way (its first plane switch in the edge's direction); the
        bandwidth is that of the arcs the data crosses (``path`` reversed when aggregating).
        """
        hops = {}
        for edge in tree.edges:
            down, up = self.known.get(edge.path) or self._path_hops(edge.path)
            hops[(edge.src, edge.dst)] = down
            hops[(edge.dst, edge.src)] = up
        return hops

    def _path_hops(self, path: tuple[str, ...]) -> tuple[_Hop, _Hop]:
        """The hops along ``path`` and against it (remembered)."""
        plane = path_plane(path, self.planes)
        rates = self.arc_bandwidths
        down = _Hop(plane, None if rates is None else path_bandwidth(path, rates))
        up = _Hop(plane, None if rates is None else path_bandwidth(path[::-1], rates))
        self.known[path] = (down, up)
        return down, up


@dataclass(frozen=True)
class _Walk:
    """One unit with the shape of its tree and what each hop of it crosses."""

    unit: _Unit
    shape: _Shape
    hops: dict[tuple[int, int], _Hop]


def _walks(
    forest: Forest, shares: Sequence[int], instances: int, max_piece: int, links: _Links
) -> Iterator[_Walk]:
    """Every piece of every instance of every tree, in forest order (docs/lowering.md §2 layout).

    ``shares`` are the roots' chunks per instance (:mod:`collc.lowering.layout`): root ``r``'s chunks
    follow those of the roots before it, instance by instance, and inside an instance its trees own
    consecutive runs of :func:`~collc.lowering.layout.tree_chunks` chunks in forest order.
    """
    counts = tree_chunks(forest, shares)
    bases = [0]
    for share in shares:
        bases.append(bases[-1] + share * instances)
    starts, used = [], [0] * forest.num_gpus
    for tree, count in zip(forest.trees, counts, strict=True):
        starts.append(used[tree.root])
        used[tree.root] += count
    for tree_index, tree in enumerate(forest.trees):
        shape = tree_shape(tree, forest.num_gpus)
        hops = links.hops(tree)
        for instance in range(instances):
            for piece, (start, cnt) in enumerate(split_pieces(counts[tree_index], max_piece)):
                local = instance * shares[tree.root] + starts[tree_index] + start
                chunk = bases[tree.root] + local
                yield _Walk(_Unit(tree_index, instance, piece, tree.root, local, chunk, cnt), shape, hops)


def _allgather(builder: _Builder, walk: _Walk, copy_own_input: bool) -> None:
    """Broadcast down the tree; every GPU sends from ``o`` except a root that skips the copy.

    When the root copies its input into ``o`` (out-of-place files), its sends read that copy: in a
    file that is also in-place the copy writes the very chunk the sends read, so the sends must be
    ordered after it (the last-writer table of :mod:`collc.lowering.emit` adds those waits).
    """
    unit, shape = walk.unit, walk.shape
    first_send = None
    output = Span("o", unit.chunk, unit.cnt)
    for node in _bfs(unit.root, shape):
        for child in shape.children[node]:
            own_input = node == unit.root and not copy_own_input
            source = Span("i", unit.local, unit.cnt) if own_input else output
            key = unit.key(DOWN, 2 * shape.depth[child])
            index = builder.transfer(
                key, node, child, source, Span("o", unit.chunk, unit.cnt), walk.hops[(node, child)]
            )
            first_send = index if first_send is None else first_send
    if copy_own_input:
        builder.local(
            unit.key(DOWN, 0),
            unit.root,
            "cpy",
            Span("i", unit.local, unit.cnt),
            Span("o", unit.chunk, unit.cnt),
            (first_send, "send"),
        )


def _reduce(builder: _Builder, walk: _Walk, coll: str, copy_own_input: bool) -> None:
    """Aggregate towards the root along reversed tree edges into the root's ``o``.

    Each GPU receives every child's partial sum into its own scratch slot, folds its input and the
    other children's slots into the first child's slot with ``re`` and sends that slot up; a leaf
    sends its input directly. The root folds everything into the output.
    """
    unit, shape = walk.unit, walk.shape
    own = Span("i", unit.chunk, unit.cnt)
    received: dict[int, tuple[Span, int]] = {}  # child -> (scratch span at its parent, transfer index)
    for node in reversed(_bfs(unit.root, shape)):
        if node == unit.root:
            continue
        kids = shape.children[node]
        parent = shape.parent[node]
        source = received[kids[0]][0] if kids else own
        target = builder.scratch_span(parent, unit.cnt)
        key = unit.key(UP, -2 * shape.depth[node])
        index = builder.transfer(key, node, parent, source, target, walk.hops[(node, parent)])
        received[node] = (target, index)
        if kids:
            folded = [own] + [received[kid][0] for kid in kids[1:]]
            _fold(builder, unit, node, shape.depth[node], source, folded, (index, "send"))
    kids = shape.children[unit.root]
    first_recv = received[kids[0]][1]
    result = Span("o", unit.local if coll == "reducescatter" else unit.chunk, unit.cnt)
    if copy_own_input:
        builder.local(unit.key(UP, -1, 0), unit.root, "cpy", own, result, (first_recv, "recv"))
    folded = [received[kid][0] for kid in kids]
    _fold(builder, unit, unit.root, 0, result, folded, (first_recv, "recv"))


def _fold(builder: _Builder, unit: _Unit, gpu: int, depth: int, accumulator: Span, sources, host) -> None:
    """``re`` every source into ``accumulator`` on ``gpu`` (at ``depth`` in the tree).

    The root's folds (level ``-1``) follow the receives from its children (level ``-2``) and its
    ``cpy`` (role 0). An inner GPU's folds share the level ``-2·depth`` of its send to the parent,
    with roles ``-len(sources) … -1`` right before that send's role 0: they still follow the
    receives from the children (``-2·depth - 2``), and on the send's threadblock each tree's folds
    sit right before that tree's send, so a send waits only for its own tree's data, not for the
    folds of every other tree on the lane (docs/lowering.md §3).
    """
    if depth == 0:
        level, first_role = -1, 1
    else:
        level, first_role = -2 * depth, -len(sources)
    for role, source in enumerate(sources, start=first_role):
        builder.local(unit.key(UP, level, role), gpu, "re", source, accumulator, host)


def _broadcast(builder: _Builder, walk: _Walk) -> None:
    """Allreduce's second half: forward the root's reduced result in ``o`` down the tree, in ``o``.

    The root's folds (:func:`_reduce`) leave the reduced chunks in ``o`` at their global offset;
    every GPU receives them into the same place and forwards from there.
    """
    unit, shape = walk.unit, walk.shape
    result = Span("o", unit.chunk, unit.cnt)
    for node in _bfs(unit.root, shape):
        for child in shape.children[node]:
            key = unit.key(DOWN, 2 * shape.depth[child])
            builder.transfer(key, node, child, result, result, walk.hops[(node, child)])


def _bfs(root: int, shape: _Shape) -> list[int]:
    order = [root]
    for node in order:
        order.extend(shape.children[node])
    return order
