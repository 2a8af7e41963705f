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
        self._next_serial = 1
        self.zero = Clock(np.zeros(ranks, dtype=np.int64), [np.zeros(width, dtype=np.int32)] * ranks)

    def _serials(self, count: int) -> np.ndarray:
        """``count`` fresh serial numbers."""
        first = self._next_serial
        self._next_serial += count
        return np.arange(first, self._next_serial, dtype=np.int64)

    def join(self, into: Clock, other: Clock, rank: int, local: int, epoch: int) -> Clock:
        """``into`` joined with ``other``, the clock of threadblock ``local`` of ``rank`` whose own entry
        is ``epoch`` (kept apart from its blocks). Returns ``into`` itself when it already knows all.

        The blocks whose serials differ are maximised together in one vectorised operation; where
        ``other``'s block already holds the maximum the result takes that block (and serial), so
        knowledge passed on unchanged stays shared, and only blocks that neither side holds are new (all
        of one join's new blocks are rows of one array)."""
        serials, blocks = into.serials, into.blocks
        differ = (serials != other.serials).nonzero()[0]
        if differ.size:
            rows = differ.tolist()
            pick = operator.itemgetter(*rows) if len(rows) > 1 else lambda blocks: (blocks[rows[0]],)
            ours, theirs = np.array(pick(blocks)), np.array(pick(other.blocks))
            merged = np.maximum(ours, theirs)
            learns = (merged != ours).any(axis=1)
            if learns.any():
                fresh = learns & (merged != theirs).any(axis=1)
                taken = differ[learns & ~fresh]
                serials, blocks = serials.copy(), blocks.copy()
                serials[taken] = other.serials[taken]
                theirs_blocks = other.blocks
                for r in taken.tolist():
                    blocks[r] = theirs_blocks[r]
                if fresh.any():
                    made = differ[fresh]
                    serials[made] = self._serials(made.size)
                    for r, block in zip(made.tolist(), merged[fresh], strict=True):
                        blocks[r] = block
        block = blocks[rank]
        if block[local] < epoch:
            block = block.copy()
            block[local] = epoch
            if serials is into.serials:
                serials, blocks = serials.copy(), blocks.copy()
            serials[rank] = self._serials(1)[0]
            blocks[rank] = block
        if serials is into.serials:
            return into
        return Clock(serials, blocks)
