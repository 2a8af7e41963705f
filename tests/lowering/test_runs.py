"""Steps that carry runs of consecutive trees (`collc.lowering.runs`), on box-block forests."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from collc.lowering.limits import runtime_limits
from collc.lowering.lower import MERGED_RUNS, LoweringOptions, lower
from collc.lowering.plan import Plan, Span, Transfer, build_plan, network_planes
from collc.lowering.runs import _packed_scratch, merge_runs
from collc.solver.blocks import box_block_forest
from collc.topology import load

from .checks import assert_valid


def _fabric(preset: str, boxes: int):
    topology = load(preset, {"boxes": str(boxes)})
    forest = box_block_forest(topology)
    assert forest is not None
    return topology, forest


def _chunk_moves(plan: Plan) -> Counter:
    """Every chunk every operation reads and writes, one entry per chunk."""
    moves: Counter = Counter()
    for op in (*plan.transfers, *plan.local_ops):
        ends = (op.src, op.dst) if isinstance(op, Transfer) else (op.type, op.gpu)
        for i in range(op.source.cnt):
            source, target = (op.source.buf, op.source.off + i), (op.target.buf, op.target.off + i)
            moves[(*ends, op.key[:2], source, target)] += 1
    return moves


@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
@pytest.mark.parametrize("cap", [2, 8, 71])
def test_merging_moves_the_same_chunks_in_fewer_steps(coll: str, cap: int) -> None:
    topology, forest = _fabric("dgx-h100-rail", 3)
    plan = build_plan(forest, coll, planes=network_planes(topology))
    merged = merge_runs(plan, cap)
    assert _chunk_moves(merged) == _chunk_moves(_packed_scratch(plan))
    ops = [*merged.transfers, *merged.local_ops]
    assert max(op.source.cnt for op in ops) <= cap
    assert len(ops) < len(plan.transfers) + len(plan.local_ops)
    assert merged.s_chunks == plan.s_chunks


def test_the_scratch_a_gpu_receives_from_one_sender_is_consecutive_in_tree_order() -> None:
    topology, forest = _fabric("dgx-h100-rail", 3)
    packed = _packed_scratch(build_plan(forest, "reducescatter", planes=network_planes(topology)))
    slots: dict[tuple, list[tuple[tuple, int]]] = {}
    for t in packed.transfers:
        slots.setdefault((t.dst, t.src, t.key[:2]), []).append((t.key[2:], t.target.off))
    for members in slots.values():
        offsets = [offset for _, offset in sorted(members)]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))


def test_a_merged_operation_takes_its_last_members_key() -> None:
    """A tree's folds (roles below 0) must still come before the send of its sum (role 0)."""
    topology, forest = _fabric("dgx-h100-rail", 3)
    plan = build_plan(forest, "reducescatter", planes=network_planes(topology))
    packed, merged = _packed_scratch(plan), merge_runs(plan, 71)
    by_chunk = {(t.src, t.source.buf, t.source.off): t.key for t in packed.transfers}
    for t in merged.transfers:
        members = [by_chunk[(t.src, t.source.buf, t.source.off + i)] for i in range(t.source.cnt)]
        assert t.key == max(members)


@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
def test_programs_with_merged_runs_verify(coll: str) -> None:
    """One element below what one tree per step needs: the lowering merges runs (the reach, at a
    size a test can verify)."""
    topology, forest = _fabric("dgx-h100-rail", 5)
    options, limits = LoweringOptions(coll=coll), runtime_limits("msccl-executor", 132)

    def lowered(limits):
        planes = network_planes(topology)
        return lower(forest, options, limits, planes=planes, arc_bandwidths=topology.arc_bandwidths())

    single = lowered(limits)
    assert single.piece_chunks == 1
    tight = replace(limits, max_elements_per_rank=single.usage.max_elements_per_rank - 1)
    merged = lowered(tight)
    assert merged.piece_chunks in MERGED_RUNS[1:]
    assert merged.usage.total_steps < single.usage.total_steps
    assert_valid(merged.algorithm, tight, topology)


def test_one_tree_per_step_where_it_fits() -> None:
    topology, forest = _fabric("dgx-h100-rail", 3)
    limits = runtime_limits("msccl-executor", 132)
    lowered = lower(forest, LoweringOptions(coll="allreduce"), limits, planes=network_planes(topology))
    assert lowered.piece_chunks == 1
    assert max(step.cnt for gpu in lowered.algorithm.gpus for tb in gpu.tbs for step in tb.steps) == 1


def _plan(*targets: int) -> Plan:
    """Two GPUs; GPU 0 sends its output chunks 0, 1, ... to ``targets`` on GPU 1, one tree each."""
    transfers = tuple(
        Transfer((1, 2, tree, 0, 0, 0), 0, 1, Span("o", tree, 1), Span("o", target, 1), None)
        for tree, target in enumerate(targets)
    )
    return Plan("allgather", 2, 8, transfers, (), 4, 8, (0, 0))


def test_only_runs_consecutive_at_both_ends_merge() -> None:
    assert [t.source.cnt for t in merge_runs(_plan(0, 1, 2)).transfers] == [3]
    assert [t.target.off for t in merge_runs(_plan(0, 5, 6)).transfers] == [0, 5]
    assert [t.source.cnt for t in merge_runs(_plan(0, 1, 2), max_cnt=2).transfers] == [2, 1]
