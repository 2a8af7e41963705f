"""The shared per-rank clocks of the simulation hold exactly what dense vector clocks hold."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.verify.clocks import ClockFactory

#: threadblocks per rank (uneven, so a block is padded)
SIZES = [3, 1, 2]
OWNER = [(rank, local) for rank, size in enumerate(SIZES) for local in range(size)]

#: (kind, threadblock, other): tick the threadblock, snapshot it (a send or a publish), or join the
#: snapshot number ``other`` into it (a receive or a flag wait)
actions = st.lists(
    st.tuples(
        st.sampled_from(["tick", "snapshot", "join"]), st.integers(0, len(OWNER) - 1), st.integers(0, 50)
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_join_matches_dense_vector_clocks(script: list[tuple[str, int, int]]) -> None:
    count = len(OWNER)
    factory = ClockFactory(len(SIZES), max(SIZES))
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
        elif snapshots:
            sender, known, clock, epoch = snapshots[other % len(snapshots)]
            before = [block.copy() for block in clock.blocks]
            np.maximum(dense[tb], known, out=dense[tb])
            clocks[tb] = factory.join(clocks[tb], clock, *OWNER[sender], epoch)
            assert all(np.array_equal(a, b) for a, b in zip(before, clock.blocks, strict=True)), "shared"
        for gid in range(count):
            for seen, (rank, local) in enumerate(OWNER):
                if seen != gid:  # a clock's own entry is its epoch, kept apart
                    assert clocks[gid].blocks[rank][local] == dense[gid][seen]
