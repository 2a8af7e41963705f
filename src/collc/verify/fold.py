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

from typing import NamedTuple

from collc.msccl.program import RECV_TYPES, SEND_TYPES, Step, Threadblock


class Transmission(NamedTuple):
    """One executed unit: a step, or a fused ``re`` chain, with the waits folded into it (a named
    tuple, made once per step: a 512-GPU file has 1.4 million steps)."""

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


def fold_threadblock(tb: Threadblock) -> list[Transmission]:
    """The transmissions of ``tb`` in execution order, with the runtime's position counter. A fused
    chain's transmission is its last member's, with every member's source offset."""
    transmissions: list[Transmission] = []
    pending_waits: list[tuple[int, int]] = []
    counted = 0  # positions counted so far: executed steps plus nops with a dependency
    previous: Step | None = None  # the last member of the last transmission
    for index, step in enumerate(tb.steps):
        if step.type == "nop":
            if step.depid >= 0:
                pending_waits.append((step.depid, step.deps))
                counted += 1
            continue
        counted += 1
        publishes = counted - 1 if step.hasdep == 1 else None
        if previous is not None and _fuses(previous, step, pending_waits):
            chain = transmissions[-1]
            transmissions[-1] = chain._replace(
                srcoffs=(*chain.srcoffs, step.srcoff),
                cnt=step.cnt,
                publishes=publishes,
                position=counted - 1,
                last_step=index,
            )
        else:
            own = ((step.depid, step.deps),) if step.depid >= 0 else ()
            transmissions.append(
                Transmission(
                    type=step.type,
                    srcbuf=step.srcbuf,
                    srcoffs=(step.srcoff,),
                    dstbuf=step.dstbuf,
                    dstoff=step.dstoff,
                    cnt=step.cnt,
                    waits=(*pending_waits, *own),
                    publishes=publishes,
                    position=counted - 1,
                    first_step=index,
                    last_step=index,
                    sends=step.type in SEND_TYPES,
                    receives=step.type in RECV_TYPES,
                )
            )
            pending_waits = []
        previous = step
    return transmissions
