"""The runtimes' hard limits (docs/verify.md lists them) and how much of them a program uses."""

from __future__ import annotations

from dataclasses import dataclass

from collc.errors import InfeasibleError, InputError
from collc.msccl.program import STEP_TYPES, TARGET_RUNTIMES, Algorithm, Step
from collc.topology.model import Topology
from collc.verify.lint import PARSER_MAX_NODES
from collc.verify.runtimes import PROFILES

RUNTIMES = TARGET_RUNTIMES
_EXECUTOR = PROFILES["msccl-executor"]  # the runtimes' numbers live in one place: collc.verify.runtimes
MAX_STEPS_PER_TB = _EXECUTOR.max_steps  # MSCCL_MAX_NUM_STEPS, 64 on both XML runtimes
MAX_ELEMENTS_PER_RANK = PARSER_MAX_NODES  # parser MAX_NODES: 1 + ngpus + tbs + steps of the parsing rank
MAX_REDUCE_CHAIN = _EXECUTOR.max_fused_chain  # one lowering serves both runtimes: the executor's cap
MAX_TBS_WITH_PEER_PER_CHANNEL = _EXECUTOR.max_tbs_per_channel  # per direction
RUNTIME_MAX_TBS = {runtime: PROFILES[runtime].max_threadblocks for runtime in RUNTIMES}
# RCCL drops files whose nchannels exceeds NCCL_MAX_NCHANNELS, which depends on the build: stay at 32.
RUNTIME_MAX_CHANNELS = {runtime: min(PROFILES[runtime].max_channels, 32) for runtime in RUNTIMES}
RUNTIME_STEP_TYPES = {
    runtime: frozenset(STEP_TYPES) - PROFILES[runtime].rejected_step_types for runtime in RUNTIMES
}


class DoesNotFit(InfeasibleError):
    """The forest cannot be lowered within the runtime's limits at this k / instance count."""


@dataclass(frozen=True)
class RuntimeLimits:
    """What one program may use on one GPU of one runtime."""

    runtime: str
    max_tbs: int
    max_channels: int
    max_steps_per_tb: int = MAX_STEPS_PER_TB
    max_elements_per_rank: int = MAX_ELEMENTS_PER_RANK
    max_reduce_chain: int = MAX_REDUCE_CHAIN


def runtime_limits(runtime: str, sms_per_gpu: int | None) -> RuntimeLimits:
    """Limits for ``runtime``; threadblocks are also capped by the GPU's SMs/CUs (all must be resident)."""
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}", hint=f"use one of: {', '.join(RUNTIMES)}")
    max_tbs = RUNTIME_MAX_TBS[runtime]
    if sms_per_gpu is not None:
        max_tbs = min(max_tbs, sms_per_gpu)
    return RuntimeLimits(runtime, max_tbs, RUNTIME_MAX_CHANNELS[runtime], PROFILES[runtime].max_steps)


def limits_for(topology: Topology, runtime: str) -> RuntimeLimits:
    return runtime_limits(runtime, topology.metadata.sms_per_gpu)


@dataclass(frozen=True)
class Usage:
    """The largest per-GPU use of every limited resource in a program."""

    max_tbs: int
    nchannels: int
    max_steps_per_tb: int
    max_elements_per_rank: int
    max_reduce_chain: int
    total_steps: int

    def violations(self, limits: RuntimeLimits) -> list[str]:
        """Human-readable descriptions of every exceeded limit (empty when the program fits)."""
        checks = [
            (self.max_tbs, limits.max_tbs, "threadblocks per GPU"),
            (self.nchannels, limits.max_channels, "channels"),
            (self.max_steps_per_tb, limits.max_steps_per_tb, "steps per threadblock"),
            (self.max_elements_per_rank, limits.max_elements_per_rank, "XML elements per rank"),
            (self.max_reduce_chain, limits.max_reduce_chain, "fused re chain length"),
        ]
        return [f"{used} {what} > {limit}" for used, limit, what in checks if used > limit]


def reduce_chains(steps) -> list[int]:
    """Lengths of the ``re`` chains the parser fuses in one threadblock's steps."""
    lengths: list[int] = []
    previous = None
    for step in steps:
        if step.type == "re" and fuses(previous, step):
            lengths[-1] += 1
        elif step.type == "re":
            lengths.append(1)
        previous = step
    return lengths


def fuses(previous: Step | None, step: Step) -> bool:
    """Whether the parser fuses ``step`` into the ``re`` chain that ``previous`` (the step before it in
    its threadblock) is part of."""
    return (
        previous is not None
        and previous.type == "re"
        and previous.hasdep == 0
        and step.depid == -1
        and (previous.dstbuf, previous.dstoff, previous.srcbuf) == (step.dstbuf, step.dstoff, step.srcbuf)
    )


def usage(algo: Algorithm) -> Usage:
    """Measure ``algo`` against the limits."""
    tbs = max((len(gpu.tbs) for gpu in algo.gpus), default=0)
    steps = max((len(tb.steps) for gpu in algo.gpus for tb in gpu.tbs), default=0)
    elements = max(
        (1 + algo.ngpus + len(gpu.tbs) + sum(len(tb.steps) for tb in gpu.tbs) for gpu in algo.gpus),
        default=0,
    )
    chains = max((n for gpu in algo.gpus for tb in gpu.tbs for n in reduce_chains(tb.steps)), default=0)
    total = sum(len(tb.steps) for gpu in algo.gpus for tb in gpu.tbs)
    return Usage(tbs, algo.nchannels, steps, elements, chains, total)
