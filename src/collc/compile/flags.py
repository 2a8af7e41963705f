"""What a user asks ``collc compile`` for, as typed, and the :class:`CompileOptions` it means.

One translation serves every front end: the ``collc compile`` and ``collc submit`` flags, and the JSON
``options`` a ``collc serve`` request carries, so a service compiles exactly what the command would.
"""

from __future__ import annotations

from dataclasses import dataclass

from collc.compile.driver import LANE_CHOICES, CompileOptions
from collc.errors import InputError
from collc.msccl.program import MIN_BUFFSIZE
from collc.sizes import parse_size


@dataclass(frozen=True)
class CompileFlags:
    """The flags of ``collc compile`` that choose the schedule (not where it goes or how it is shown)."""

    coll: str = "allreduce"
    runtime: str | None = None
    proto: str = "Simple"
    only_inplace: bool = False
    only_outofplace: bool = False
    min_bytes: str | None = None  # a size such as "1MiB"; None: chosen from the simulation
    max_bytes: str | None = None
    instances: int | None = None  # None: 1, or 2 where NIC-feeding pairs need it
    k: int | None = None
    max_k: int | None = None
    align: int | None = None
    force: bool = False
    buffsize: str | None = None  # NCCL_BUFFSIZE as typed; None: chosen by simulation (Simple)
    lanes: str = "auto"  # LANE_CHOICES: how transfers are spread over lanes (docs/lowering.md §5)

    def options(self) -> CompileOptions:
        """The options these flags mean (sizes parsed; bad ones raise a located InputError)."""
        both = self.only_inplace == self.only_outofplace
        return CompileOptions(
            coll=self.coll,
            runtime=self.runtime,
            proto=self.proto,
            inplace=both or self.only_inplace,
            outofplace=both or self.only_outofplace,
            min_bytes=parse_size(self.min_bytes or "0", option="--min-bytes", minimum=0),
            max_bytes=parse_size(self.max_bytes or "0", option="--max-bytes", minimum=0),
            user_range=self.min_bytes is not None and self.max_bytes is not None,
            user_end=_one_end(self.min_bytes, self.max_bytes),
            force=self.force,
            instances=1 if self.instances is None else self.instances,
            more_instances=self.instances is None,
            k=self.k,
            max_k=self.max_k,
            align=self.align,
            buffsize=None if self.buffsize is None else buffer_size(self.buffsize, self.proto),
            lanes=lane_choice(self.lanes),
        )


def _one_end(min_bytes: str | None, max_bytes: str | None) -> str | None:
    """The one end of the size range the user gave (``min`` or ``max``); None where they gave both
    (the range as written) or neither (the range where the file wins)."""
    if (min_bytes is None) == (max_bytes is None):
        return None
    return "min" if min_bytes is not None else "max"


def lane_choice(text: str) -> str:
    """``--lanes`` checked (a service request carries it as typed)."""
    if text not in LANE_CHOICES:
        raise InputError(
            f"--lanes {text!r} is not one of {', '.join(LANE_CHOICES)}", hint="e.g. --lanes split"
        )
    return text


def buffer_size(text: str, proto: str) -> int:
    """``--buffsize``: the Simple protocol's connection buffer, a multiple of 4 KiB of at least 64 KiB."""
    if proto != "Simple":
        raise InputError(
            f"--buffsize sets NCCL_BUFFSIZE, the Simple protocol's buffer; this file is {proto}",
            hint="drop --buffsize, or compile with --proto Simple",
        )
    value = parse_size(text, option="--buffsize", minimum=MIN_BUFFSIZE)
    if value % 4096:
        raise InputError(f"--buffsize {text} is not a multiple of 4 KiB", hint="e.g. --buffsize 1MiB")
    return value
