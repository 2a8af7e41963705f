"""Happens-before of a replay, recorded as it runs and decided afterwards, a group of ranks at a time.

A race check asks whether an earlier access by threadblock ``other`` happens before the current step of
threadblock ``gid`` on the same rank. Vector clocks answer that on the spot, but then every clock
alive carries an entry for every threadblock of the program: a threadblock only asks about its own
rank, yet the others' entries must travel with it (a chunk sent up a tree and its reduction coming
back down order two accesses of one rank through every rank between). Even with a block of entries
per rank shared between clocks, the blocks alive at once grow as threadblocks × ranks: the verifier's
memory wall at 256 GPUs and beyond.

So the replay only records. Each threadblock's clock is a *version*: version 0 knows nothing, and
every receive or flag wait makes a new version, the join of the threadblock's previous version and
the version the sender had when it sent or published (plus the sender's own entry, its epoch). A race
check records a *question* against the asking threadblock's current version. Afterwards a compiled
pass answers the questions of a group of ranks by replaying the joins with clocks restricted to the
group's threadblocks (a block of entries per rank), group after group:

* the entries are the same numbers full vector clocks would hold (entry for entry: a join is an
  entrywise maximum, so restricting to some ranks' entries commutes with it);
* memory is linear in the program: the record (a few integers per join and per question), a table
  of row numbers (versions alive × ranks of the group) and the blocks they name, which
  :data:`PASS_BYTES` bounds by choosing the group;
* a pass starts at the first join whose sender is in its group (before it every block of the group
  is zero) and ends at its last question; a version names the same block as one side of its join
  where that side already holds the maximum, so most of a join is comparing row numbers, a
  vectorised pass over the group.

The time is joins × ranks row-number comparisons plus the work of the blocks that differ, which is
what the per-join loop over ranks of shared vector clocks cost; what goes is their memory.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from collc.kernels import kernel

#: bytes of one pass's blocks: the ranks a pass takes are as many as fit (the memory stays bounded
#: whatever the number of ranks; more ranks only take more passes)
PASS_BYTES = 256 * 2**20


class Order:
    """The recorded joins and questions of one replay, and their answers."""

    def __init__(self, slot: Sequence[int], local: Sequence[int], max_epoch: int):
        """``slot[gid]``/``local[gid]``: the rank index of threadblock ``gid`` and its index among that
        rank's threadblocks; ``max_epoch``: no threadblock's epoch exceeds it (sizes the entries)."""
        self.slot = np.asarray(slot, dtype=np.int32)
        self.local = np.asarray(local, dtype=np.int32)
        self.ranks = int(self.slot.max()) + 1 if len(self.slot) else 0
        self.width = int(np.bincount(self.slot).max()) if len(self.slot) else 0
        #: the narrowest integer that holds every epoch: a join costs the bytes of the rows it compares
        self.dtype = next(np.dtype(t) for t in (np.int16, np.int32, np.int64) if max_epoch <= np.iinfo(t).max)
        #: each threadblock's current version (0: knows nothing)
        self.current = [0] * len(self.slot)
        # join j makes version j + 1 of ``_into[j]`` from its version ``_prev[j]`` and ``_from[j]``
        # (of threadblock ``_sender[j]``, whose own entry was ``_epoch[j]``)
        self._into, self._prev, self._from = array("i"), array("i"), array("i")
        self._sender, self._epoch = array("i"), array("q")
        # question q: does version ``_version[q]`` (the asker's) know epoch ``_asked[q]`` of ``_other[q]``?
        self._version, self._other, self._asked = array("i"), array("i"), array("q")
        self._known: np.ndarray | None = None  # per question, once decided: whether it is answered yes

    def join(self, gid: int, version: int, sender: int, epoch: int) -> None:
        """``gid`` learns what ``sender`` knew at ``version``, its own entry then being ``epoch``."""
        self._into.append(gid)
        self._prev.append(self.current[gid])
        self._from.append(version)
        self._sender.append(sender)
        self._epoch.append(epoch)
        self.current[gid] = len(self._into)

    def ask(self, gid: int, other: int, epoch: int) -> int:
        """Record the question whether ``other``'s step at ``epoch`` happens before ``gid``'s current
        step (both on one rank); returns its number."""
        self._version.append(self.current[gid])
        self._other.append(other)
        self._asked.append(epoch)
        return len(self._version) - 1

    def decide(self, budget: int | None = None, rows: int = 1024) -> Iterator[tuple[int, int]]:
        """Answer every question, a group of ranks at a time, yielding (groups done, groups) after
        each group so that a caller can report progress or stop and resume. ``budget`` (default
        :data:`PASS_BYTES`) bounds the bytes of one pass's blocks, which sets how many ranks a group
        takes; the pool of blocks starts with ``rows`` rows in use and grows as the blocks alive need."""
        known = np.zeros(len(self._version), dtype=np.bool_)  # epochs asked are >= 1: no before any join
        if self._version:
            into = np.frombuffer(self._into, dtype=np.int32)
            sender = np.frombuffer(self._sender, dtype=np.int32)
            version = np.frombuffer(self._version, dtype=np.int32)
            # questions grouped by version (stable: within a version in asking order)
            order = np.argsort(version, kind="stable")
            starts = np.searchsorted(version[order], np.arange(len(into) + 2))
            prev, source = (
                np.frombuffer(self._prev, dtype=np.int32),
                np.frombuffer(self._from, dtype=np.int32),
            )
            lives = _lives(prev, source)
            # a live version names one block per rank of the pass (a row number each); the pool is
            # reserved for twice the most blocks that can be alive, and rows are touched only as used
            per_rank = lives.count * (2 * self.width * self.dtype.itemsize + 4)
            group = max(1, min(self.ranks, (PASS_BYTES if budget is None else budget) // per_rank))
            joins = Joins(
                lives,
                self.slot[sender],
                self.local[sender],
                np.frombuffer(self._epoch, dtype=np.int64),
                self.slot[into],
                order,
                starts,
                self.local[np.frombuffer(self._other, dtype=np.int32)],
                np.frombuffer(self._asked, dtype=np.int64),
            )
            first, last = _windows(joins, self.ranks)
            table = np.zeros((lives.count, group), dtype=np.int32)  # per place and rank: a pool row
            alive = np.zeros(lives.count, dtype=np.bool_)
            # zeroed lazily by the system: only the rows in use take memory
            pool = np.zeros((2 * lives.count * group + 2, self.width), dtype=self.dtype)
            used = max(2, min(rows, len(pool)))
            groups = -(-self.ranks // group)
            for number, low in enumerate(range(0, self.ranks, group)):
                high = min(self.ranks, low + group)
                begin, end = first[low:high].min(), last[low:high].max()
                if begin <= end:  # else nothing is asked after anything is known: every answer is no
                    used = _answer_group(joins, low, high, begin, end, table, alive, pool, used, known)
                yield number + 1, groups
        self._known = known

    def unordered(self) -> np.ndarray:
        """The numbers of the questions answered no (ascending): their two accesses are not ordered
        (deciding whatever :meth:`decide` has not)."""
        if self._known is None:
            for _ in self.decide():
                pass
        return (~self._known).nonzero()[0]  # type: ignore[operator]


class Joins(NamedTuple):
    """The record as the compiled passes read it: per join, per question."""

    lives: Lives
    #: per join: the sender's rank index and its index among that rank's threadblocks, its own entry
    sender_slot: np.ndarray
    sender_local: np.ndarray
    epoch: np.ndarray
    #: per join: the rank index of the threadblock that learns
    into_slot: np.ndarray
    #: the questions by version: ``order[starts[v]:starts[v + 1]]`` ask about version v
    order: np.ndarray
    starts: np.ndarray
    #: per question: the index among its rank's threadblocks of the one asked about, and its epoch
    asked_local: np.ndarray
    asked: np.ndarray


class Lives(NamedTuple):
    """Where each join's versions live: a version holds a *place* (a row of the table of row numbers)
    from the join that makes it to the last join that reads it, then the place is reused."""

    #: per join j: the places of the version it extends, of the version it learns from, of the one it makes
    prev: np.ndarray
    source: np.ndarray
    made: np.ndarray
    #: per join: bit 0, 1, 2 set where that join is the last to need the prev, source, made version
    ends: np.ndarray
    #: the most places alive at once (place 0: version 0, which knows nothing)
    count: int


@njit(cache=True)
def _lives(prev: np.ndarray, source: np.ndarray) -> Lives:
    """Give every version a place, reusing a place once no later join reads its version."""
    joins = len(prev)
    last_use = np.full(joins + 1, -1, dtype=np.int64)
    for j in range(joins):
        last_use[prev[j]] = j
        last_use[source[j]] = j
    place = np.zeros(joins + 1, dtype=np.int32)
    at_prev = np.zeros(joins, dtype=np.int32)
    at_source = np.zeros(joins, dtype=np.int32)
    made = np.zeros(joins, dtype=np.int32)
    ends = np.zeros(joins, dtype=np.uint8)
    free = np.zeros(joins + 1, dtype=np.int32)  # a stack of places
    top, count = 0, 1
    for j in range(joins):
        at_prev[j], at_source[j] = place[prev[j]], place[source[j]]
        if top:
            top -= 1
            made[j] = free[top]
        else:
            made[j] = count
            count += 1
        place[j + 1] = made[j]
        if prev[j] and last_use[prev[j]] == j:
            ends[j] |= 1
            free[top] = at_prev[j]
            top += 1
        if source[j] and source[j] != prev[j] and last_use[source[j]] == j:
            ends[j] |= 2
            free[top] = at_source[j]
            top += 1
        if last_use[j + 1] < 0:
            ends[j] |= 4
            free[top] = made[j]
            top += 1
    return Lives(at_prev, at_source, made, ends, count)


@njit(cache=True)
def _windows(joins: Joins, ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per rank: the first join that brings its knowledge (its sender is on the rank) and the last
    join whose version is asked about there; a pass needs only the joins between."""
    count = len(joins.sender_slot)
    first = np.full(ranks, count, dtype=np.int64)
    last = np.full(ranks, -1, dtype=np.int64)
    for j in range(count - 1, -1, -1):
        first[joins.sender_slot[j]] = j
        if last[joins.into_slot[j]] < 0 and joins.starts[j + 2] > joins.starts[j + 1]:
            last[joins.into_slot[j]] = j
    return first, last


