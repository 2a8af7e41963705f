"""The MSCCL program IR: one algorithm, per-GPU threadblocks, ordered steps.

This is the single representation that the lowering produces, the XML writer writes, the XML reader
parses into, and the verifier and the cost model's discrete-event simulation consume. Field names and
meanings follow the runtime's XML attributes (docs/verify.md lists them) so the mapping is one-to-one.
``line`` fields hold the source line of an element when it was read from a file (for located errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from collc.errors import InvariantError

STEP_TYPES = ("s", "r", "rcs", "rrs", "rrc", "rrcs", "cpy", "re", "nop")
SEND_TYPES = frozenset({"s", "rcs", "rrs", "rrcs"})
RECV_TYPES = frozenset({"r", "rcs", "rrs", "rrc", "rrcs"})
BUFFERS = ("i", "o", "s")
PROTOCOLS = ("Simple", "LL", "LL128")
#: the collectives collc compiles and predicts (the others in COLLECTIVES are only verified)
SCHEDULED_COLLECTIVES = ("allreduce", "allgather", "reducescatter")
#: the runtimes collc emits files for (the verifier also knows ``msccl-legacy``); ``mscclpp`` gets an
#: MSCCL++ execution plan translated from the program (collc.mscclpp)
TARGET_RUNTIMES = ("msccl-executor", "rccl", "mscclpp")
#: how a compiled Simple file records the NCCL_BUFFSIZE it was tuned and verified for, when that is not
#: the runtime's default: a suffix of its name, ``-buffsize-<bytes>``. The runtimes ignore the name
#: (a label); ``collc verify`` and ``collc simulate`` read it back when no ``--buffsize`` is given.
BUFFER_TAG = "-buffsize-"
#: smallest NCCL_BUFFSIZE collc compiles for (``--buffsize``): 8 FIFO slots of 8 KiB
MIN_BUFFSIZE = 64 << 10
#: a recorded buffer above this (or below :data:`MIN_BUFFSIZE`, or not a multiple of 4 KiB) is not one
#: collc writes: the name is then read as a label only
MAX_RECORDED_BUFFSIZE = 1 << 32


def tag_buffer(name: str, buffer_bytes: int | None) -> str:
    """``name`` with its buffer suffix replaced by one for ``buffer_bytes`` (none for the default)."""
    base = name[: name.rfind(BUFFER_TAG)] if recorded_buffer(name) is not None else name
    return base if buffer_bytes is None else f"{base}{BUFFER_TAG}{buffer_bytes}"


def recorded_buffer(name: str) -> int | None:
    """The NCCL_BUFFSIZE a file's name records (:data:`BUFFER_TAG`), or None."""
    _, tag, digits = name.rpartition(BUFFER_TAG)
    if not tag or not digits.isascii() or not digits.isdigit() or digits.startswith("0"):
        return None
    value = int(digits)
    return value if MIN_BUFFSIZE <= value <= MAX_RECORDED_BUFFSIZE and value % 4096 == 0 else None


COLLECTIVES = (
    "allreduce",
    "allgather",
    "reducescatter",
    "alltoall",
    "broadcast",
    "reduce",
    "send",
    "recv",
    "gather",
    "scatter",
    "alltoallv",
)


@dataclass(slots=True)
class Step:
    """One ``<step>``: all ten attributes are required by the runtime, also for ``nop``. Slotted: a
    program of 128 GPUs has 200,000 of them, each a quarter smaller without an attribute dict."""

    s: int
    type: str
    srcbuf: str
    srcoff: int
    dstbuf: str
    dstoff: int
    cnt: int
    depid: int = -1
    deps: int = -1
    hasdep: int = 0
    line: int | None = field(default=None, compare=False)


@dataclass
class Threadblock:
    """One ``<tb>``: at most one send peer and one receive peer, on channel ``chan``."""

    id: int
    send: int
    recv: int
    chan: int
    steps: list[Step] = field(default_factory=list)
    line: int | None = field(default=None, compare=False)


@dataclass
class GpuProgram:
    """One ``<gpu>``: buffer sizes in chunks and the rank's threadblocks."""

    id: int
    i_chunks: int
    o_chunks: int
    s_chunks: int
    tbs: list[Threadblock] = field(default_factory=list)
    line: int | None = field(default=None, compare=False)


@dataclass
class Algorithm:
    """One ``<algo>`` element with everything below it."""

    name: str
    proto: str
    nchannels: int
    nchunksperloop: int
    ngpus: int
    coll: str
    inplace: int
    outofplace: int
    min_bytes: int
    max_bytes: int
    gpus: list[GpuProgram] = field(default_factory=list)
    line: int | None = field(default=None, compare=False)


def renumbered(algo: Algorithm, rank_of: tuple[int, ...]) -> Algorithm:
    """``algo`` run by other ranks: the program of GPU ``g`` moves to rank ``rank_of[g]``, and every
    peer is renumbered alike. Only an allreduce keeps its meaning: every rank's result is the sum of
    every rank's input, chunk by chunk, whichever rank reduces or forwards a chunk. An allgather or a
    reduce-scatter ties each rank's block to its place in the buffers, which this does not move.
    """
    if algo.coll != "allreduce":
        raise InvariantError(f"a {algo.coll} cannot be renumbered: its blocks follow the ranks")
    if sorted(rank_of) != list(range(algo.ngpus)):
        raise InvariantError(f"{rank_of} is not a permutation of the {algo.ngpus} ranks")

    def peer(rank: int) -> int:
        return rank if rank < 0 else rank_of[rank]

    gpus = [
        GpuProgram(
            id=rank_of[gpu.id],
            i_chunks=gpu.i_chunks,
            o_chunks=gpu.o_chunks,
            s_chunks=gpu.s_chunks,
            tbs=[Threadblock(tb.id, peer(tb.send), peer(tb.recv), tb.chan, list(tb.steps)) for tb in gpu.tbs],
        )
        for gpu in algo.gpus
    ]
    return replace(algo, gpus=sorted(gpus, key=lambda gpu: gpu.id))
