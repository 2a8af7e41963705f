"""Stage 2b of the lowering: the order of the steps inside every threadblock (docs/lowering.md §4).

The plan's keys give one valid order (increasing along the data flow), but within one tree depth
they order transfers by tree index, which has nothing to do with *when* their data arrives: a
threadblock forwarding the trees of several roots may wait for the last message of one upstream
threadblock before its first step, so every hop of a tree costs up to a whole pipelining iteration
and a 1 GiB call pays one to three iterations of pipeline fill.

This stage list-schedules one iteration of the plan on its lanes: every lane sends its transfers
one after the other, each taking its share of the lane's traffic (``cnt / lane total`` of an
iteration), a transfer may start once everything it depends on (read-after-write, write-after-write
and write-after-read on every chunk, per GPU) has finished, and a lane with several transfers ready
takes the one that became ready first. Steps are then emitted in the order of their scheduled start
(ties by plan key). That order is a linear extension of the dependency graph, like the keys, so the
deadlock argument of §4 carries over; it is integer arithmetic, hence deterministic.

Both passes run once per plan or emission over every chunk of every operation (a third of a million
operations at 128 GPUs), so they are compiled (numba) over flat arrays of the plan
(:attr:`collc.lowering.plan.Plan.ends`); the plan order is one sort of the keys, shared by both
(:class:`Hazards`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np
from numba import njit

from collc.heaps import heap_pop, heap_push
from collc.kernels import kernel
from collc.lowering.plan import Plan
from collc.msccl.program import STEP_TYPES

TICKS = 1 << 20  # time resolution of the list schedule: ticks per pipelining iteration


class Hazards(NamedTuple):
    """What every operation of a plan must follow, and the plan order.

    Nodes are transfers ``0..T-1`` then local ops ``T..``. The predecessors of node ``v`` are
    ``indices[indptr[v]:indptr[v + 1]]`` (distinct, never ``v``); ``by_key[v]`` is ``v``'s position
    when all nodes are sorted by (plan key, node).
    """

    by_key: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray

    def of(self, node: int) -> set[int]:
        """The predecessors of ``node``."""
        return set(self.indices[self.indptr[node] : self.indptr[node + 1]].tolist())

    def sets(self) -> list[set[int]]:
        """The predecessors of every node."""
        return [self.of(node) for node in range(len(self.by_key))]

    def with_edges(self, extra: Mapping[int, Sequence[int]]) -> Hazards:
        """These hazards with every node of ``extra`` also following the nodes it maps to."""
        if not extra:
            return self
        indptr, indices = _joined_rows(self.indptr, self.indices, *rows_of(extra, len(self.by_key)))
        return Hazards(self.by_key, indptr, indices)


def rows_of(mapping: Mapping[int, Sequence[int]], nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """``mapping`` (node -> the nodes it follows) as rows per node, in node order (CSR: node ``v``
    maps to ``idx[ptr[v]:ptr[v + 1]]``), built without a Python object per pair:
    :func:`collc.lowering.assign.feeders_first` maps each of a GPU's sends to one shared list of its
    NIC-feeding sends, 67 million pairs in the 1,024-GPU rail reduce-scatter, whose tuples took 7 GB."""
    keys = sorted(mapping)
    ptr = np.zeros(nodes + 1, dtype=np.int64)
    ptr[np.asarray(keys, dtype=np.int64) + 1] = [len(mapping[key]) for key in keys]
    np.cumsum(ptr, out=ptr)
    idx = np.fromiter(chain.from_iterable(mapping[key] for key in keys), dtype=np.int64, count=int(ptr[-1]))
    return ptr, idx


def schedule_keys(plan: Plan, lane_of: Sequence[int], hazards: Hazards) -> tuple[list[int], list[int]]:
    """New keys (transfers, local ops): the rank of each operation's start in the list schedule.

    Ties are broken by plan key, then by node, so the ranks of all operations are distinct.
    ``lane_of`` gives every transfer's lane, ``hazards`` the plan's :func:`hazards`.
    """
    count = len(plan.transfers)
    lanes = np.asarray(lane_of, dtype=np.int64)
    cnt = np.fromiter((transfer.source.cnt for transfer in plan.transfers), dtype=np.int64, count=count)
    start = _list_schedule(count, lanes, cnt, hazards.by_key, hazards.indptr, hazards.indices)
    ranks = np.empty(len(start), dtype=np.int64)
    ranks[np.lexsort((hazards.by_key, start))] = np.arange(len(start))
    every = ranks.tolist()
    return every[:count], every[count:]


def hazards(plan: Plan) -> Hazards:
    """Per operation, the operations it must follow: RAW, WAW and WAR on every chunk of every GPU.

    A transfer reads its source on the sender and writes its target on the receiver. Accesses are
    taken per GPU in plan-key order, which is the order the program's semantics are defined by. One
    pass over the accesses with a last writer and the readers since then per chunk: linear in the
    chunks touched.
    """
    keys = [transfer.key for transfer in plan.transfers] + [op.key for op in plan.local_ops]
    order = sorted(range(len(keys)), key=keys.__getitem__)  # stable: ties in node order
    by_key = np.empty(len(keys), dtype=np.int64)
    by_key[order] = np.arange(len(keys))
    accesses = _accesses(plan, by_key)
    heads, tails = _hazard_edges(accesses, plan.ends.buffer_bases())
    indptr, indices = _rows(len(keys), heads, tails)
    return Hazards(by_key, indptr, indices)


_SEND, _RECV, _RE = (STEP_TYPES.index(kind) for kind in ("s", "r", "re"))


def _accesses(plan: Plan, by_key: np.ndarray) -> np.ndarray:
    """Every GPU's accesses in plan order (by GPU, then ``by_key``), one row each: ``(gpu, node,
    read, read, write)``, each span as (buffer index, offset, count), unused ones empty: a send reads
    its source, a receive writes its target, a ``cpy`` reads its source and a ``re`` its source and
    target, and both write their target (:attr:`collc.lowering.plan.Plan.ends`)."""
    ends = plan.ends
    none = np.zeros_like(ends.cnt)
    read = (ends.src_buf, ends.src_off, np.where(ends.kind != _RECV, ends.cnt, none))
    also_read = (ends.dst_buf, ends.dst_off, np.where(ends.kind == _RE, ends.cnt, none))
    write = (ends.dst_buf, ends.dst_off, np.where(ends.kind != _SEND, ends.cnt, none))
    table = np.stack((ends.gpu, ends.node, *read, *also_read, *write), axis=1)
    return table[np.lexsort((by_key[ends.node], ends.gpu))]


@njit(cache=True)
def _hazard_edges(accesses: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hazards of ``accesses`` (:func:`_accesses`, grouped by GPU) as edges ``heads[e]`` follows
    ``tails[e]`` (repeats possible). One table of chunks (``base``:
    :meth:`collc.lowering.plan.Ends.buffer_bases`) is reused GPU after GPU: an entry stamped with another
    GPU is empty. Readers since the last write are linked lists per chunk."""
    size = base[-1]
    read_chunks = 0
    write_chunks = 0
    for row in range(accesses.shape[0]):
        read_chunks += accesses[row, 4] + accesses[row, 7]
        write_chunks += accesses[row, 10]
    heads = np.empty(2 * read_chunks + write_chunks, dtype=np.int64)
    tails = np.empty_like(heads)
    edges = 0
    stamp = np.full(size, -1, dtype=np.int64)
    writer = np.full(size, -1, dtype=np.int64)
    first_reader = np.full(size, -1, dtype=np.int64)
    reader = np.empty(max(read_chunks, 1), dtype=np.int64)
    next_reader = np.empty_like(reader)
    readers = 0
    for row in range(accesses.shape[0]):
        gpu, node = accesses[row, 0], accesses[row, 1]
        for column in (2, 5, 8):
            first = base[accesses[row, column]] + accesses[row, column + 1]
            writes = column == 8
            for chunk in range(first, first + accesses[row, column + 2]):
                if stamp[chunk] != gpu:
                    stamp[chunk], writer[chunk], first_reader[chunk] = gpu, -1, -1
                if writer[chunk] >= 0:
                    heads[edges], tails[edges] = node, writer[chunk]
                    edges += 1
                if writes:
                    link = first_reader[chunk]
                    while link >= 0:
                        heads[edges], tails[edges] = node, reader[link]
                        edges += 1
                        link = next_reader[link]
                    writer[chunk], first_reader[chunk] = node, -1
                else:
                    reader[readers], next_reader[readers] = node, first_reader[chunk]
                    first_reader[chunk] = readers
                    readers += 1
    return heads[:edges], tails[:edges]


