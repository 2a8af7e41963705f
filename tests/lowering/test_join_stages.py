"""Joining a pair's nearest tree depths where lanes per depth need more threadblocks than a GPU has
(assign.coalesce_stages, docs/lowering.md §5)."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from itertools import pairwise

import pytest

from collc.lowering.assign import coalesce_stages, group_loads, group_order, lanes_by_rate
from collc.lowering.plan import build_plan
from collc.solver import solve
from collc.topology import load

RATE = Fraction(1, 2)  # GB/s one chunk per loop needs: a lane per group at these loads


@pytest.fixture(scope="module")
def allreduce_plan():
    """2x8 A100 allreduce on k = 1 trees: 16 GPUs, lanes per tree depth in both phases."""
    topology = load("dgx-a100", {"boxes": "2"})
    forest = solve(topology, k=1).forest
    plan = build_plan(forest, "allreduce", arc_bandwidths=topology.arc_bandwidths())
    return plan, group_loads(plan, split_stages=True)


def _ends(plan, loads) -> Counter[int]:
    ends: Counter[int] = Counter()
    for (src, dst, _, _), members in loads.items():
        lanes = lanes_by_rate(sum(plan.transfers[i].source.cnt for i in members), len(members), RATE)
        ends[src] += lanes
        ends[dst] += lanes
    return ends


def _pair_depths(loads) -> dict[tuple, list[tuple]]:
    """Per pair and plane, its groups (one per depth) in depth order."""
    pairs: dict[tuple, list[tuple]] = {}
    for group in sorted(loads, key=group_order):
        pairs.setdefault(group[:3], []).append(group)
    return pairs


def _hops(group) -> int:
    """A group's depth as hops from the root (aggregation below zero, broadcast above)."""
    return group[3][1] // 2


def _depth_runs(loads, joined) -> list[list[tuple[int, ...]]]:
    """Per joined group, the depths of its pair and plane it took, in the pair's depth order."""
    order = {group: position for position, group in enumerate(sorted(loads, key=group_order))}
    by_transfer = {index: group for group, members in loads.items() for index in members}
    runs = []
    for members in joined.values():
        groups = sorted({by_transfer[index] for index in members}, key=order.__getitem__)
        runs.append(groups)
    return runs


def test_loads_that_fit_are_returned_unchanged(allreduce_plan) -> None:
    plan, loads = allreduce_plan
    roomy = max(_ends(plan, loads).values())
    assert coalesce_stages(plan, loads, RATE, roomy) is loads


def test_joins_take_adjacent_depths_of_one_pair_until_every_gpu_fits(allreduce_plan) -> None:
    plan, loads = allreduce_plan
    needed = max(_ends(plan, loads).values())
    for limit in (needed - 1, needed - 4, (needed * 2) // 3):
        joined = coalesce_stages(plan, loads, RATE, limit)
        assert max(_ends(plan, joined).values()) <= limit
        assert sorted(i for m in joined.values() for i in m) == sorted(i for m in loads.values() for i in m)
        keys = [t.key for t in plan.transfers]
        pair_depths = _pair_depths(loads)
        for run in _depth_runs(loads, joined):
            assert len({group[:3] for group in run}) == 1  # one pair and plane
            depths = pair_depths[run[0][:3]]
            first = depths.index(run[0])
            assert run == depths[first : first + len(run)]  # adjacent depths only
        for group, members in joined.items():
            assert members == sorted(members, key=lambda i: (keys[i], i))  # key order within a lane
            assert group in loads  # a joined group keeps its earliest depth's key


def test_the_nearest_depths_are_joined_first(allreduce_plan) -> None:
    """One join short: the join made spans the fewest hops of all joins that relieve the GPU."""
    plan, loads = allreduce_plan
    needed = max(_ends(plan, loads).values())
    joined = coalesce_stages(plan, loads, RATE, needed - 1)
    runs = [run for run in _depth_runs(loads, joined) if len(run) > 1]
    assert runs
    over = {gpu for gpu, count in _ends(plan, loads).items() if count > needed - 1}
    nearest = min(
        _hops(b) - _hops(a)
        for depths in _pair_depths(loads).values()
        for a, b in pairwise(depths)
        if a[0] in over or a[1] in over
    )
    assert min(_hops(run[-1]) - _hops(run[0]) for run in runs) == nearest
