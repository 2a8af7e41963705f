"""What a user asks ``collc compile`` for, as typed, and the :class:`CompileOptions` it means.

One translation serves every front end: the ``collc compile`` and ``collc submit`` flags, and the JSON
``options`` a ``collc serve`` request carries, so a service compiles exactly what the command would.
"""

from __future__ import annotations

from dataclasses import dataclass

from collc.compile.driver import CompileOptions
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
            user_range=self.min_bytes is not None or self.max_bytes is not None,
            force=self.force,
            instances=1 if self.instances is None else self.instances,
            feeder_instances=self.instances is None,
            k=self.k,
            max_k=self.max_k,
            align=self.align,
        )
