"""Vector clocks for the simulation's happens-before, stored as shared per-rank blocks.

A vector clock has one entry per threadblock of the whole program; kept densely, one clock per
threadblock costs (threadblocks)² entries, and a copy per message in flight more: 7 GB of clocks alone
at 512 GPUs. But a threadblock only ever reads and writes the memory of its own rank, so the race check
only asks a clock about threadblocks of the asking rank; the other entries only carry knowledge along
(a send up a tree and the reduced chunk coming back down order two accesses of one rank).

So a :class:`Clock` is immutable and split into one block per rank (that rank's threadblocks' entries):
a join makes new blocks only where the two clocks differ and neither dominates, a message or a publish
shares the sender's clock instead of copying it, and a threadblock's own entry is kept apart (its
epoch) so that running a step changes no clock. Blocks live as rows of one pool and a clock is the
vector of its blocks' row numbers, so a join compares the row numbers first and gathers and maximises
only the rows that differ, in a few vectorised operations. The result is the same happens-before as
dense vector clocks: every entry is the same number.

A row is never changed while a clock names it. When no row is free, the rows no live clock names are
freed (the live clocks are the ones still referenced: threadblocks' current clocks, messages in
flight, publishes still awaited); the pool grows only when most of it is live, so its size follows
the live blocks, not the joins made.
"""

from __future__ import annotations

import weakref

import numpy as np
from numba import njit

#: rows the pool starts with (it doubles when collecting frees less than a quarter of it)
INITIAL_ROWS = 4096


class Clock:
    """An immutable vector clock: ``rows[r]`` is the pool row holding the entries of rank r's
    threadblocks, padded to the widest rank (row 0: all zero)."""

    __slots__ = ("__weakref__", "rows")

    def __init__(self, rows: np.ndarray):
        self.rows = rows


