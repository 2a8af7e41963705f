"""Correct programs to plant defects into: the fixtures as IR, and tiny hand-built ones."""

from __future__ import annotations

from hypothesis import strategies as st

from collc.msccl.program import STEP_TYPES, Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.reader import read_xml
from shared_fixtures import FIXTURES, INVALID, VALID  # noqa: F401 (re-exported for the tests here)

from .fixture_source import ring_allgather  # noqa: F401 (re-exported for the tests here)


def fixture(name: str) -> Algorithm:
    """A fresh IR of the valid fixture ``name`` (e.g. ``ring_allgather_4``, ``tree_allreduce_3``)."""
    path = next(p for p in VALID if p.stem == name)
    return read_xml(path.read_text(), path.name)


def exchange(cnt: int, proto: str) -> Algorithm:
    """Two ranks swap their inputs (allgather): each first sends ``cnt`` chunks, then receives them.
    With one chunk per call this completes only while ``cnt`` ≤ the FIFO depth."""
    gpus = []
    for rank in range(2):
        peer = 1 - rank
        steps = [
            Step(0, "cpy", "i", 0, "o", rank * cnt, cnt),
            Step(1, "s", "i", 0, "o", 0, cnt),
            Step(2, "r", "o", 0, "o", peer * cnt, cnt),
        ]
        gpus.append(GpuProgram(rank, cnt, 2 * cnt, 0, [Threadblock(0, peer, peer, 0, steps)]))
    return Algorithm("exchange", proto, 1, 2 * cnt, 2, "allgather", 0, 1, 0, 0, gpus)


def step(algo: Algorithm, rank: int, tb: int, index: int) -> Step:
    gpu = next(g for g in algo.gpus if g.id == rank)
    return next(t for t in gpu.tbs if t.id == tb).steps[index]


def threadblock(algo: Algorithm, rank: int, tb: int) -> Threadblock:
    gpu = next(g for g in algo.gpus if g.id == rank)
    return next(t for t in gpu.tbs if t.id == tb)


FIXTURE_NAMES = ("ring_allgather_4", "ring_allreduce_4x2", "tree_allreduce_3")
STEP_FIELDS = ("s", "srcoff", "dstoff", "cnt", "depid", "deps", "hasdep")
TB_FIELDS = ("send", "recv", "chan")

mutation = st.tuples(
    st.sampled_from(["step", "tb", "type", "buffer", "drop"]),
    st.integers(0, 10_000),
    st.sampled_from(STEP_FIELDS + TB_FIELDS),
    st.integers(-2, 9),
)


def mutate(name: str, mutations) -> object:
    algo = fixture(name)
    for kind, which, field, value in mutations:
        gpu = algo.gpus[which % len(algo.gpus)]
        tb = gpu.tbs[which % len(gpu.tbs)]
        if not tb.steps:
            continue
        step = tb.steps[which % len(tb.steps)]
        if kind == "step" and field in STEP_FIELDS:
            setattr(step, field, value)
        elif kind == "tb" and field in TB_FIELDS:
            setattr(tb, field, value)
        elif kind == "type":
            step.type = STEP_TYPES[value % len(STEP_TYPES)]
        elif kind == "buffer":
            step.srcbuf = "ios"[value % 3]
        elif kind == "drop":
            tb.steps.remove(step)
    return algo


def allpairs_allreduce(ngpus: int, channels: int = 2) -> Algorithm:
    """One-step all-pairs allreduce (LL, in-place, only ``i`` named): every rank sends its block of
    each channel to every peer, receives theirs into scratch, then each chunk is reduced by one tb.
    Rank r's tb 0/1 (no peers) reduce chunk r of each channel; the tbs for peer q reduce chunk q.
    Reducers wait through nops for the other tbs' send (position 0) and receive (position 1), and
    the reduction is a fused ``re`` chain: the shape of the all-pairs files RCCL ships."""
    block = ngpus  # chunks per channel
    nchunks = block * channels
    gpus = []
    for rank in range(ngpus):
        peers = [q for q in range(ngpus) if q != rank]
        tbs = [Threadblock(chan, -1, -1, chan, []) for chan in range(channels)]
        for k, peer in enumerate(peers):
            for chan in range(channels):
                tbs.append(Threadblock(channels * (1 + k) + chan, peer, peer, chan, []))

        def peer_tb(k: int, chan: int) -> int:
            return channels * (1 + k) + chan

        for chan in range(channels):
            for k, _ in enumerate(peers):
                tb = tbs[peer_tb(k, chan)]
                tb.steps += [
                    Step(0, "s", "i", chan * block, "s", 0, block, hasdep=1),
                    Step(1, "r", "i", 0, "s", chan * block * len(peers) + k * block, block, hasdep=1),
                ]
            reducers = [(chan, rank, None)] + [(peer_tb(k, chan), peer, k) for k, peer in enumerate(peers)]
            for tb_id, chunk, own in reducers:
                others = [peer_tb(k, chan) for k in range(len(peers)) if k != own]
                waits = [(other, position) for position in (0, 1) for other in others]
                tb = tbs[tb_id]
                *early, last = waits
                tb.steps += [Step(0, "nop", "i", -1, "o", -1, 0, depid=d, deps=p) for d, p in early]
                for k in range(len(peers)):
                    source = chan * block * len(peers) + k * block + chunk
                    step = Step(0, "re", "s", source, "i", chan * block + chunk, 1)
                    if k == 0:
                        step.depid, step.deps = last
                    tb.steps.append(step)
        for tb in tbs:
            for index, step in enumerate(tb.steps):
                step.s = index
        gpus.append(GpuProgram(rank, nchunks, 0, nchunks * len(peers), tbs))
    return Algorithm("allpairs", "LL", channels, nchunks, ngpus, "allreduce", 1, 0, 0, 0, gpus)


def without_reducer_wait(algo: Algorithm) -> Algorithm:
    """An :func:`allpairs_allreduce` whose rank-0 reducer lost the nop that waits for tb 2's receive
    into scratch (position 1): a race. Changes ``algo`` and returns it."""
    reducer = threadblock(algo, 0, 0)
    del reducer.steps[3]
    for index, member in enumerate(reducer.steps):
        member.s = index
    return algo


def reducescatter_through_other_blocks() -> Algorithm:
    """In-place 2-rank reducescatter that receives the peer's contribution into the peer's own block
    of the user buffer (already sent) and reduces from there."""
    gpus = []
    for rank in range(2):
        other = 1 - rank
        steps = [
            Step(0, "s", "i", other, "o", 0, 1),
            Step(1, "r", "o", 0, "i", other, 1),
            Step(2, "cpy", "i", rank, "o", 0, 1),
            Step(3, "re", "i", other, "o", 0, 1),
        ]
        gpus.append(GpuProgram(rank, 2, 1, 0, [Threadblock(0, other, other, 0, steps)]))
    return Algorithm("rs", "LL", 1, 2, 2, "reducescatter", 1, 0, 0, 0, gpus)
