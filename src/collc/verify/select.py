"""Would the runtime pick this file for a given call, and if not, why?

The internal scheduler takes the first loaded file whose collective, rank count, placement, size range
and chunk divisibility all fit the call. A file that fails any of them is silently not used, which is
the most common complaint about MSCCL deployments; :func:`explain` names every failed condition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from collc.msccl.program import Algorithm
from collc.verify.runtimes import profile

#: bytes per element of the NCCL data types (all have MSCCL kernels: the type is not part of selection)
DTYPE_SIZES = {
    "int8": 1,
    "uint8": 1,
    "fp8e4m3": 1,
    "fp8e5m2": 1,
    "fp16": 2,
    "bf16": 2,
    "int32": 4,
    "uint32": 4,
    "fp32": 4,
    "int64": 8,
    "uint64": 8,
    "fp64": 8,
}

#: ``sizeMultiplier`` of each API: nBytes = count × sizeof(type) × multiplier
PER_RANK_COLLECTIVES = frozenset({"allgather", "reducescatter", "alltoall"})


def compared_bytes(bound: int) -> int:
    """A file's ``minBytes`` or ``maxBytes`` as the scheduler compares it with a call's nBytes: the bound
    is an ``int64_t`` and nBytes a ``size_t``, so C++ converts the bound to unsigned 64 bits (-5 reads
    as 2**64 - 5: a negative minBytes selects no call, a negative maxBytes bounds nothing)."""
    return bound % 2**64


@dataclass
class Selection:
    """``selected`` and, when False, every reason; ``details`` describe the call as the runtime sees it."""

    selected: bool
    reasons: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    #: the deadlock a call of this size runs into (collc.verify.explain_call), None if it completes
    deadlock: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "selected": self.selected,
            "reasons": list(self.reasons),
            "details": list(self.details),
            "deadlock": self.deadlock,
        }


def explain(
    algo: Algorithm,
    *,
    nranks: int,
    nbytes: int,
    dtype_size: int,
    inplace: bool,
    runtime: str = "msccl-executor",
) -> Selection:
    """Whether a call of ``nbytes`` (nBytes as the runtime computes it: the buffer for allreduce, the
    output for allgather, the input for reducescatter) on ``nranks`` ranks selects ``algo``."""
    reasons: list[str] = []
    details: list[str] = []
    runtime_profile = profile(runtime)
    coll = runtime_profile.collectives.get(algo.coll)
    if coll is None:
        reasons.append(f'{runtime} does not load files with coll="{algo.coll}"')
        coll = algo.coll
    if algo.ngpus != nranks:
        reasons.append(f"the file is for ngpus={algo.ngpus} but the communicator has {nranks} ranks")
    if inplace and not algo.inplace:
        reasons.append('the call is in-place but the file has inplace="0"')
    if not inplace and not algo.outofplace:
        reasons.append('the call is out-of-place but the file has outofplace="0"')
    multiplier = nranks if coll in PER_RANK_COLLECTIVES else 1
    if nbytes <= 0 or nbytes % (dtype_size * multiplier):
        reasons.append(
            f"{nbytes} bytes is not a positive whole number of {dtype_size}-byte elements"
            + (f" per rank ({nranks} ranks)" if multiplier > 1 else "")
        )
    else:
        count = nbytes // (dtype_size * multiplier)
        elements = count * multiplier
        details.append(f"count = {count} elements, count × sizeMultiplier = {elements}")
        if algo.nchunksperloop >= 1 and elements % algo.nchunksperloop:
            quantum = algo.nchunksperloop * dtype_size
            reasons.append(
                f"count × sizeMultiplier = {elements} is not divisible by "
                f"nchunksperloop={algo.nchunksperloop}; "
                f"use a size that is a multiple of {quantum} bytes"
            )
        elif algo.nchunksperloop >= 1:
            chunk = elements // algo.nchunksperloop
            details.append(f"one chunk = {chunk} elements = {chunk * dtype_size} bytes")
    low, high = compared_bytes(algo.min_bytes), compared_bytes(algo.max_bytes)
    if nbytes < low:
        unsigned = f" (compared as an unsigned 64-bit number: {low})" if algo.min_bytes < 0 else ""
        reasons.append(f"{nbytes} bytes is below minBytes={algo.min_bytes}{unsigned}")
    if algo.max_bytes and not runtime_profile.max_bytes_inclusive and nbytes >= high:
        reasons.append(
            f"{nbytes} bytes is not below maxBytes={algo.max_bytes} (exclusive on the legacy loader)"
        )
    elif algo.max_bytes and nbytes > high:
        reasons.append(f"{nbytes} bytes is above maxBytes={algo.max_bytes} (0 would mean unbounded)")
    details.append(
        "the op must be sum, prod, min or max: ncclAvg and user-defined ops always fall back to NCCL"
    )
    return Selection(not reasons, reasons, details)


class Overlap(NamedTuple):
    """Two files the same call could select. ``fallback``: the second is a fallback of the first, as
    ``collc compile --bundle`` writes them (a smaller ``nchunksperloop`` that divides the first's, so
    it takes the counts the first does not divide): intended, and a note rather than a warning."""

    message: str
    fallback: bool


def overlapping(entries: list[tuple[str, Algorithm]], runtime: str = "msccl-executor") -> list[Overlap]:
    """Pairs of files that the same call could select (same collective, rank count and placement,
    overlapping size ranges). Where both divide a call's count, only the first one loaded runs it, and
    the load order differs between runtimes (sorted path on the executor, directory order on RCCL);
    a count only one divides runs that one (the runtimes check divisibility before the range)."""
    collectives = profile(runtime).collectives
    found = []
    for index, (first_name, first) in enumerate(entries):
        for second_name, second in entries[index + 1 :]:
            coll = collectives.get(first.coll, first.coll)
            if coll != collectives.get(second.coll, second.coll) or first.ngpus != second.ngpus:
                continue
            placements = [
                placement
                for placement, a, b in (
                    ("in-place", first.inplace, second.inplace),
                    ("out-of-place", first.outofplace, second.outofplace),
                )
                if a and b
            ]
            low = max(compared_bytes(first.min_bytes), compared_bytes(second.min_bytes))
            high = min(_upper_bound(first), _upper_bound(second))
            if not placements or low > high:
                continue
            upper = "unbounded" if high == _UNBOUNDED else f"{high}"
            calls = f"{' and '.join(placements)} {coll} calls on {first.ngpus} ranks of {low}…{upper} bytes"
            big, small = first.nchunksperloop, second.nchunksperloop
            if small < big and big % small == 0:
                found.append(
                    Overlap(
                        f"{second_name} is a fallback of {first_name} for {calls}: it runs the counts that "
                        f"nchunksperloop {big} does not divide and {small} does (on RCCL, which loads in "
                        f"directory order, it may also run counts {first_name} takes: correct, slower)",
                        True,
                    )
                )
                continue
            found.append(
                Overlap(
                    f"{first_name} and {second_name} both match {calls}; where both divide the count only "
                    "the first one loaded runs it (sorted path on the executor, directory order on RCCL): "
                    "make the size ranges disjoint",
                    False,
                )
            )
    return found


_UNBOUNDED = 2**63


def _upper_bound(algo: Algorithm) -> int:
    """The largest nBytes ``algo`` may be selected for (:data:`_UNBOUNDED` where its maxBytes is 0 or
    negative, which bounds nothing)."""
    return min(compared_bytes(algo.max_bytes) or _UNBOUNDED, _UNBOUNDED)
