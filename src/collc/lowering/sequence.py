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

from collc.lowering.plan import Key, Plan, Span

TICKS = 1 << 20  # time resolution of the list schedule: ticks per pipelining iteration


def schedule_keys(
    plan: Plan, lane_of: Sequence[int], predecessors: list[set[int]]
) -> tuple[tuple[Key, ...], tuple[Key, ...]]:
    """New keys (transfers, local ops): the rank of each operation's start in the list schedule.

    ``lane_of`` gives every transfer's lane, ``predecessors`` the plan's :func:`hazards`.
    """
    keys = [t.key for t in plan.transfers] + [op.key for op in plan.local_ops]
    start = _list_schedule(plan, lane_of, keys, predecessors)
    ranks = {
        node: (rank,)
        for rank, node in enumerate(sorted(range(len(keys)), key=lambda n: (start[n], keys[n], n)))
    }
    count = len(plan.transfers)
    return (
        tuple(ranks[n] for n in range(count)),
        tuple(ranks[n] for n in range(count, len(keys))),
    )


def hazards(plan: Plan) -> list[set[int]]:
    """Per operation, the operations it must follow: RAW, WAW and WAR on every chunk of every GPU.

    Nodes are transfers ``0..T-1`` then local ops ``T..``; a transfer reads its source on the sender
    and writes its target on the receiver. Accesses are taken per GPU in plan-key order, which is
    the order the program's semantics are defined by. One pass over the accesses with a last writer
    and the readers since then per chunk: linear in the chunks touched.
    """
    count = len(plan.transfers)
    accesses: list[list[_Access]] = [[] for _ in range(plan.num_gpus)]
    for index, transfer in enumerate(plan.transfers):
        accesses[transfer.src].append((transfer.key, index, (transfer.source,), ()))
        accesses[transfer.dst].append((transfer.key, index, (), (transfer.target,)))
    for index, op in enumerate(plan.local_ops):
        reads = (op.source,) if op.type == "cpy" else (op.source, op.target)
        accesses[op.gpu].append((op.key, count + index, reads, (op.target,)))
    predecessors: list[set[int]] = [set() for _ in range(count + len(plan.local_ops))]
    for per_gpu in accesses:
        per_gpu.sort(key=_access_order)
        last_writer: dict[tuple[str, int], int] = {}
        readers: dict[tuple[str, int], list[int]] = {}
        for _, node, reads, writes in per_gpu:
            before = predecessors[node]
            for span in reads:
                for chunk in range(span.off, span.off + span.cnt):
                    slot = (span.buf, chunk)
                    writer = last_writer.get(slot)
                    if writer is not None:
                        before.add(writer)
                    readers.setdefault(slot, []).append(node)
            for span in writes:
                for chunk in range(span.off, span.off + span.cnt):
                    slot = (span.buf, chunk)
                    writer = last_writer.get(slot)
                    if writer is not None:
                        before.add(writer)
                    before.update(readers.pop(slot, ()))
                    last_writer[slot] = node
            before.discard(node)
    return predecessors


# One chunk access of an operation on one GPU: (plan key, node, spans read, spans written).
_Access = tuple[Key, int, tuple[Span, ...], tuple[Span, ...]]


def _access_order(access: _Access) -> tuple[Key, int]:
    return access[0], access[1]


def _list_schedule(
    plan: Plan, lane_of: Sequence[int], keys: list[Key], predecessors: list[set[int]]
) -> list[int]:
    """Start time of every operation (in :data:`TICKS` per iteration) when lanes send one at a time.

    Integer ticks keep the schedule exact and fast; a transfer lasts at least one tick, so it
    starts strictly after everything it depends on has started.
    """
    count = len(plan.transfers)
    lane_total: dict[int, int] = {}
    for index, transfer in enumerate(plan.transfers):
        lane = lane_of[index]
        lane_total[lane] = lane_total.get(lane, 0) + transfer.source.cnt
    successors: list[list[int]] = [[] for _ in keys]
    waiting = [len(preds) for preds in predecessors]
    for node, preds in enumerate(predecessors):
        for pred in preds:
            successors[pred].append(node)
    start = [0] * len(keys)
    pending: dict[int, list[tuple[int, Key, int]]] = {}  # lane -> ready transfers
    lane_busy: set[int] = set()
    touched: set[int] = set()  # lanes that got a ready transfer or became free
    completions: list[tuple[int, Key, int]] = []
    now = 0

    def make_ready(node: int) -> None:
        if node >= count:  # local op: no lane, no duration
            start[node] = now
            heapq.heappush(completions, (now, keys[node], node))
        else:
            lane = lane_of[node]
            heapq.heappush(pending.setdefault(lane, []), (now, keys[node], node))
            touched.add(lane)

    for node in range(len(keys)):
        if waiting[node] == 0:
            make_ready(node)
    while True:
        for lane in sorted(touched):
            queue = pending.get(lane)
            if lane not in lane_busy and queue:
                _, _, node = heapq.heappop(queue)
                start[node] = now
                lane_busy.add(lane)
                duration = max(1, plan.transfers[node].source.cnt * TICKS // lane_total[lane])
                heapq.heappush(completions, (now + duration, keys[node], node))
        touched.clear()
        if not completions:
            break
        now = completions[0][0]
        while completions and completions[0][0] == now:
            _, _, node = heapq.heappop(completions)
            if node < count:
                lane_busy.discard(lane_of[node])
                touched.add(lane_of[node])
            for successor in successors[node]:
                waiting[successor] -= 1
                if waiting[successor] == 0:
                    make_ready(successor)
    return start