@njit(cache=True)
def _joined_rows(
    first_ptr: np.ndarray, first: np.ndarray, second_ptr: np.ndarray, second: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of rows over the same nodes (CSR) as one: each node's row of ``first``, then its row of
    ``second``, repeats and self-edges dropped, in that order. Built in place of one edge list sorted
    by head, which at 67 million added edges took two more copies of them."""
    nodes = len(first_ptr) - 1
    indptr = np.zeros(nodes + 1, dtype=np.int64)
    indices = np.empty(len(first) + len(second), dtype=np.int64)
    seen = np.full(nodes, -1, dtype=np.int64)
    kept = 0
    for node in range(nodes):
        kept = _keep_new(first[first_ptr[node] : first_ptr[node + 1]], node, seen, indices, kept)
        kept = _keep_new(second[second_ptr[node] : second_ptr[node + 1]], node, seen, indices, kept)
        indptr[node + 1] = kept
    return indptr, indices[:kept].copy()


@njit(cache=True)
def _keep_new(row: np.ndarray, node: int, seen: np.ndarray, out: np.ndarray, kept: int) -> int:
    """Append to ``out`` from ``kept`` on the tails of ``row`` other than ``node`` not yet seen in its
    row (``seen[tail] == node``); returns the new count. ``out`` may be the array ``row`` lies in, as
    long as ``kept`` does not pass the row's start: each tail is read before its place is written."""
    for tail in row:
        if tail != node and seen[tail] != node:
            seen[tail] = node
            out[kept] = tail
            kept += 1
    return kept


@njit(cache=True)
def _rows(nodes: int, heads: np.ndarray, tails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges as rows per head (CSR), repeats and self-edges dropped, each row in edge order."""
    indptr = np.zeros(nodes + 1, dtype=np.int64)
    for head in heads:
        indptr[head + 1] += 1
    for node in range(nodes):
        indptr[node + 1] += indptr[node]
    filled = indptr[:-1].copy()
    indices = np.empty(len(heads), dtype=np.int64)
    for edge in range(len(heads)):
        indices[filled[heads[edge]]] = tails[edge]
        filled[heads[edge]] += 1
    seen = np.full(nodes, -1, dtype=np.int64)
    kept = 0
    compact = np.zeros(nodes + 1, dtype=np.int64)
    for node in range(nodes):  # compacted in place: a row's tails move down, never up
        kept = _keep_new(indices[indptr[node] : indptr[node + 1]], node, seen, indices, kept)
        compact[node + 1] = kept
    return compact, indices[:kept].copy()


@njit(cache=True)
def _list_schedule(
    count: int,
    lane_of: np.ndarray,
    cnt: np.ndarray,
    by_key: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
) -> np.ndarray:
    """Start time of every operation (in :data:`TICKS` per iteration) when lanes send one at a time.

    Integer ticks keep the schedule exact and fast; a transfer lasts at least one tick, so it
    starts strictly after everything it depends on has started. Among transfers ready on a lane
    the earliest ready goes first, ties by plan order (``by_key``); operations that end at the same
    time complete in plan order. Every lane's ready transfers are a heap in a slice of one array.
    """
    nodes = len(by_key)
    lanes = lane_of.max() + 1 if count else 0
    lane_total = np.zeros(lanes, dtype=np.int64)
    lane_size = np.zeros(lanes, dtype=np.int64)
    for node in range(count):
        lane_total[lane_of[node]] += cnt[node]
        lane_size[lane_of[node]] += 1
    lane_start = np.zeros(lanes + 1, dtype=np.int64)
    lane_start[1:] = np.cumsum(lane_size)
    successors_ptr = np.zeros(nodes + 1, dtype=np.int64)
    for edge in range(len(indices)):
        successors_ptr[indices[edge] + 1] += 1
    for node in range(nodes):
        successors_ptr[node + 1] += successors_ptr[node]
    filled = successors_ptr[:-1].copy()
    successors = np.empty(len(indices), dtype=np.int64)
    for node in range(nodes):
        for edge in range(indptr[node], indptr[node + 1]):
            successors[filled[indices[edge]]] = node
            filled[indices[edge]] += 1
    waiting = indptr[1:] - indptr[:-1]
    start = np.zeros(nodes, dtype=np.int64)
    ready = np.zeros(nodes, dtype=np.int64)  # when a transfer became ready: its lane's heap key
    end = np.zeros(nodes, dtype=np.int64)  # when an operation ends: the completions' heap key
    pending = np.empty(max(count, 1), dtype=np.int64)
    pending_size = np.zeros(lanes, dtype=np.int64)
    busy = np.zeros(lanes, dtype=np.bool_)
    touched = np.empty(lanes, dtype=np.int64)
    is_touched = np.zeros(lanes, dtype=np.bool_)
    num_touched = 0
    completions = np.empty(nodes, dtype=np.int64)
    num_completions = 0
    now = 0
    queues = _Queues(
        lane_of,
        lane_start,
        start,
        ready,
        end,
        pending,
        pending_size,
        by_key,
        completions,
        touched,
        is_touched,
    )
    for node in range(nodes):
        if waiting[node] == 0:
            num_completions, num_touched = _make_ready(node, now, count, queues, num_completions, num_touched)
    while True:
        for position in range(num_touched):
            lane = touched[position]
            is_touched[lane] = False
            if not busy[lane] and pending_size[lane]:
                queue = pending[lane_start[lane] : lane_start[lane + 1]]
                node = queue[0]
                pending_size[lane] = heap_pop(queue, pending_size[lane], ready, by_key)
                start[node] = now
                busy[lane] = True
                end[node] = now + max(1, cnt[node] * TICKS // lane_total[lane])
                num_completions = heap_push(completions, num_completions, node, end, by_key)
        num_touched = 0
        if not num_completions:
            break
        now = end[completions[0]]
        while num_completions and end[completions[0]] == now:
            node = completions[0]
            num_completions = heap_pop(completions, num_completions, end, by_key)
            if node < count:
                lane = lane_of[node]
                busy[lane] = False
                if not is_touched[lane]:
                    is_touched[lane] = True
                    touched[num_touched] = lane
                    num_touched += 1
            for edge in range(successors_ptr[node], successors_ptr[node + 1]):
                successor = successors[edge]
                waiting[successor] -= 1
                if waiting[successor] == 0:
                    num_completions, num_touched = _make_ready(
                        successor, now, count, queues, num_completions, num_touched
                    )
    return start


class _Queues(NamedTuple):
    """The list schedule's per-node times and queues, as :func:`_make_ready` updates them."""

    lane_of: np.ndarray
    lane_start: np.ndarray  # lane l's ready heap is pending[lane_start[l]:lane_start[l + 1]]
    start: np.ndarray
    ready: np.ndarray  # when a transfer became ready: its lane's heap key
    end: np.ndarray  # when an operation ends: the completions' heap key
    pending: np.ndarray
    pending_size: np.ndarray
    by_key: np.ndarray
    completions: np.ndarray
    touched: np.ndarray  # lanes to look at, and whether a lane is among them
    is_touched: np.ndarray


@kernel
def _make_ready(
    node: int, now: int, count: int, queues: _Queues, num_completions: int, num_touched: int
) -> tuple[int, int]:
    """``node`` has nothing left to wait for at ``now``: a local op (no lane, no duration) starts and
    ends now, a transfer joins its lane's ready heap. The new sizes of the completions and touched
    lanes."""
    q = queues
    if node >= count:
        q.start[node] = q.end[node] = now
        return heap_push(q.completions, num_completions, node, q.end, q.by_key), num_touched
    lane = q.lane_of[node]
    q.ready[node] = now
    queue = q.pending[q.lane_start[lane] : q.lane_start[lane + 1]]
    q.pending_size[lane] = heap_push(queue, q.pending_size[lane], node, q.ready, q.by_key)
    if not q.is_touched[lane]:
        q.is_touched[lane] = True
        q.touched[num_touched] = lane
        num_touched += 1
    return num_completions, num_touched