class ClockFactory:
    """Creates the clocks of one program, holds their blocks and joins them."""

    def __init__(self, ranks: int, width: int, max_epoch: int, capacity: int = INITIAL_ROWS):
        #: entries per block: the most threadblocks of one rank
        self.width = width
        #: the narrowest integer that holds every epoch (no threadblock's epoch exceeds ``max_epoch``):
        #: a join's cost is the bytes of the rows it compares
        self.dtype = next(np.dtype(t) for t in (np.int16, np.int32, np.int64) if max_epoch <= np.iinfo(t).max)
        self._pool = np.zeros((max(capacity, 2), width), dtype=self.dtype)
        #: rows that no clock names, to be written next (row 0 is the all-zero block)
        self._free = np.arange(1, len(self._pool))
        self._next_free = 0
        #: every clock alive at the last pruning or made since (a weak reference dies with its clock)
        self._made: list[weakref.ref[Clock]] = []
        self._prune_at = 1024
        self.zero = self._clock(np.zeros(ranks, dtype=np.int64))
        # scratch of :func:`_join_rows`: the joined clock's rows, the ranks whose blocks are new, those blocks
        self._rows = np.zeros(ranks, dtype=np.int64)
        self._fresh = np.zeros(ranks, dtype=np.int64)
        self._blocks = np.zeros((ranks, width), dtype=self.dtype)

    def _clock(self, rows: np.ndarray) -> Clock:
        clock = Clock(rows)
        self._made.append(weakref.ref(clock))
        if len(self._made) > self._prune_at:
            self._live()
        return clock

    @property
    def capacity(self) -> int:
        """Rows the pool holds, live or free."""
        return len(self._pool)

    def _live(self) -> list[Clock]:
        """The clocks still alive; drops the references to dead ones (so their list stays within twice
        the live clocks, plus a constant)."""
        live = [clock for clock in (ref() for ref in self._made) if clock is not None]
        self._made = [weakref.ref(clock) for clock in live]
        self._prune_at = 2 * len(live) + 1024
        return live

    def block(self, clock: Clock, rank: int) -> np.ndarray:
        """The entries of ``rank``'s threadblocks in ``clock`` (read-only; valid until the next join)."""
        return self._pool[clock.rows[rank]]

    def join(self, into: Clock, other: Clock, rank: int, local: int, epoch: int) -> Clock:
        """``into`` joined with ``other``, the clock of threadblock ``local`` of ``rank`` whose own entry
        is ``epoch`` (kept apart from its blocks). Returns ``into`` itself when it already knows all.

        Where ``other``'s block already holds the maximum the result names that row, so knowledge
        passed on unchanged stays shared; only the blocks that neither side holds (and the sender's
        own block, to hold its epoch) are maximised and written as new rows (:func:`_join_rows`, compiled:
        a verification makes a join per message and per flag wait, 593,408 at 256 GPUs)."""
        rows, fresh, blocks = self._rows, self._fresh, self._blocks
        count = _join_rows(self._pool, into.rows, other.rows, rank, local, epoch, rows, fresh, blocks)
        if count < 0:
            return into
        joined = rows.copy()
        if count:
            joined[fresh[:count]] = self._store(blocks[:count])
        return self._clock(joined)

    def _store(self, blocks: np.ndarray) -> np.ndarray:
        """Write ``blocks`` into free rows and return their numbers (collecting dead rows first when
        too few are free)."""
        count = len(blocks)
        if self._next_free + count > len(self._free):
            self._collect(count)
        rows = self._free[self._next_free : self._next_free + count]
        self._next_free += count
        self._pool[rows] = blocks
        return rows

    def _collect(self, needed: int) -> None:
        """Free every row no live clock names (row 0, the zero block, always stays); double the pool
        when less than a quarter of it, or fewer than ``needed`` rows, would be free."""
        alive = np.zeros(len(self._pool), dtype=bool)
        alive[0] = True
        alive[np.concatenate([clock.rows for clock in self._live()])] = True
        free = (~alive).nonzero()[0]
        if 4 * len(free) < len(self._pool) or len(free) < needed:
            grown = np.zeros((2 * len(self._pool) + needed, self.width), dtype=self.dtype)
            grown[: len(self._pool)] = self._pool
            free = np.concatenate([free, np.arange(len(self._pool), len(grown))])
            self._pool = grown
        self._free, self._next_free = free, 0


@njit(cache=True)
def _join_rows(
    pool: np.ndarray,
    ours: np.ndarray,
    theirs: np.ndarray,
    rank: int,
    local: int,
    epoch: int,
    rows: np.ndarray,
    fresh: np.ndarray,
    blocks: np.ndarray,
) -> int:
    """The join of the clocks whose blocks are the pool rows ``ours`` and ``theirs`` (the latter of
    threadblock ``local`` of ``rank``, own entry ``epoch``): ``rows`` gets the row each rank's block
    of the result is, ``fresh[:n]`` the ranks whose block is new and ``blocks[:n]`` those blocks (the
    entrywise maximum, with the sender's epoch in its own block). Returns n, or -1 when ``ours``
    already holds everything (the join is ``ours`` itself)."""
    bump = max(pool[ours[rank], local], pool[theirs[rank], local]) < epoch
    learned = False
    count = 0
    for r in range(len(ours)):
        a, b = ours[r], theirs[r]
        rows[r] = a
        own = bump and r == rank
        if a == b and not own:
            continue
        learns = own
        teaches = own
        for i in range(pool.shape[1]):
            if pool[b, i] > pool[a, i]:
                learns = True
            elif pool[a, i] > pool[b, i]:
                teaches = True
        if not learns:
            continue
        learned = True
        if not teaches:
            rows[r] = b  # theirs holds the maximum: share its row
            continue
        for i in range(pool.shape[1]):
            blocks[count, i] = max(pool[a, i], pool[b, i])
        if own:
            blocks[count, local] = epoch
        fresh[count] = r
        count += 1
    return count if learned else -1
