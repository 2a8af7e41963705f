"""Reference implementations of the hazards and the list schedule, in plain Python with sets and
dictionaries, as collc had them before they were compiled (collc.lowering.sequence): the compiled
passes must give the same predecessors and the same start times."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from collc.lowering.plan import Plan
from collc.lowering.sequence import TICKS


def reference_hazards(plan: Plan) -> list[set[int]]:
    """Per node, RAW, WAW and WAR predecessors on every chunk of every GPU, in plan-key order."""
    transfers, local_ops = plan.transfers, plan.local_ops
    count = len(transfers)
    keys = [t.key for t in transfers] + [op.key for op in local_ops]
    accesses: dict[int, list[tuple[int, tuple, tuple]]] = {}
    for node in sorted(range(len(keys)), key=keys.__getitem__):
        if node < count:
            t = transfers[node]
            accesses.setdefault(t.src, []).append((node, (t.source,), ()))
            accesses.setdefault(t.dst, []).append((node, (), (t.target,)))
        else:
            op = local_ops[node - count]
            reads = (op.source,) if op.type == "cpy" else (op.source, op.target)
            accesses.setdefault(op.gpu, []).append((node, reads, (op.target,)))
    predecessors: list[set[int]] = [set() for _ in keys]
    for per_gpu in accesses.values():
        writer: dict[tuple[str, int], int] = {}
        readers: dict[tuple[str, int], list[int]] = {}
        for node, reads, writes in per_gpu:
            for span in reads:
                for chunk in span.chunks():
                    if (span.buf, chunk) in writer:
                        predecessors[node].add(writer[span.buf, chunk])
                    readers.setdefault((span.buf, chunk), []).append(node)
            for span in writes:
                for chunk in span.chunks():
                    if (span.buf, chunk) in writer:
                        predecessors[node].add(writer[span.buf, chunk])
                    predecessors[node].update(readers.pop((span.buf, chunk), []))
                    writer[span.buf, chunk] = node
            predecessors[node].discard(node)
    return predecessors


def reference_start_times(plan: Plan, lane_of: Sequence[int], predecessors: list[set[int]]) -> list[int]:
    """Start time of every node when lanes send one transfer at a time, each for its share of the
    lane's chunks (at least a tick); the earliest ready goes first, ties in plan order."""
    count = len(plan.transfers)
    keys = [t.key for t in plan.transfers] + [op.key for op in plan.local_ops]
    rank = {node: position for position, node in enumerate(sorted(range(len(keys)), key=keys.__getitem__))}
    total: dict[int, int] = {}
    for index, transfer in enumerate(plan.transfers):
        total[lane_of[index]] = total.get(lane_of[index], 0) + transfer.source.cnt
    waiting = [len(p) for p in predecessors]
    successors: list[list[int]] = [[] for _ in keys]
    for node, preds in enumerate(predecessors):
        for pred in preds:
            successors[pred].append(node)
    start = [0] * len(keys)
    pending: dict[int, list[tuple[int, int, int]]] = {}
    busy: set[int] = set()
    running: list[tuple[int, int, int]] = []  # (end, plan rank, node)
    now = 0

    def ready(node: int) -> None:
        if node >= count:
            start[node] = now
            heapq.heappush(running, (now, rank[node], node))
        else:
            heapq.heappush(pending.setdefault(lane_of[node], []), (now, rank[node], node))

    for node in range(len(keys)):
        if not waiting[node]:
            ready(node)
    while True:
        for lane, queue in sorted(pending.items()):
            if lane not in busy and queue:
                _, _, node = heapq.heappop(queue)
                start[node] = now
                busy.add(lane)
                end = now + max(1, plan.transfers[node].source.cnt * TICKS // total[lane])
                heapq.heappush(running, (end, rank[node], node))
        if not running:
            return start
        now = running[0][0]
        while running and running[0][0] == now:
            _, _, node = heapq.heappop(running)
            if node < count:
                busy.discard(lane_of[node])
            for successor in successors[node]:
                waiting[successor] -= 1
                if not waiting[successor]:
                    ready(successor)
