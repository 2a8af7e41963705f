"""Correct programs to plant defects into: the shared fixtures as IR, and tiny hand-built ones."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from collc.msccl.program import STEP_TYPES, Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.reader import read_xml

#: the shared fixtures: ``<repo>/../shared/fixtures/msccl`` (CI has the same layout)
FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "msccl"
VALID = sorted((FIXTURES / "valid").glob("*.xml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.xml"))


def fixture(name: str) -> Algorithm:
    """A fresh IR of the valid fixture ``name`` (e.g. ``ring_allgather_4``, ``tree_allreduce_3``)."""
    path = next(p for p in VALID if p.stem == name)
    return read_xml(path.read_text(), path.name)


def exchange(cnt: int, proto: str) -> Algorithm:
    """Two ranks swap their inputs (allgather): each first sends ``cnt`` chunks, then receives them.
    With one chunk per call this completes only while ``cnt`` ≤ the FIFO depth (§4.4)."""
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


def ring_allgather(ngpus: int, proto: str = "Simple") -> Algorithm:
    """The ring allgather of the fixture ``ring_allgather_4`` for any number of ranks."""
    gpus = []
    for rank in range(ngpus):
        steps = [Step(0, "cpy", "i", 0, "o", rank, 1), Step(1, "s", "i", 0, "o", rank, 1)]
        for hop in range(1, ngpus):
            block = (rank - hop) % ngpus
            steps.append(Step(len(steps), "r", "o", block, "o", block, 1))
            if hop < ngpus - 1:
                steps.append(Step(len(steps), "s", "o", block, "o", block, 1))
        gpus.append(
            GpuProgram(rank, 1, ngpus, 0, [Threadblock(0, (rank + 1) % ngpus, (rank - 1) % ngpus, 0, steps)])
        )
    return Algorithm(f"ring_allgather_{ngpus}", proto, 1, ngpus, ngpus, "allgather", 0, 1, 0, 0, gpus)


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
