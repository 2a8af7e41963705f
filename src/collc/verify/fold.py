"""Fold a threadblock's steps into the transmissions the runtime actually executes (msccl-xml.md §3.3, §4.2).

The parser does not run ``<step>`` elements one by one:

* a ``nop`` with ``depid >= 0`` is not executed; its ``(depid, deps)`` joins the dependency list of the
  next non-nop step and counts one position of the threadblock's position counter;
* a ``nop`` with ``depid = -1`` is dropped *without* counting a position;
* consecutive ``re`` steps with the same ``dstbuf``, ``dstoff`` and ``srcbuf``, where each later one has
  no dependency of its own and the previous one has ``hasdep = 0``, fuse into one transmission
  ``dst <- dst (+) src_1 (+) ... (+) src_n`` with the last member's ``cnt`` and ``hasdep``;
* trailing nops are discarded with their dependencies.

After a transmission whose last member has ``hasdep = 1`` the threadblock publishes its position
counter's value (the last counted position), which is what ``deps`` of other threadblocks compare
against. The simulation works on these transmissions so it sees exactly the runtime's waits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from collc.msccl.program import RECV_TYPES, SEND_TYPES, Step, Threadblock


@dataclass(frozen=True)
class Transmission:
    """One executed unit: a step, or a fused ``re`` chain, with the waits folded into it."""

    type: str
    srcbuf: str
    #: the source offset of every member (several only for a fused ``re`` chain)
    srcoffs: tuple[int, ...]
    dstbuf: str
    dstoff: int
    cnt: int
    #: ``(threadblock id, position)`` pairs to wait for before the first call
    waits: tuple[tuple[int, int], ...]
    #: the position published when the transmission completes, or None (``hasdep = 0``)
    publishes: int | None
    #: the position counter after this transmission (its last member's position)
    position: int
    #: document indices of the first and last member step
    first_step: int
    last_step: int

    @cached_property
    def sends(self) -> bool:
        return self.type in SEND_TYPES

    @cached_property
    def receives(self) -> bool:
        return self.type in RECV_TYPES


def _fuses(previous: Step, step: Step, pending_waits: list[tuple[int, int]]) -> bool:
    """Whether ``step`` joins the ``re`` chain that ends with ``previous`` (§3.3)."""
    return (
        step.type == "re"
        and previous.type == "re"
        and not pending_waits
        and step.depid == -1
        and previous.hasdep == 0
        and step.dstbuf == previous.dstbuf
        and step.dstoff == previous.dstoff
        and step.srcbuf == previous.srcbuf
    )


def fold_threadblock(tb: Threadblock) -> list[Transmission]:
    """The transmissions of ``tb`` in execution order, with the runtime's position counter."""
    transmissions: list[Transmission] = []
    pending_waits: list[tuple[int, int]] = []
    counted = 0  # positions counted so far: executed steps plus nops with a dependency
    chain: list[Step] = []
    chain_first = 0
    chain_waits: tuple[tuple[int, int], ...] = ()

    def close_chain() -> None:
        last = chain[-1]
        transmissions.append(
            Transmission(
                type=last.type,
                srcbuf=last.srcbuf,
                srcoffs=tuple(member.srcoff for member in chain),
                dstbuf=last.dstbuf,
                dstoff=last.dstoff,
                cnt=last.cnt,
                waits=chain_waits,
                publishes=counted - 1 if last.hasdep == 1 else None,
                position=counted - 1,
                first_step=chain_first,
                last_step=chain_first + len(chain) - 1,  # a chain never spans a nop
            )
        )
        chain.clear()

    for index, step in enumerate(tb.steps):
        if step.type == "nop":
            if step.depid >= 0:
                pending_waits.append((step.depid, step.deps))
                counted += 1
            continue
        if chain and _fuses(chain[-1], step, pending_waits):
            chain.append(step)
            counted += 1
            continue
        if chain:
            close_chain()
        waits = [*pending_waits, (step.depid, step.deps)] if step.depid >= 0 else list(pending_waits)
        pending_waits.clear()
        chain.append(step)
        chain_first = index
        chain_waits = tuple(waits)
        counted += 1
    if chain:
        close_chain()
    return transmissions
