"""The limits and dialect of each runtime the verifier lints against."""

from __future__ import annotations

from dataclasses import dataclass, field

from collc.errors import InputError
from collc.msccl.program import COLLECTIVES

COMPOSITE_TYPES = frozenset({"rcs", "rrs", "rrc", "rrcs"})


@dataclass(frozen=True)
class RuntimeProfile:
    """What one runtime accepts and what it silently mishandles."""

    name: str
    #: ``MAXCHANNELS``: the parser accepts ``0 <= chan <= max_channels`` (off by one)
    max_channels: int
    #: threadblocks per GPU the runtime can use (parser limit, or the int8 ``depid`` ceiling)
    max_threadblocks: int
    #: ``MSCCL_MAX_NUM_STEPS``: steps per threadblock, nops included
    max_steps: int
    #: largest ``depid`` the runtime stores faithfully (an int8 field)
    max_depid: int
    #: longest fused ``re`` chain that computes the right value (executor: 15); None = no cap
    max_fused_chain: int | None
    #: step types that load but fail at launch (RCCL >= 6.1 has no composite kernels)
    rejected_step_types: frozenset[str]
    #: ``coll`` spellings the loader accepts, mapped to the collective they mean
    collectives: dict[str, str]
    #: threadblocks with a send (resp. receive) peer per channel
    max_tbs_per_channel: int = 32
    #: ``MSCCL_MAX_COUNT``: ``cnt`` must be below it
    max_count: int = 72
    #: whether ``maxBytes`` is an inclusive bound (the legacy loader's is exclusive)
    max_bytes_inclusive: bool = True
    #: default connection buffer per protocol: NCCL_BUFFSIZE (Simple, 4 MiB), NCCL_LL_BUFFSIZE (8 lines
    #: per thread × max threads × 8 slots × 16 bytes) and NCCL_LL128_BUFFSIZE (words per thread × max
    #: threads × 8 slots × 8 bytes); see collc.verify.calls
    buffer_bytes: dict[str, int] = field(
        default_factory=lambda: {"Simple": 4 << 20, "LL": 8 * 512 * 8 * 16, "LL128": 120 * 640 * 8 * 8}
    )
    #: 8-byte words per LL128 line, one of them a flag (NCCL: 128-byte lines, RCCL: 64-byte lines)
    ll128_line_words: int = 16


_MODERN_COLLECTIVES = {coll: coll for coll in COLLECTIVES}

PROFILES: dict[str, RuntimeProfile] = {
    "msccl-executor": RuntimeProfile(
        name="msccl-executor",
        max_channels=32,
        max_threadblocks=128,
        max_steps=64,
        max_depid=127,
        max_fused_chain=15,
        rejected_step_types=frozenset(),
        collectives=_MODERN_COLLECTIVES,
    ),
    "rccl": RuntimeProfile(
        name="rccl",
        max_channels=128,
        max_threadblocks=64,
        max_steps=64,
        max_depid=127,
        max_fused_chain=None,
        rejected_step_types=COMPOSITE_TYPES,
        collectives=_MODERN_COLLECTIVES,
        # 256 threads per block at most, 28 LL128 words per thread
        buffer_bytes={"Simple": 4 << 20, "LL": 8 * 256 * 8 * 16, "LL128": 28 * 256 * 8 * 8},
        ll128_line_words=8,
    ),
    # MSCCL++ v0.10.x (collc.mscclpp): its plans are translated from an MSCCL program that obeys the
    # executor's rules; collc.mscclpp.compile lowers it with fewer steps per threadblock so that the
    # translation fits the executor's 64 operations per threadblock (docs/mscclpp.md).
    "mscclpp": RuntimeProfile(
        name="mscclpp",
        max_channels=32,
        max_threadblocks=128,
        max_steps=64,
        max_depid=127,
        max_fused_chain=15,
        rejected_step_types=COMPOSITE_TYPES,
        collectives=_MODERN_COLLECTIVES,
    ),
    "msccl-legacy": RuntimeProfile(
        name="msccl-legacy",
        max_channels=32,
        max_threadblocks=216,
        max_steps=256,
        max_depid=127,
        max_fused_chain=15,
        rejected_step_types=frozenset(),
        max_bytes_inclusive=False,
        collectives={
            "allreduce": "allreduce",
            "allgather": "allgather",
            "reduce_scatter": "reducescatter",
            "alltoall": "alltoall",
        },
    ),
}


def profile(runtime: str) -> RuntimeProfile:
    """The profile of ``runtime``; an ``InputError`` listing the choices for an unknown name."""
    try:
        return PROFILES[runtime]
    except KeyError:
        raise InputError(
            f"unknown runtime {runtime!r}", hint=f"choose one of {', '.join(sorted(PROFILES))}"
        ) from None
