"""Lanes split towards one per transfer up to the threadblock limit (LoweringOptions.split_lanes,
assign.split_lanes)."""

from __future__ import annotations

from itertools import product
from types import SimpleNamespace

import pytest

from collc.lowering import LoweringOptions, lower, runtime_limits
from collc.lowering.assign import split_lanes
from collc.lowering.limits import DoesNotFit
from collc.lowering.plan import network_planes
from collc.msccl.program import SEND_TYPES
from collc.solver import solve
from collc.topology import load

from .simulated import lowered_algbw

LIMITS = runtime_limits("msccl-executor", 80)  # a V100's 80 SMs


@pytest.fixture(scope="module")
def dgx1_reducescatter():
    """One DGX-1 box (hybrid cube mesh), reduce-scatter on k = 8 trees: lanes sized by rate give the
    box's single and double NVLinks threadblocks of unequal loads."""
    topology = load("dgx1")
    forest = solve(topology, k=8, reverse=True).forest

    def lowered(options: LoweringOptions, limits=LIMITS):
        return lower(
            forest,
            options,
            limits,
            planes=network_planes(topology),
            arc_bandwidths=topology.arc_bandwidths(),
            allow_shared_stages=False,
        )

    return topology, lowered


def test_every_sending_threadblock_carries_one_transfer(dgx1_reducescatter):
    _, lowered = dgx1_reducescatter
    result = lowered(LoweringOptions(coll="reducescatter", split_lanes=True))
    assert result.split_lanes and result.merged_tbs == 0 and not result.lanes_capped
    assert result.unsplit_groups == 0
    sends = [
        sum(1 for step in tb.steps if step.type in SEND_TYPES)
        for gpu in result.algorithm.gpus
        for tb in gpu.tbs
        if tb.send >= 0
    ]
    assert sends and set(sends) == {1}
    by_rate = lowered(LoweringOptions(coll="reducescatter"))
    assert not by_rate.split_lanes and by_rate.lanes < result.lanes


def test_equal_loads_keep_fair_sharing_from_starving_the_heavier_threadblocks():
    """The reason for the option: threadblocks sharing an arc get equal shares (max-min fair), which
    only matches their needs where their loads are equal. 2x8 A100 reduce-scatter at k = 2, 256 KiB
    buffer: 291.8 GB/s with lanes by rate, 341.2 with a lane per transfer (bound 346.7)."""
    algbw = lowered_algbw("dgx-a100", 2, 2, "msccl-executor", reverse=True)
    by_rate = algbw(LoweringOptions(coll="reducescatter"))
    balanced = algbw(LoweringOptions(coll="reducescatter", split_lanes=True))
    assert balanced >= 1.15 * by_rate
    assert balanced >= 0.98 * 346.7


def test_short_of_threadblocks_lanes_are_split_as_far_as_they_fit(dgx1_reducescatter):
    """Below what a lane per transfer needs at any piece size, the lanes are split as far as the
    threadblocks allow, never merged or capped."""
    _, lowered = dgx1_reducescatter
    full = lowered(LoweringOptions(coll="reducescatter", split_lanes=True))
    fewer = full.usage.max_tbs - 2
    short = lowered(
        LoweringOptions(coll="reducescatter", split_lanes=True), runtime_limits("msccl-executor", fewer)
    )
    assert short.split_lanes and short.unsplit_groups > 0
    assert short.usage.max_tbs <= fewer and short.merged_tbs == 0 and not short.lanes_capped


def _star(sizes: list[int]):
    """A plan stub and its loads: group i carries ``sizes[i]`` one-chunk transfers from GPU 0 to i + 1."""
    transfers = [SimpleNamespace(source=SimpleNamespace(cnt=1)) for _ in range(sum(sizes))]
    loads, first = {}, 0
    for index, size in enumerate(sizes):
        loads[(0, index + 1, None, ())] = list(range(first, first + size))
        first += size
    return SimpleNamespace(transfers=transfers), loads


def _heaviest_lane(lanes: dict, loads: dict) -> int:
    return max(-(-len(members) // lanes[group]) for group, members in loads.items())


@pytest.mark.parametrize("sizes", [[5, 3, 1], [4, 4, 2, 1], [7, 1, 1, 2], [3, 3, 3]])
def test_split_lanes_leave_the_lightest_heaviest_lane_a_budget_allows(sizes):
    """Oracle: on a star (every group leaves GPU 0, so GPU 0's threadblocks are the only budget), the
    heaviest lane after splitting is as light as any split of the same budget can make it, for every
    budget from a lane per group to a lane per transfer; and the split never exceeds the budget."""
    plan, loads = _star(sizes)
    groups = list(loads)
    for budget in range(len(sizes), sum(sizes) + 2):
        lanes = split_lanes(plan, loads, dict.fromkeys(loads, 1), budget)
        assert sum(lanes.values()) == min(budget, sum(sizes))
        best = min(
            _heaviest_lane(dict(zip(groups, counts, strict=True)), loads)
            for counts in product(*(range(1, size + 1) for size in sizes))
            if sum(counts) <= budget
        )
        assert _heaviest_lane(lanes, loads) == best


def test_no_capping_and_no_merging_where_a_lane_per_group_does_not_fit(dgx1_reducescatter):
    """With tree depths kept apart, lanes sized by rate fit a tight limit by merging or capping; split
    lanes refuse."""
    _, lowered = dgx1_reducescatter
    tight = runtime_limits("msccl-executor", 16)
    fitted = lowered(LoweringOptions(coll="reducescatter", join_stages=False), tight)
    assert fitted.usage.max_tbs <= 16 and fitted.merged_tbs > 0
    with pytest.raises(DoesNotFit, match="only by merging"):
        lowered(LoweringOptions(coll="reducescatter", split_lanes=True, join_stages=False), tight)
