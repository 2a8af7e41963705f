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
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from collc.lowering.plan import Plan, Span
from collc.msccl.program import BUFFERS

TICKS = 1 << 20  # time resolution of the list schedule: ticks per pipelining iteration


def schedule_keys(
    plan: Plan, lane_of: Sequence[int], predecessors: list[set[int]]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """New keys (transfers, local ops): the rank of each operation's start in the list schedule.

    Ties are broken by plan key, then by node, so the ranks of all operations are distinct.
    ``lane_of`` gives every transfer's lane, ``predecessors`` the plan's :func:`hazards`.
    """
    by_key = _plan_order(plan)
    start = _list_schedule(plan, lane_of, by_key, predecessors)
    nodes = len(by_key)
    when = [time * nodes + position for time, position in zip(start, by_key, strict=True)]
    ranks = [0] * nodes
    for rank, node in enumerate(sorted(range(nodes), key=when.__getitem__)):
        ranks[node] = rank
    count = len(plan.transfers)
    return tuple(ranks[:count]), tuple(ranks[count:])


def _plan_order(plan: Plan) -> list[int]:
    """Per node (transfers, then local ops), its position when all are sorted by (plan key, node)."""
    keys = [transfer.key for transfer in plan.transfers] + [op.key for op in plan.local_ops]
    position = [0] * len(keys)
    for rank, node in enumerate(sorted(range(len(keys)), key=keys.__getitem__)):  # stable: ties by node
        position[node] = rank
    return position


def hazards(plan: Plan) -> list[set[int]]:
    """Per operation, the operations it must follow: RAW, WAW and WAR on every chunk of every GPU.

    Nodes are transfers ``0..T-1`` then local ops ``T..``; a transfer reads its source on the sender
    and writes its target on the receiver. Accesses are taken per GPU in plan-key order, which is
    the order the program's semantics are defined by. One pass over the accesses with a last writer
    and the readers since then per chunk: linear in the chunks touched.
    """
    transfers, local_ops = plan.transfers, plan.local_ops
    count = len(transfers)
    keys = [transfer.key for transfer in transfers] + [op.key for op in local_ops]
    accesses: list[list[_Access]] = [[] for _ in range(plan.num_gpus)]
    for node in sorted(range(len(keys)), key=keys.__getitem__):  # stable: ties in node order
        if node < count:
            transfer = transfers[node]
            accesses[transfer.src].append((node, (transfer.source,), ()))
            accesses[transfer.dst].append((node, (), (transfer.target,)))
        else:
            op = local_ops[node - count]
            reads = (op.source,) if op.type == "cpy" else (op.source, op.target)
            accesses[op.gpu].append((node, reads, (op.target,)))
    predecessors: list[set[int]] = [set() for _ in range(count + len(plan.local_ops))]
    for per_gpu in accesses:
        last_writer: dict[str, dict[int, int]] = {buf: {} for buf in BUFFERS}  # buffer -> chunk -> node
        readers: dict[str, dict[int, list[int]]] = {buf: {} for buf in BUFFERS}  # since the last write
        for node, reads, writes in per_gpu:
            before = predecessors[node]
            for span in reads:
                written, read = last_writer[span.buf], readers[span.buf]
                for chunk in range(span.off, span.off + span.cnt):
                    writer = written.get(chunk)
                    if writer is not None:
                        before.add(writer)
                    if chunk in read:
                        read[chunk].append(node)
                    else:
                        read[chunk] = [node]
            for span in writes:
                written, read = last_writer[span.buf], readers[span.buf]
                for chunk in range(span.off, span.off + span.cnt):
                    writer = written.get(chunk)
                    if writer is not None:
                        before.add(writer)
                    if chunk in read:
                        before.update(read.pop(chunk))
                    written[chunk] = node
            before.discard(node)
    return predecessors


# The accesses of an operation on one GPU: (node, spans read, spans written).
_Access = tuple[int, tuple[Span, ...], tuple[Span, ...]]


def _list_schedule(
    plan: Plan, lane_of: Sequence[int], by_key: list[int], predecessors: list[set[int]]
) -> list[int]:
    """Start time of every operation (in :data:`TICKS` per iteration) when lanes send one at a time.

    Integer ticks keep the schedule exact and fast; a transfer lasts at least one tick, so it
    starts strictly after everything it depends on has started. Among transfers ready on a lane
    the earliest ready goes first, ties by plan order (``by_key``, :func:`_plan_order`). The queues
    hold ``time · nodes + by_key`` as one integer, which orders exactly like the pair.
    """
    transfers = plan.transfers
    count = len(transfers)
    nodes = len(by_key)
    node_at = [0] * nodes
    for node, position in enumerate(by_key):
        node_at[position] = node
    lane_total: dict[int, int] = {}
    for index, transfer in enumerate(transfers):
        lane = lane_of[index]
        lane_total[lane] = lane_total.get(lane, 0) + transfer.source.cnt
    successors: list[list[int]] = [[] for _ in range(nodes)]
    waiting = [len(preds) for preds in predecessors]
    for node, preds in enumerate(predecessors):
        for pred in preds:
            successors[pred].append(node)
    start = [0] * nodes
    pending: dict[int, list[int]] = {}  # lane -> ready transfers
    lane_busy: set[int] = set()
    touched: set[int] = set()  # lanes that got a ready transfer or became free
    completions: list[int] = []
    now = 0

    def make_ready(node: int) -> None:
        if node >= count:  # local op: no lane, no duration
            start[node] = now
            heapq.heappush(completions, now * nodes + by_key[node])
        else:
            lane = lane_of[node]
            heapq.heappush(pending.setdefault(lane, []), now * nodes + by_key[node])
            touched.add(lane)

    for node in range(nodes):
        if waiting[node] == 0:
            make_ready(node)
    while True:
        for lane in sorted(touched):
            queue = pending.get(lane)
            if lane not in lane_busy and queue:
                node = node_at[heapq.heappop(queue) % nodes]
                start[node] = now
                lane_busy.add(lane)
                duration = max(1, transfers[node].source.cnt * TICKS // lane_total[lane])
                heapq.heappush(completions, (now + duration) * nodes + by_key[node])
        touched.clear()
        if not completions:
            break
        now = completions[0] // nodes
        horizon = (now + 1) * nodes
        while completions and completions[0] < horizon:
            node = node_at[heapq.heappop(completions) % nodes]
            if node < count:
                lane_busy.discard(lane_of[node])
                touched.add(lane_of[node])
            for successor in successors[node]:
                waiting[successor] -= 1
                if waiting[successor] == 0:
                    make_ready(successor)
    return start
