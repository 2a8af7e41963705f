"""The recorded happens-before answers every question as dense vector clocks would."""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.verify.fold import fold_threadblock
from collc.verify.order import Order, _lives
from collc.verify.simulate import Case, Simulator

from .programs import exchange

#: threadblocks per rank (uneven, so the blocks of one pass are padded)
SIZES = [3, 1, 2]
OWNER = [(rank, local) for rank, size in enumerate(SIZES) for local in range(size)]

KINDS = ("tick", "snapshot", "join", "ask")


def _script(seed: int) -> list[tuple[str, int, int]]:
    """A random run of up to 150 actions (kind, threadblock, other): tick the threadblock, snapshot it
    (a send or a publish), join snapshot ``other`` into it (a receive or a flag wait), or ask whether
    it knows another threadblock of its rank at an epoch up to one past that one's current epoch.
    Drawn uniformly from a seed: hypothesis' own lists stay short and simple, and missed a planted
    defect (a sender of another rank moving this rank's entries) that one script in five shows."""
    rng = random.Random(seed)
    return [
        (rng.choice(KINDS), rng.randrange(len(OWNER)), rng.randrange(51)) for _ in range(rng.randrange(151))
    ]


def _replay(script: list[tuple[str, int, int]]) -> tuple[Order, list[bool]]:
    """Run ``script`` on an :class:`Order` and on dense vector clocks; the dense answers."""
    count = len(OWNER)
    order = Order([rank for rank, _ in OWNER], [local for _, local in OWNER], max_epoch=200)
    dense = [np.zeros(count, dtype=np.int64) for _ in range(count)]
    epochs = [0] * count
    snapshots = []  # (sender, version, dense copy, sender's epoch)
    expected = []
    for kind, tb, other in script:
        if kind == "tick":
            epochs[tb] += 1
            dense[tb][tb] = epochs[tb]
        elif kind == "snapshot":
            snapshots.append((tb, order.current[tb], dense[tb].copy(), epochs[tb]))
        elif kind == "join" and snapshots:
            sender, version, known, epoch = snapshots[other % len(snapshots)]
            np.maximum(dense[tb], known, out=dense[tb])
            order.join(tb, version, sender, epoch)
        elif kind == "ask":
            peers = [g for g, (rank, _) in enumerate(OWNER) if rank == OWNER[tb][0] and g != tb]
            if peers:
                asked = peers[other % len(peers)]
                epoch = 1 + other % (epochs[asked] + 1)
                assert order.ask(tb, asked, epoch) == len(expected)
                expected.append(bool(dense[tb][asked] >= epoch))
    return order, expected


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_answers_match_dense_vector_clocks(seed: int) -> None:
    """With every rank in one pass and a roomy pool, and with a pass per rank and a pool of two rows
    (collected and grown at almost every new block)."""
    order, expected = _replay(_script(seed))
    no = [number for number, yes in enumerate(expected) if not yes]
    assert order.unordered().tolist() == no
    groups = list(order.decide(budget=1, rows=2))  # a group per rank: (groups done, groups)
    assert groups == ([(1, 3), (2, 3), (3, 3)] if expected else [])
    assert order.unordered().tolist() == no


def test_knowledge_travels_through_other_ranks() -> None:
    """Rank 0's tb 0 reads, sends through rank 2 and back to its tb 1 (like a chunk going up a tree and
    its reduction coming down): only the path through rank 2 orders the two accesses."""
    order, expected = _replay(
        [
            ("tick", 0, 0),  # rank 0 tb 0 reads (epoch 1) ...
            ("snapshot", 0, 0),  # ... and sends to rank 2
            ("join", 4, 0),  # rank 2 tb 4 receives
            ("tick", 4, 0),
            ("snapshot", 4, 0),  # and sends on to rank 0 tb 1
            ("join", 1, 1),
            ("ask", 1, 0),  # does tb 1 know tb 0's epoch 1? yes
            ("ask", 2, 0),  # tb 2 heard nothing: no
        ]
    )
    assert expected == [True, False]
    assert order.unordered().tolist() == [1]


def test_a_sender_of_another_rank_moves_none_of_this_ranks_entries() -> None:
    """Rank 1's threadblock at epoch 5 shares local index 0 with rank 0's tb 0: what tb 1 learns
    from it says nothing of tb 0's epoch 3."""
    order = Order([0, 0, 0, 1], [0, 1, 2, 0], max_epoch=100)
    order.join(1, 0, 0, 1)  # tb 1 hears tb 0 at epoch 1
    order.join(1, 0, 3, 5)  # and rank 1's tb 3 at epoch 5
    order.ask(1, 0, 3)
    order.ask(1, 0, 1)
    assert order.unordered().tolist() == [0]


def test_each_rank_answers_only_its_own_questions() -> None:
    """Rank 1's pass replays the joins around rank 0's question; it must not answer it with rank 1's
    entries (rank 0's tb 1 has heard rank 1's tb 3 at epoch 7, local index 0 like rank 0's tb 0)."""
    order = Order([0, 0, 0, 1, 1], [0, 1, 2, 0, 1], max_epoch=100)
    order.join(4, 0, 3, 7)  # rank 1's tb 4 hears tb 3 at epoch 7
    order.join(1, 0, 0, 1)  # rank 0's tb 1 hears tb 0 at epoch 1
    order.join(1, order.current[4], 4, 2)  # and tb 4 at epoch 2, which knew tb 3 at 7
    order.ask(1, 0, 2)  # no: it knows tb 0 at epoch 1 only
    order.join(3, order.current[1], 1, 3)  # rank 1's tb 3 hears tb 1
    order.ask(3, 4, 2)  # yes: through tb 1
    assert order.unordered().tolist() == [0]


def test_a_question_before_any_join_is_answered_no() -> None:
    order = Order([0, 0], [0, 1], max_epoch=10)
    order.ask(1, 0, 1)
    assert order.unordered().tolist() == [0]


def test_places_are_reused_as_versions_die() -> None:
    """A long chain of joins keeps a few versions alive: a pass needs places for those, not for
    every join (memory follows the versions alive, not the joins made)."""
    order = Order([0, 0, 1], [0, 1, 0], max_epoch=10_000)
    for step in range(1, 5000):
        order.join(2, order.current[0], 0, step)  # rank 1 hears tb 0 at every step
        order.join(1, order.current[2], 2, step)  # and tells tb 1
        order.ask(1, 0, step)
    lives = _lives(np.frombuffer(order._prev, dtype=np.int32), np.frombuffer(order._from, dtype=np.int32))
    assert lives.count <= 5
    assert order.unordered().tolist() == []


def test_simulator_bounds_epochs_by_the_chunks_of_each_threadblock() -> None:
    """A threadblock of 3 × 20,000 chunks may run 60,000 calls at one chunk per call: its entries need
    32 bits; 3 × 4 chunks fit in 16 bits."""
    for cnt, width in ((4, 2), (20000, 4)):
        algo = exchange(cnt, "LL")
        folded = {(gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs}
        simulator = Simulator(algo, algo.coll, folded, Case(8, 1, (False,)), None)
        assert simulator.order is not None and simulator.order.dtype.itemsize == width


def test_a_run_that_checks_no_data_records_no_happens_before() -> None:
    """Completion runs (no placement) ask no race question, so they keep no record."""
    algo = exchange(4, "LL")
    folded = {(gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs}
    simulator = Simulator(algo, algo.coll, folded, Case(8, 1, ()), None)
    assert simulator.order is None
    assert simulator.run() == []
