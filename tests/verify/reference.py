"""A deliberately naive reference simulator to cross-check :mod:`collc.verify.simulate` on small cases.

Round-robin instead of event-driven, ``collections.Counter`` multisets instead of bit masks, no
vector clocks: every unfinished threadblock gets one primitive call per round if it can make one,
until a round makes no progress. Out-of-place allreduce and allgather only.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from collc.msccl.program import Algorithm
from collc.verify.fold import Transmission


@dataclass
class Outcome:
    finished: bool
    leftover: bool
    mismatch: bool
    postcondition_holds: bool


def expected(algo: Algorithm, chunk: int) -> Counter:
    if algo.coll == "allreduce":
        return Counter({(q, chunk): 1 for q in range(algo.ngpus)})
    per_rank = algo.nchunksperloop // algo.ngpus
    return Counter({(chunk // per_rank, chunk % per_rank): 1})


def run(
    algo: Algorithm, folded: dict[tuple[int, int], list[Transmission]], depth: int, call_chunks: int
) -> Outcome:
    gpus = {gpu.id: gpu for gpu in algo.gpus}
    tbs = [(rank, tb) for rank in sorted(gpus) for tb in sorted(gpus[rank].tbs, key=lambda t: t.id)]
    memory: dict[tuple[int, str, int], Counter | None] = {}
    for rank in gpus:
        inputs = algo.nchunksperloop if algo.coll == "allreduce" else algo.nchunksperloop // algo.ngpus
        for chunk in range(inputs):
            memory[(rank, "i", chunk)] = Counter({(rank, chunk): 1})
    fifos: dict[tuple[int, int, int], deque] = {}
    pc = {(rank, tb.id): 0 for rank, tb in tbs}
    cursor = dict.fromkeys(pc, 0)
    published = dict.fromkeys(pc, -1)

    def read(rank: int, buffer: str, index: int) -> Counter | None:
        return memory.get((rank, buffer, index))

    def combine(a: Counter | None, b: Counter | None) -> Counter | None:
        return None if a is None or b is None else a + b

    def step_once(rank: int, tb) -> str:
        """'done', 'blocked', 'moved' or 'mismatch'."""
        key = (rank, tb.id)
        transmissions = folded[key]
        if pc[key] >= len(transmissions):
            return "done"
        t = transmissions[pc[key]]
        if cursor[key] == 0 and any(published[(rank, b)] < d for b, d in t.waits):
            return "blocked"
        incoming_fifo = fifos.setdefault((tb.recv, rank, tb.chan), deque())
        outgoing_fifo = fifos.setdefault((rank, tb.send, tb.chan), deque())
        if t.receives and not incoming_fifo:
            return "blocked"
        if t.sends and len(outgoing_fifo) >= depth:
            return "blocked"
        start = cursor[key]
        span = min(call_chunks, t.cnt - start)
        incoming = None
        if t.receives:
            sent_cnt, sent_start, incoming = incoming_fifo.popleft()
            if sent_cnt != t.cnt or sent_start != start:
                return "mismatch"
        out = None
        src = [read(rank, t.srcbuf, t.srcoffs[0] + start + n) for n in range(span)]
        if t.type == "s":
            out = src
        elif t.type in ("r", "rcs"):
            out = incoming
            for n in range(span):
                memory[(rank, t.dstbuf, t.dstoff + start + n)] = incoming[n]
        elif t.type in ("rrs", "rrc", "rrcs"):
            out = [combine(incoming[n], src[n]) for n in range(span)]
            if t.type != "rrs":
                for n in range(span):
                    memory[(rank, t.dstbuf, t.dstoff + start + n)] = out[n]
        elif t.type == "cpy":
            for n in range(span):
                memory[(rank, t.dstbuf, t.dstoff + start + n)] = src[n]
        elif t.type == "re":
            for n in range(span):
                value = read(rank, t.dstbuf, t.dstoff + start + n)
                for offset in t.srcoffs:
                    value = combine(value, read(rank, t.srcbuf, offset + start + n))
                memory[(rank, t.dstbuf, t.dstoff + start + n)] = value
        if t.sends:
            outgoing_fifo.append((t.cnt, start, out))
        cursor[key] = start + span
        if cursor[key] == t.cnt:
            cursor[key] = 0
            pc[key] += 1
            if t.publishes is not None:
                published[key] = t.publishes
        return "moved"

    while True:
        results = [step_once(rank, tb) for rank, tb in tbs]
        if "mismatch" in results:
            return Outcome(False, False, True, False)
        if "moved" not in results:
            break
    finished = all(result == "done" for result in results)
    leftover = any(fifos.values())
    holds = finished and all(
        read(rank, "o", chunk) == expected(algo, chunk)
        for rank in gpus
        for chunk in range(algo.nchunksperloop)
    )
    return Outcome(finished, leftover, False, holds)
