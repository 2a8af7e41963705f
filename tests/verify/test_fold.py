"""Folding steps into the runtime's transmissions: nop folding, re fusion, the position counter."""

from __future__ import annotations

from collc.msccl.program import Step, Threadblock
from collc.verify.fold import fold_threadblock

from .programs import fixture, threadblock


def test_tree_root_folds_as_the_spec_example_describes() -> None:
    """The tree fixture: step 0 publishes nothing, the nop's wait joins step 2, steps 2-3 fuse and
    publish position 3."""
    receive, reduce_chain, send = fold_threadblock(threadblock(fixture("tree_allreduce_3"), 0, 0))
    assert (receive.type, receive.position, receive.publishes, receive.waits) == ("r", 0, None, ())
    assert reduce_chain.type == "re" and reduce_chain.srcoffs == (0, 2)
    assert reduce_chain.waits == ((2, 0), (1, 0))
    assert (reduce_chain.first_step, reduce_chain.last_step, reduce_chain.publishes) == (2, 3, 3)
    assert (send.position, send.sends, send.receives) == (4, True, False)


def test_nop_without_dependency_is_dropped_without_counting() -> None:
    tb = threadblock(fixture("tree_allreduce_3"), 0, 0)
    tb.steps[1].depid = -1
    tb.steps[2].depid = -1
    transmissions = fold_threadblock(tb)
    assert [t.position for t in transmissions] == [0, 2, 3]
    assert transmissions[1].publishes == 2  # one lower than the last member's s="3"


def test_chain_breaks_on_flag_dependency_or_other_destination() -> None:
    steps = [
        Step(0, "re", "s", 0, "o", 0, 1),
        Step(1, "re", "s", 1, "o", 0, 1, hasdep=1),
        Step(2, "re", "s", 2, "o", 0, 1),  # previous member published: new chain
        Step(3, "re", "s", 3, "o", 1, 1),  # other destination
        Step(4, "re", "s", 4, "o", 1, 1, depid=1, deps=0),  # own dependency
        Step(5, "re", "i", 0, "o", 1, 1),  # other source buffer
    ]
    transmissions = fold_threadblock(Threadblock(0, -1, -1, 0, steps))
    assert [(t.first_step, t.last_step) for t in transmissions] == [(0, 1), (2, 2), (3, 3), (4, 4), (5, 5)]
    assert transmissions[3].waits == ((1, 0),)


def test_trailing_nops_are_discarded() -> None:
    steps = [Step(0, "cpy", "i", 0, "o", 0, 1), Step(1, "nop", "i", -1, "o", -1, 0, depid=1, deps=0)]
    (only,) = fold_threadblock(Threadblock(0, -1, -1, 0, steps))
    assert only.waits == ()


def test_a_flagged_step_before_a_nop_publishes_its_own_position() -> None:
    steps = [
        Step(0, "cpy", "i", 0, "o", 0, 1, hasdep=1),
        Step(1, "nop", "i", -1, "o", -1, 0, depid=1, deps=0),
        Step(2, "cpy", "i", 1, "o", 1, 1, depid=2, deps=0, hasdep=1),
    ]
    first, second = fold_threadblock(Threadblock(0, -1, -1, 0, steps))
    assert (first.publishes, second.publishes, second.waits) == (0, 2, ((1, 0), (2, 0)))


def test_a_dropped_nop_does_not_break_a_chain() -> None:
    steps = [
        Step(0, "re", "s", 0, "o", 0, 1),
        Step(1, "nop", "i", -1, "o", -1, 0),
        Step(2, "re", "s", 1, "o", 0, 1, hasdep=1),
    ]
    (chain,) = fold_threadblock(Threadblock(0, -1, -1, 0, steps))
    assert (chain.srcoffs, chain.first_step, chain.last_step, chain.publishes) == ((0, 1), 0, 2, 1)
