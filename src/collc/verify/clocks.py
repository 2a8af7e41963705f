"""Vector clocks for the simulation's happens-before, stored as shared per-rank blocks.

A vector clock has one entry per threadblock of the whole program; kept densely, one clock per
threadblock costs (threadblocks)² entries, and a copy per message in flight more: 7 GB of clocks alone
at 512 GPUs. But a threadblock only ever reads and writes the memory of its own rank, so the race check
only asks a clock about threadblocks of the asking rank; the other entries only carry knowledge along
(a send up a tree and the reduced chunk coming back down order two accesses of one rank).

So a :class:`Clock` is immutable and split into one block per rank (that rank's threadblocks' entries):
a join copies only the blocks where the two clocks differ and neither dominates, a message or a publish
shares the sender's clock instead of copying it, and a threadblock's own entry is kept apart (its
epoch) so that running a step changes no clock. Blocks are compared by a serial number first, so a join
with a clock that shares most blocks costs little more than one vectorised comparison of the serials.
The result is the same happens-before as dense vector clocks: every entry is the same number.
"""

from __future__ import annotations

import itertools
import operator

import numpy as np


class Clock:
    """An immutable vector clock: ``blocks[r]`` holds the entries of rank r's threadblocks, padded to
    the widest rank, and ``serials[r]`` names that block (equal serials: the same block; 0: all zero)."""

    __slots__ = ("blocks", "serials")

    def __init__(self, serials: np.ndarray, blocks: list[np.ndarray]):
        self.serials = serials
        self.blocks = blocks


class ClockFactory:
    """Creates the clocks of one program and joins them."""

    def __init__(self, ranks: int, width: int):
        #: entries per block: the most threadblocks of one rank
        self.width = width
        self._serial = itertools.count(1)
        self.zero = Clock(np.zeros(ranks, dtype=np.int64), [np.zeros(width, dtype=np.int32)] * ranks)

    def join(self, into: Clock, other: Clock, rank: int, local: int, epoch: int) -> Clock:
        """``into`` joined with ``other``, the clock of threadblock ``local`` of ``rank`` whose own entry
        is ``epoch`` (kept apart from its blocks). Returns ``into`` itself when it already knows all.

        The blocks whose serials differ are maximised together in one vectorised operation; a result
        equal to ``other``'s block takes that block (and serial), so knowledge passed on unchanged stays
        shared, and only blocks that neither side holds are new."""
        changed: dict[int, tuple[int, np.ndarray]] = {}
        differ = np.flatnonzero(into.serials != other.serials).tolist()
        if differ:
            pick = operator.itemgetter(*differ) if len(differ) > 1 else lambda blocks: (blocks[differ[0]],)
            ours, theirs = np.array(pick(into.blocks)), np.array(pick(other.blocks))
            merged = np.maximum(ours, theirs)
            take_theirs = (merged == theirs).all(axis=1).tolist()
            for row in np.flatnonzero((merged != ours).any(axis=1)).tolist():
                r = differ[row]
                if take_theirs[row]:
                    changed[r] = (int(other.serials[r]), other.blocks[r])
                else:
                    changed[r] = (next(self._serial), merged[row].copy())
        block = changed[rank][1] if rank in changed else into.blocks[rank]
        if block[local] < epoch:
            block = block.copy()
            block[local] = epoch
            changed[rank] = (next(self._serial), block)
        if not changed:
            return into
        serials = into.serials.copy()
        blocks = into.blocks.copy()
        for r, (serial, value) in changed.items():
            serials[r] = serial
            blocks[r] = value
        return Clock(serials, blocks)
