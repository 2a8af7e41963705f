"""A small chunk-level simulator of MSCCL programs, used until collc.verify lands.

Models the executor's steps (dependencies, FIFO) closely enough to catch the lowering's own mistakes:
steps run in order per threadblock, nop waits fold into the next step, a wait on (tb, s) needs a
published position >= s, FIFOs hold ``depth`` messages per (src, dst, chan), data are multisets of
(rank, input chunk).
"""

from __future__ import annotations

from collections import Counter, deque

from collc.msccl.program import RECV_TYPES, SEND_TYPES, Algorithm


def _alias(algo: Algorithm, rank: int, buf: str, index: int, inplace: bool) -> tuple[str, int]:
    if not inplace or buf != "i":
        return buf, index
    per_root = algo.nchunksperloop // algo.ngpus
    if algo.coll == "allgather":
        return "o", rank * per_root + index
    if algo.coll == "reducescatter":
        if rank * per_root <= index < (rank + 1) * per_root:
            return "o", index - rank * per_root
        return "i", index
    return "o", index


def simulate(algo: Algorithm, *, inplace: bool, depth: int = 1) -> dict:
    """Run ``algo``; return {'deadlock': bool, 'memory': {(rank, buf, chunk): Counter}}."""
    memory: dict = {}
    for gpu in algo.gpus:
        for j in range(gpu.i_chunks):
            memory[(*_alias(algo, gpu.id, "i", j, inplace), gpu.id)] = Counter({(gpu.id, j): 1})
    fifos: dict = {}
    pcs = {(g.id, tb.id): 0 for g in algo.gpus for tb in g.tbs}
    published = {(g.id, tb.id): -1 for g in algo.gpus for tb in g.tbs}
    tbs = {(g.id, tb.id): tb for g in algo.gpus for tb in g.tbs}
    writes_to_input = []

    def get(rank, buf, idx):
        b, i = _alias(algo, rank, buf, idx, inplace)
        if (b, i, rank) not in memory:
            raise AssertionError(f"rank {rank} reads unwritten {buf}[{idx}]")
        return memory[(b, i, rank)]

    def put(rank, buf, idx, value):
        if buf == "i" and not inplace:
            writes_to_input.append((rank, idx))
        b, i = _alias(algo, rank, buf, idx, inplace)
        memory[(b, i, rank)] = value

    progress = True
    while progress:
        progress = False
        for (rank, tb_id), tb in tbs.items():
            pc = pcs[(rank, tb_id)]
            waits = []
            while pc < len(tb.steps) and tb.steps[pc].type == "nop":
                waits.append((tb.steps[pc].depid, tb.steps[pc].deps))
                pc += 1
            if pc >= len(tb.steps):
                continue
            step = tb.steps[pc]
            if step.depid >= 0:
                waits.append((step.depid, step.deps))
            if any(published[(rank, d)] < s for d, s in waits):
                continue
            incoming = fifos.setdefault((tb.recv, rank, tb.chan), deque())
            outgoing = fifos.setdefault((rank, tb.send, tb.chan), deque())
            if step.type in RECV_TYPES and not incoming:
                continue
            if step.type in SEND_TYPES and len(outgoing) >= depth:
                continue
            n = step.cnt
            if step.type in RECV_TYPES:
                cnt, data = incoming.popleft()
                assert cnt == n, f"cnt mismatch on rank {rank} tb {tb_id} step {pc}"
            if step.type == "s":
                outgoing.append((n, [get(rank, step.srcbuf, step.srcoff + j) for j in range(n)]))
            elif step.type == "r":
                for j in range(n):
                    put(rank, step.dstbuf, step.dstoff + j, data[j])
            elif step.type == "cpy":
                vals = [get(rank, step.srcbuf, step.srcoff + j) for j in range(n)]
                for j in range(n):
                    put(rank, step.dstbuf, step.dstoff + j, vals[j])
            elif step.type == "re":
                vals = [
                    get(rank, step.srcbuf, step.srcoff + j) + get(rank, step.dstbuf, step.dstoff + j)
                    for j in range(n)
                ]
                for j in range(n):
                    put(rank, step.dstbuf, step.dstoff + j, vals[j])
            else:
                raise AssertionError(f"minisim does not model {step.type}")
            if step.hasdep:
                published[(rank, tb_id)] = pc
            pcs[(rank, tb_id)] = pc + 1
            progress = True
    deadlock = any(pcs[key] < len(tb.steps) for key, tb in tbs.items())
    leftover = any(fifo for fifo in fifos.values())
    return {"deadlock": deadlock, "leftover": leftover, "memory": memory, "writes_to_input": writes_to_input}


def expected_ok(algo: Algorithm, result: dict, *, inplace: bool) -> list[str]:
    """Postcondition problems of the collective (empty when the result is right)."""
    problems = []
    n, g = algo.nchunksperloop, algo.ngpus
    per_root = n // g
    for rank in range(g):
        outputs = range(n) if algo.coll != "reducescatter" else range(per_root)
        for j in outputs:
            if algo.coll == "allgather":
                want = Counter({(j // per_root, j % per_root): 1})
            elif algo.coll == "reducescatter":
                want = Counter({(q, rank * per_root + j): 1 for q in range(g)})
            else:
                want = Counter({(q, j): 1 for q in range(g)})
            b, i = _alias(algo, rank, "o", j, inplace)
            got = result["memory"].get((b, i, rank))
            if got != want:
                problems.append(f"rank {rank} o[{j}] = {got}, want {want}")
    return problems
