"""The shared per-rank clocks of the simulation hold exactly what dense vector clocks hold."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.verify.clocks import ClockFactory

#: threadblocks per rank (uneven, so a block is padded)
SIZES = [3, 1, 2]
OWNER = [(rank, local) for rank, size in enumerate(SIZES) for local in range(size)]

#: (kind, threadblock, other): tick the threadblock, snapshot it (a send or a publish), drop the
#: snapshot number ``other`` (a message received, a publish no longer awaited) or join it into the
#: threadblock (a receive or a flag wait)
actions = st.lists(
    st.tuples(
        st.sampled_from(["tick", "snapshot", "drop", "join"]),
        st.integers(0, len(OWNER) - 1),
        st.integers(0, 50),
    ),
    max_size=80,
)


def _entries(factory: ClockFactory, clock: object) -> list[list[int]]:
    return [factory.block(clock, rank).tolist() for rank in range(len(SIZES))]  # type: ignore[arg-type]


def _check_against_dense(script: list[tuple[str, int, int]], capacity: int) -> None:
    count = len(OWNER)
    factory = ClockFactory(len(SIZES), max(SIZES), max_epoch=80, capacity=capacity)
    dense = [np.zeros(count, dtype=np.int64) for _ in range(count)]
    clocks = [factory.zero] * count
    epochs = [0] * count
    snapshots = []  # (sender, dense copy, shared clock, sender's epoch)
    for kind, tb, other in script:
        if kind == "tick":
            epochs[tb] += 1
            dense[tb][tb] = epochs[tb]
        elif kind == "snapshot":
            snapshots.append((tb, dense[tb].copy(), clocks[tb], epochs[tb]))
        elif kind == "drop" and snapshots:
            snapshots.pop(other % len(snapshots))
        elif kind == "join" and snapshots:
            sender, known, clock, epoch = snapshots[other % len(snapshots)]
            before = _entries(factory, clock)
            np.maximum(dense[tb], known, out=dense[tb])
            clocks[tb] = factory.join(clocks[tb], clock, *OWNER[sender], epoch)
            assert _entries(factory, clock) == before, "a join changes no other clock"
        for gid in range(count):
            for seen, (rank, local) in enumerate(OWNER):
                if seen != gid:  # a clock's own entry is its epoch, kept apart
                    assert factory.block(clocks[gid], rank)[local] == dense[gid][seen]
        for sender, known, clock, _ in snapshots:  # messages in flight keep what they carried
            for seen, (rank, local) in enumerate(OWNER):
                if seen != sender:
                    assert factory.block(clock, rank)[local] == known[seen]


@settings(max_examples=300, deadline=None)
@given(actions)
def test_join_matches_dense_vector_clocks(script: list[tuple[str, int, int]]) -> None:
    _check_against_dense(script, capacity=4096)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_collecting_keeps_every_live_clock(script: list[tuple[str, int, int]]) -> None:
    """A pool of 2 rows runs out of free rows at almost every join: the rows of the clocks still alive
    (the threadblocks' and the snapshots in flight) must never be reused."""
    _check_against_dense(script, capacity=2)


def test_pool_is_bounded_by_the_live_blocks() -> None:
    """Rows no live clock names are reclaimed: a long run of joins between two threadblocks that
    keep advancing leaves the pool the size of what is live, not of the joins made."""
    factory = ClockFactory(2, 1, max_epoch=2000, capacity=8)
    clocks = [factory.zero, factory.zero]
    for epoch in range(1, 2001):
        for tb in (0, 1):
            clocks[tb] = factory.join(clocks[tb], clocks[1 - tb], 1 - tb, 0, epoch)
        assert factory.block(clocks[0], 1)[0] == epoch
        assert factory.block(clocks[1], 0)[0] == epoch
    assert factory.capacity <= 8, "the pool grew with the joins instead of reusing dead rows"


def test_entries_hold_the_largest_epoch() -> None:
    """The pool's integers are as narrow as the epochs allow, and never narrower: an epoch of 40,000
    (past 16 bits) survives a join."""
    for max_epoch, width in ((32767, 2), (40000, 4)):
        factory = ClockFactory(2, 1, max_epoch=max_epoch)
        clock = factory.join(factory.zero, factory.zero, 1, 0, max_epoch)
        assert factory.block(clock, 1)[0] == max_epoch
        assert factory.dtype.itemsize == width