@njit(cache=True)
def _answer_group(
    joins: Joins,
    low: int,
    high: int,
    begin: int,
    end: int,
    table: np.ndarray,
    alive: np.ndarray,
    pool: np.ndarray,
    used: int,
    known: np.ndarray,
) -> int:
    """Answer the questions of ranks ``low`` … ``high - 1`` into ``known``, replaying joins ``begin`` …
    ``end`` with each live version naming one block per rank (``table``: a ``pool`` row, row 0 the
    zero block). Blocks take the first ``used`` rows of the pool, collected when they are full and
    doubled when a collection frees less than a quarter; returns the rows in use then. (The pool is
    never reallocated here: a new array bound in the loop made numba take seconds longer to compile
    the function.) The pool holds twice the most blocks that can be alive, so a collection at its
    end always frees rows."""
    lives, width = joins.lives, high - low
    table[:] = 0
    alive[:] = False
    alive[0] = True
    free = np.zeros(0, dtype=np.int64)  # rows freed by the last collection (a stack of ``top``)
    top, fresh = 0, 1  # rows from ``fresh`` on are unused in this pass
    for j in range(begin, end + 1):
        at, other, made = lives.prev[j], lives.source[j], lives.made[j]
        alive[made] = True
        differ = 0
        for g in range(width):  # the common case: both sides name the same block
            a, b = table[at, g], table[other, g]
            table[made, g] = a if a == b else -1
            differ += a != b
        sender = joins.sender_slot[j]
        bumped = sender - low if low <= sender < high else -1
        for g in range(width):
            if not differ and bumped < 0:
                break
            if table[made, g] >= 0 and g != bumped:
                continue
            a, b = table[at, g], table[other, g]
            entry = joins.sender_local[j] if g == bumped else -1
            bump = entry >= 0 and max(pool[a, entry], pool[b, entry]) < joins.epoch[j]
            learns, teaches = _compare(pool, a, b)
            if not (learns or bump):
                table[made, g] = a
                continue
            if not (teaches or bump):
                table[made, g] = b
                continue
            if not top and fresh == used:
                free = _collect(table, alive, width, used)
                top = len(free)
                if 4 * top < used:  # most rows are alive: use more
                    used = min(2 * used, len(pool))
            if top:
                top -= 1
                row = free[top]
            else:
                row, fresh = fresh, fresh + 1
            assert row < used, "a block outside the rows in use"
            for i in range(pool.shape[1]):
                pool[row, i] = max(pool[a, i], pool[b, i])
            if bump:
                pool[row, entry] = joins.epoch[j]
            table[made, g] = row
        if low <= joins.into_slot[j] < high:
            row = table[made, joins.into_slot[j] - low]
            for q in range(joins.starts[j + 1], joins.starts[j + 2]):
                question = joins.order[q]
                known[question] = pool[row, joins.asked_local[question]] >= joins.asked[question]
        if lives.ends[j] & 1:
            alive[at] = False
        if lives.ends[j] & 2:
            alive[other] = False
        if lives.ends[j] & 4:
            alive[made] = False
    return used


@kernel
def _compare(pool: np.ndarray, a: int, b: int) -> tuple[bool, bool]:
    """Whether block ``b`` holds an entry above block ``a`` (a learns), and the other way round."""
    learns = teaches = 0
    if a != b:
        for i in range(pool.shape[1]):  # no branch: the loop vectorises
            learns |= pool[b, i] > pool[a, i]
            teaches |= pool[a, i] > pool[b, i]
    return learns != 0, teaches != 0


@njit(cache=True)
def _collect(table: np.ndarray, alive: np.ndarray, width: int, rows: int) -> np.ndarray:
    """The pool rows that no live place names (row 0, the zero block, always stays)."""
    used = np.zeros(rows, dtype=np.bool_)
    used[0] = True
    for place in range(len(alive)):
        if alive[place]:
            for g in range(width):
                if table[place, g] >= 0:
                    used[table[place, g]] = True
    return (~used).nonzero()[0]
