"""Model parameters: protocols, per-link-class latencies, nccl-tests units and message sizes.

Every number the cost model uses lives here and is explained in ``docs/cost-model.md``. Bandwidths are
GB/s (10^9 bytes/s) and times are microseconds, so ``bytes / GB/s / 1000 = microseconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from collc.errors import InputError
from collc.msccl.program import SCHEDULED_COLLECTIVES
from collc.topology.model import Link, Topology
from collc.verify.calls import SLICE_SLOTS, SLOTS, SLOTS_PER_CALL

COLLECTIVES = SCHEDULED_COLLECTIVES


@dataclass(frozen=True)
class Protocol:
    """How one NCCL/MSCCL protocol turns link bandwidth into payload bandwidth.

    ``efficiency``: payload fraction of the bytes on the wire (LL sends a 4-byte flag with every 4 bytes
    of data, LL128 8 bytes of flag per 128-byte line). ``step_overhead_us``: the fixed cost of one
    send/receive step (synchronisation through the FIFO flags), paid once per hop on the critical path.
    ``slice_bytes``: payload of one FIFO step, the granularity at which NCCL's fused primitives forward
    data; the forest model pipelines at this grain. ``call_bytes``: payload
    of one primitive call, which is how much of every chunk one pipelining iteration of an MSCCL
    program moves (the kernel's ``chunkSize``: Simple 4 FIFO steps, LL and LL128 one); the event
    simulation of a program pipelines at this grain. ``fifo_calls``: how many calls a sender may run
    ahead. ``tb_copy_gbps``: the most bytes per second (wire bytes, flags included) that one
    threadblock of the protocol's thread count moves: a send step is one threadblock's copy, so the
    event simulation never lets one flow run faster (see :data:`THREADBLOCK_COPY_GBPS`).
    ``call_sync_us``: the threadblock time one call spends on the connection's handshakes rather than
    on bytes (Simple: :data:`SIMPLE_SLICE_SYNC_US` per slice, 2 slices a call); it lowers what one
    threadblock moves per second over a call to :attr:`tb_rate_gbps`.
    """

    name: str
    efficiency: Fraction
    step_overhead_us: float
    slice_bytes: int
    fifo_calls: int
    call_bytes: int
    tb_copy_gbps: float
    call_sync_us: float = 0.0

    @property
    def tb_rate_gbps(self) -> float:
        """What one threadblock sends per second, averaged over a call: its copy of the call's wire
        bytes at :attr:`tb_copy_gbps` plus the call's handshakes (:attr:`call_sync_us`)."""
        wire_bytes = self.call_bytes / float(self.efficiency)
        return wire_bytes / (wire_bytes / self.tb_copy_gbps + self.call_sync_us * 1000)


# One threadblock copying device memory to device memory, measured on an H200 (sm_90, CUDA 13) by
# scripts/gpu/tb_copy_rate.cu: 16-byte loads and stores, 8 loads in flight per thread as the runtime's
# copy loop unrolls them on sm_80 and later. 48.5 GB/s with 512 threads (the data threads of an MSCCL
# Simple kernel) and 48.6 with 640 (LL and LL128 kernels). 2, 4, 8 and 16 threadblocks move 2.0, 4.0,
# 8.0 and 15.5 times that, so the limit is per threadblock (the GPU's memory caps 132 of them at about
# 2 TB/s). With one load in flight per thread a threadblock moves only 19.9 GB/s (512 threads) and 24.8
# (640). LL and LL128 are given the plain copy rate of their bytes on the wire, flags included; their
# flag handling is not measured, so for them it is an upper bound. Table and command: docs/cost-model.md §1.
THREADBLOCK_COPY_GBPS = 48.5

# What one slice of a Simple connection costs the threadblock that sends it (and the one that receives it)
# besides its bytes: wait for the FIFO slot or the data, barrier, fence, post the flag. Measured on an H200
# by scripts/gpu/fifo_slice_cost.cu (a sender and a receiver threadblock of 512 threads joined by an
# 8-slot FIFO in device memory, slices of 2 slots, buffers of 32 KiB to 4 MiB): the time per slice fits
# 1.23 µs + bytes / 46.4 GB/s within 9 %, for 1 and for 8 pairs at once (1.42 µs with system-scope
# fences). Over NVLink the flag also crosses the link: the simulation charges that as path latency.
# Table and command: docs/cost-model.md §1.
SIMPLE_SLICE_SYNC_US = 1.23

#: NCCL_BUFFSIZE's default: the connection buffer of the Simple protocol
DEFAULT_BUFFER_BYTES = 4 << 20


def simple(buffer_bytes: int = DEFAULT_BUFFER_BYTES) -> Protocol:
    """Simple on a connection buffer of ``buffer_bytes`` (``NCCL_BUFFSIZE``).

    The buffer sets the pipelining grain: a FIFO step is one of its 8 slots and one primitive call
    (what one pipelining iteration of an MSCCL program moves of every chunk) is 4 of them, so a sender
    runs 2 calls ahead. A smaller buffer cuts a call into more, smaller iterations: a tree fills and
    drains in less time, every iteration pays the step overhead once more, and every slice of 2 slots
    costs its threadblock a handshake (:data:`SIMPLE_SLICE_SYNC_US`), so a threadblock moves less.
    """
    slot = buffer_bytes // SLOTS
    per_call = SLOTS_PER_CALL["Simple"]
    sync_us = per_call // SLICE_SLOTS * SIMPLE_SLICE_SYNC_US
    return Protocol(
        "Simple", Fraction(1), 1.0, slot, SLOTS // per_call, slot * per_call, THREADBLOCK_COPY_GBPS, sync_us
    )


#: The protocols the runtime chooses among for its own ring and tree: they are compared at the fastest
#: (the runtime's tuner picks it per size; collc's file runs at the one it was compiled for).
VENDOR_PROTOCOLS = ("LL", "LL128", "Simple")

PROTOCOLS: dict[str, Protocol] = {
    "Simple": simple(),
    # 120 of every 128 bytes are payload; 8 FIFO steps of 640 threads x 120 elements x 8 bytes.
    "LL128": Protocol("LL128", Fraction(15, 16), 0.8, 576_000, 8, 576_000, THREADBLOCK_COPY_GBPS),
    # Half of every 16-byte line is flag; 8 FIFO steps of 512 threads x 8 lines x 16 bytes.
    "LL": Protocol("LL", Fraction(1, 2), 0.4, 32 * 1024, 8, 32 * 1024, THREADBLOCK_COPY_GBPS),
}

# Fixed cost of launching a collective kernel (host enqueue to first byte on a link).
LAUNCH_US = 5.0

# One-way latency of one physical arc when neither the link nor the topology metadata gives one.
DEFAULT_LATENCY_US: dict[str, float] = {
    "nvlink": 0.35,
    "nvswitch": 0.35,
    "xgmi": 0.7,
    "pcie": 0.5,
    "ib": 1.0,
    "roce": 1.5,
    "ethernet": 1.5,
}
FALLBACK_LATENCY_US = 0.5


def protocol(name: str) -> Protocol:
    """The :class:`Protocol` called ``name`` (case-insensitive), or an :class:`InputError`."""
    for key, value in PROTOCOLS.items():
        if key.lower() == name.lower():
            return value
    raise InputError(f"unknown protocol {name!r}", hint=f"use one of {', '.join(PROTOCOLS)}")


def link_latency_us(topology: Topology, link: Link) -> float:
    """The link's latency: its own value, else the topology's default for its class, else ours."""
    if link.latency_us is not None:
        return float(link.latency_us)
    link_class = link.link_class or ""
    if link_class in topology.metadata.default_latency_us:
        return float(topology.metadata.default_latency_us[link_class])
    return DEFAULT_LATENCY_US.get(link_class, FALLBACK_LATENCY_US)


def busbw_factor(collective: str, num_gpus: int) -> Fraction:
    """nccl-tests' busbw/algbw factor: 2(n-1)/n for allreduce, (n-1)/n for allgather and reduce-scatter."""
    if collective == "allreduce":
        return Fraction(2 * (num_gpus - 1), num_gpus)
    if collective in ("allgather", "reducescatter"):
        return Fraction(num_gpus - 1, num_gpus)
    raise InputError(f"unknown collective {collective!r}", hint=f"use one of {', '.join(COLLECTIVES)}")
