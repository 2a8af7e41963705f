"""Model parameters: protocols, per-link-class latencies, nccl-tests units and message sizes.

Every number the cost model uses lives here and is explained in ``docs/cost-model.md``. Bandwidths are
GB/s (10^9 bytes/s) and times are microseconds, so ``bytes / GB/s / 1000 = microseconds``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from collc.errors import InputError
from collc.topology.model import Link, Topology

COLLECTIVES = ("allreduce", "allgather", "reducescatter")


@dataclass(frozen=True)
class Protocol:
    """How one NCCL/MSCCL protocol turns link bandwidth into payload bandwidth.

    ``efficiency``: payload fraction of the bytes on the wire (LL sends a 4-byte flag with every 4 bytes
    of data, LL128 8 bytes of flag per 128-byte line). ``step_overhead_us``: the fixed cost of one
    send/receive step (synchronisation through the FIFO flags), paid once per hop on the critical path.
    ``slice_bytes``: payload of one FIFO step, the granularity at which a receiver can forward data
    (msccl-xml.md §3.1, §4.4). ``fifo_calls``: how many calls a sender may run ahead (§4.4).
    """

    name: str
    efficiency: Fraction
    step_overhead_us: float
    slice_bytes: int
    fifo_calls: int


PROTOCOLS: dict[str, Protocol] = {
    # 4 MiB NCCL_BUFFSIZE split into 8 FIFO steps.
    "Simple": Protocol("Simple", Fraction(1), 1.0, 512 * 1024, 2),
    # 120 of every 128 bytes are payload; 8 FIFO steps of 640 threads x 120 elements x 8 bytes.
    "LL128": Protocol("LL128", Fraction(15, 16), 0.8, 576_000, 8),
    # Half of every 16-byte line is flag; 8 FIFO steps of 512 threads x 8 lines x 16 bytes.
    "LL": Protocol("LL", Fraction(1, 2), 0.4, 32 * 1024, 8),
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
    """nccl-tests' busbw/algbw factor (ecosystem.md §6)."""
    if collective == "allreduce":
        return Fraction(2 * (num_gpus - 1), num_gpus)
    if collective in ("allgather", "reducescatter"):
        return Fraction(num_gpus - 1, num_gpus)
    raise InputError(f"unknown collective {collective!r}", hint=f"use one of {', '.join(COLLECTIVES)}")


_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "M": 10**6,
    "MB": 10**6,
    "G": 10**9,
    "GB": 10**9,
    "T": 10**12,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """Parse a byte count like ``4096``, ``64KiB``, ``1MB`` or ``8GiB`` (binary and decimal units)."""
    match = _SIZE.match(text)
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise InputError(
            f"cannot read the size {text!r}",
            hint="write a whole number of bytes with an optional unit: 4096, 64KiB, 1MiB, 8GiB, 1GB",
        )
    value = int(match.group(1)) * _UNITS[unit]
    if value <= 0:
        raise InputError(f"size {text!r} must be positive", hint="use at least 1 byte")
    return value


def parse_sizes(text: str) -> list[int]:
    """Parse ``START:END[:FACTOR]`` (geometric, default factor 2) or a comma-separated list of sizes."""
    if ":" not in text:
        return sorted({parse_size(part) for part in text.split(",") if part.strip()})
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise InputError(f"cannot read the size range {text!r}", hint="write START:END or START:END:FACTOR")
    start, end = parse_size(parts[0]), parse_size(parts[1])
    factor = int(parts[2]) if len(parts) == 3 and parts[2].strip().isdigit() else 2 if len(parts) == 2 else 0
    if factor < 2 or start > end:
        raise InputError(
            f"bad size range {text!r}",
            hint="START must not exceed END and FACTOR must be a whole number >= 2, e.g. 1KiB:8GiB:4",
        )
    sizes = []
    size = start
    while size <= end:
        sizes.append(size)
        size *= factor
    return sizes


def format_size(num_bytes: int) -> str:
    """A short human-readable binary size: ``1KiB``, ``8GiB``, ``1.5KiB``, ``512B``."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if num_bytes >= scale:
            whole = num_bytes % scale == 0
            return f"{num_bytes // scale}{unit}" if whole else f"{num_bytes / scale:.2f}{unit}"
    return f"{num_bytes}B"
