"""How the runtime cuts a call of nBytes into primitive calls, and how many of them a FIFO holds.

The MSCCL kernel (the same in the executor and in RCCL) runs a step of ``cnt = c`` chunks as
⌈c / m⌉ primitive sends (or receives) of at most ``m`` consecutive chunks each, where

    m = clamp(⌊call_bytes / ⌈nBytes / nchunksperloop⌉⌋, 1, MSCCL_MAX_COUNT - 1)

and ``call_bytes`` is the payload one primitive call can carry (the runtime's ``chunkEffectiveSize``):
half of the connection buffer on Simple (4 of its 8 slots), half of one slot on LL (every 8-byte line
carries 4 bytes of data and a flag), and 15/16 (executor) or 7/8 (RCCL) of one slot on LL128 (one
flag word per line). A chunk larger than ``call_bytes`` is walked in pieces by the pipelining loop,
one call per piece, so m = 1 then.

Every primitive call advances the connection by a fixed number of the buffer's 8 slots, whatever its
size: Simple 4 (two slices of two slots; the slices a short call leaves empty are posted anyway), LL
and LL128 1. A sender can therefore run 2 calls (Simple) or 8 calls (LL, LL128) ahead of its receiver,
and what a call of nBytes can do before its receiver arrives is decided by ``m``: a step of 8 chunks
is 8 calls at m = 1 (it blocks after 2 on Simple) but one call at m ≥ 8. Deadlock verdicts therefore
depend on the call size, and hold for the file's declared ``[minBytes, maxBytes]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from collc.verify.runtimes import RuntimeProfile

#: ``NCCL_STEPS``: slots of every connection buffer
SLOTS = 8
#: slots one primitive call advances the connection by (MSCCL_CHUNKSTEPS on Simple)
SLOTS_PER_CALL = {"Simple": 4, "LL": 1, "LL128": 1}
#: slots of one slice on Simple (MSCCL_SLICESTEPS): a call is 2 slices, each one FIFO handshake
SLICE_SLOTS = 2


@dataclass(frozen=True)
class CallModel:
    """The primitive calls of one file's calls on one runtime (see the module docstring)."""

    #: connection buffer of the file's protocol (NCCL_BUFFSIZE, NCCL_LL_BUFFSIZE, NCCL_LL128_BUFFSIZE)
    buffer_bytes: int
    #: payload of one primitive call (``chunkEffectiveSize``)
    call_bytes: int
    #: primitive calls a FIFO holds before the sender blocks
    depth: int
    #: ``nchunksperloop``: a call of nBytes has chunks of ⌈nBytes / nchunks⌉ bytes
    nchunks: int
    #: ``MSCCL_MAX_COUNT - 1``: the most chunks one primitive call carries
    max_chunks: int

    def chunks_per_call(self, nbytes: int) -> int:
        """``m`` of a call of ``nbytes`` (nBytes as the runtime computes it)."""
        chunk = -(-max(nbytes, 1) // self.nchunks)
        return min(max(self.call_bytes // chunk, 1), self.max_chunks)

    def largest_call(self, chunks: int) -> int | None:
        """The largest nBytes whose calls carry at least ``chunks`` chunks (None: every size)."""
        if chunks <= 1:
            return None
        return self.nchunks * (self.call_bytes // chunks)

    def sizes(self, chunks: int) -> tuple[int, int | None]:
        """The nBytes (first, last; None = unbounded) whose calls carry exactly ``chunks`` chunks
        (``max_chunks``: at least that many)."""
        above = self.largest_call(chunks + 1) if chunks < self.max_chunks else 0
        return (above or 0) + 1, self.largest_call(chunks)


def call_bytes(profile: RuntimeProfile, proto: str, buffer_bytes: int) -> int:
    """``chunkEffectiveSize`` of ``proto`` with a connection buffer of ``buffer_bytes``."""
    slot = buffer_bytes // SLOTS
    if proto == "LL":
        return slot // 2
    if proto == "LL128":
        return slot // profile.ll128_line_words * (profile.ll128_line_words - 1)
    return slot * SLOTS_PER_CALL["Simple"]


def call_model(
    profile: RuntimeProfile, proto: str, nchunks: int, buffer_bytes: int | None = None
) -> CallModel:
    """The call model of a file with protocol ``proto`` and ``nchunks`` chunks per loop on ``profile``;
    ``buffer_bytes`` overrides the runtime's default buffer of that protocol."""
    proto = proto if proto in SLOTS_PER_CALL else "Simple"
    buffer = buffer_bytes if buffer_bytes is not None else profile.buffer_bytes[proto]
    return CallModel(
        buffer_bytes=buffer,
        call_bytes=max(call_bytes(profile, proto, buffer), 1),
        depth=SLOTS // SLOTS_PER_CALL[proto],
        nchunks=max(nchunks, 1),
        max_chunks=profile.max_count - 1,
    )


def describe_sizes(first: int, last: int | None) -> str:
    """``"calls of 524288…11534336 bytes"`` (``"… bytes and more"`` when unbounded)."""
    if last is None:
        return f"calls of {first} bytes and more"
    if first == last:
        return f"calls of {first} bytes"
    return f"calls of {first}…{last} bytes"
