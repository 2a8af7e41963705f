"""The step order inside threadblocks: data-driven, and always a linear extension of the hazards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.lowering import LoweringOptions, lower, runtime_limits
from collc.lowering.plan import LocalOp, Plan, Span, Transfer, build_plan
from collc.lowering.sequence import Hazards, _list_schedule, hazards, rows_of, schedule_keys

from .forests import forest
from .sequence_oracle import reference_hazards, reference_start_times
from .test_lower_forests import SHAPES


def broadcast(key_tree: int, level: int, src: int, dst: int, off: int, cnt: int) -> Transfer:
    span = Span("o", off, cnt)
    return Transfer((1, level, key_tree, 0, 0, 0), src, dst, span, span, None)


def plan_of(transfers: list[Transfer], local_ops: tuple[LocalOp, ...] = ()) -> Plan:
    return Plan("allgather", 4, 20, tuple(transfers), local_ops, 5, 20, (0, 0, 0, 0))


def test_a_lane_forwards_the_piece_that_arrives_first():
    # GPU 1 forwards tree 1 (arriving last on its lane, after 9 chunks of tree 0) and tree 2 (arriving
    # first on its lane, before 9 chunks of tree 3). Plan keys put tree 1 first; the schedule does not.
    transfers = [
        broadcast(0, 2, 0, 1, 0, 9),  # lane 0
        broadcast(1, 2, 0, 1, 9, 1),  # lane 0, arrives at the end of the iteration
        broadcast(2, 2, 3, 1, 10, 1),  # lane 1, arrives after a tenth of it
        broadcast(3, 2, 3, 1, 11, 9),  # lane 1
        broadcast(1, 4, 1, 2, 9, 1),  # lane 2: forwards tree 1
        broadcast(2, 4, 1, 2, 10, 1),  # lane 2: forwards tree 2
    ]
    plan = plan_of(transfers)
    keys, _ = schedule_keys(plan, (0, 0, 1, 1, 2, 2), hazards(plan))
    assert keys[5] < keys[4]
    assert transfers[4].key < transfers[5].key  # the plan's order was the other one


def testhazards_cover_read_after_write_write_after_write_and_write_after_read():
    transfers = [
        broadcast(0, 2, 0, 1, 0, 1),  # writes o[0] on GPU 1
        broadcast(0, 4, 1, 2, 0, 1),  # reads o[0] on GPU 1: RAW on 0
        broadcast(1, 6, 3, 1, 0, 1),  # writes o[0] on GPU 1 again: WAW on 0, WAR on 1
    ]
    assert hazards(plan_of(transfers)).sets() == [set(), {0}, {0, 1}]


def test_local_ops_take_part_in_thehazards():
    transfers = [broadcast(0, 2, 0, 1, 0, 1)]
    copy = LocalOp((1, 3, 0, 0, 0, 0), 1, "cpy", Span("o", 0, 1), Span("o", 1, 1), (0, "recv"))
    assert hazards(plan_of(transfers, (copy,))).sets() == [set(), {0}]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
def test_the_order_is_a_linear_extension_of_thehazards(shape, coll):
    f = forest(5, SHAPES[shape])
    limits = runtime_limits("msccl-executor", 108)
    lowered = lower(f, LoweringOptions(coll=coll), limits)
    plan = build_plan(f, coll, max_piece=lowered.piece_chunks)
    # any assignment will do for the property: one lane per transfer
    keys, local_keys = schedule_keys(plan, range(len(plan.transfers)), hazards(plan))
    every = list(keys) + list(local_keys)
    assert len(set(every)) == len(every)
    for node, predecessors in enumerate(hazards(plan).sets()):
        assert all(every[pred] < every[node] for pred in predecessors)


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
@pytest.mark.parametrize("lanes", [1, 3, 1000])
def test_the_compiled_passes_agree_with_the_reference(shape, coll, lanes):
    # the hazards and every start time against plain Python (tests/lowering/sequence_oracle.py), with
    # all transfers on one lane, on three, and each on its own; pieces of one chunk and of many
    f = forest(5, SHAPES[shape])
    for piece in (1, 71):
        plan = build_plan(f, coll, max_piece=piece)
        found = hazards(plan)
        expected = reference_hazards(plan)
        assert found.sets() == expected
        lane_of = [index % lanes for index in range(len(plan.transfers))]
        cnt = np.array([t.source.cnt for t in plan.transfers], dtype=np.int64)
        start = _list_schedule(len(cnt), np.array(lane_of, dtype=np.int64), cnt, *found)
        assert start.tolist() == reference_start_times(plan, lane_of, expected)


def test_hazards_keep_readers_of_a_chunk_until_it_is_written_again():
    # GPU 1 receives o[0], sends it twice (two readers), then o[0] is overwritten: both reads precede it
    transfers = [
        broadcast(0, 2, 0, 1, 0, 1),
        broadcast(0, 4, 1, 2, 0, 1),
        broadcast(0, 5, 1, 3, 0, 1),
        broadcast(1, 6, 3, 1, 0, 1),
    ]
    assert hazards(plan_of(transfers)).sets() == [set(), {0}, {0}, {0, 1, 2}]


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda nodes: st.tuples(
            st.just(nodes),
            st.lists(st.lists(st.integers(0, nodes - 1), max_size=4), min_size=nodes, max_size=nodes),
            st.dictionaries(st.integers(0, nodes - 1), st.lists(st.integers(0, nodes - 1), max_size=5)),
        )
    )
)
def test_added_edges_follow_a_nodes_own_in_every_row(case: tuple[int, list[list[int]], dict[int, list[int]]]):
    """with_edges (built in arrays, without a tuple per pair) against the plain definition: each row is
    the node's own predecessors, then the added ones, in order, repeats and self-edges dropped."""
    nodes, drawn, extra = case
    own = [list(dict.fromkeys(p for p in row if p != node)) for node, row in enumerate(drawn)]  # as hazards()
    indptr = np.cumsum([0, *map(len, own)])
    base = Hazards(np.arange(nodes), indptr, np.array([p for row in own for p in row], dtype=np.int64))
    added = base.with_edges(extra)
    for node in range(nodes):
        expected = list(dict.fromkeys(p for p in [*own[node], *extra.get(node, [])] if p != node))
        assert added.indices[added.indptr[node] : added.indptr[node + 1]].tolist() == expected
    ptr, idx = rows_of(extra, nodes)
    rows = [idx[ptr[n] : ptr[n + 1]].tolist() for n in range(nodes)]
    assert rows == [extra.get(n, []) for n in range(nodes)]
