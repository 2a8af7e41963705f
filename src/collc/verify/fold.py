"""Fold a threadblock's steps into the transmissions the runtime actually executes.

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

    #: whether the type sends / receives, kept as fields for the simulator's inner loop
    sends: bool = False
    receives: bool = False


def _fuses(previous: Step, step: Step, pending_waits: list[tuple[int, int]]) -> bool:
    """Whether ``step`` joins the ``re`` chain that ends with ``previous``."""
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


@dataclass
class _Chain:
    """Steps that execute as one transmission (one step, or a fused ``re`` chain) while folding."""

    members: list[Step]
    first_step: int
    last_step: int
    waits: tuple[tuple[int, int], ...]
    position: int

    def transmission(self) -> Transmission:
        last = self.members[-1]
        return Transmission(
            type=last.type,
            srcbuf=last.srcbuf,
            srcoffs=tuple(member.srcoff for member in self.members),
            dstbuf=last.dstbuf,
            dstoff=last.dstoff,
            cnt=last.cnt,
            waits=self.waits,
            publishes=self.position if last.hasdep == 1 else None,
            position=self.position,
            first_step=self.first_step,
            last_step=self.last_step,
            sends=last.type in SEND_TYPES,
            receives=last.type in RECV_TYPES,
        )


def fold_threadblock(tb: Threadblock) -> list[Transmission]:
    """The transmissions of ``tb`` in execution order, with the runtime's position counter."""
    chains: list[_Chain] = []
    pending_waits: list[tuple[int, int]] = []
    counted = 0  # positions counted so far: executed steps plus nops with a dependency
    for index, step in enumerate(tb.steps):
        if step.type == "nop":
            if step.depid >= 0:
                pending_waits.append((step.depid, step.deps))
                counted += 1
            continue
        counted += 1
        if chains and _fuses(chains[-1].members[-1], step, pending_waits):
            chain = chains[-1]
            chain.members.append(step)
            chain.last_step, chain.position = index, counted - 1
            continue
        own = [(step.depid, step.deps)] if step.depid >= 0 else []
        chains.append(_Chain([step], index, index, (*pending_waits, *own), counted - 1))
        pending_waits.clear()
    return [chain.transmission() for chain in chains]
