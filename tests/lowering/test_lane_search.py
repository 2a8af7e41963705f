"""The lane search of the lowering (collc.lowering.lower._fit): which groups it grows when a
threadblock has more steps than the runtime allows, and that it gives up without growing groups
that cannot get more lanes."""

from __future__ import annotations

import importlib
from dataclasses import replace
from types import SimpleNamespace

import pytest

from collc.lowering import LoweringOptions, lower, runtime_limits
from collc.lowering.limits import DoesNotFit
from collc.solver import solve
from collc.topology import load

lowering = importlib.import_module("collc.lowering.lower")  # the module, not the function


def _assignment(*groups: str) -> SimpleNamespace:
    """An assignment whose lanes belong to ``groups``, one lane per entry."""
    return SimpleNamespace(lanes=[SimpleNamespace(group=group) for group in groups])


def test_only_groups_that_got_every_lane_and_have_transfers_to_spare_can_grow() -> None:
    lanes = {"full": 2, "capped": 3, "spread": 4, "shares": 1}
    sizes = {"full": 5, "capped": 5, "spread": 4, "shares": 3}
    # "capped" asked for 3 and got 2 (its pair ran out of channels); "shares" got none of its own;
    # "spread" already has a lane per transfer
    assignment = _assignment("full", "full", "capped", "capped", *["spread"] * 4)
    assert lowering._growable(assignment, lanes, sizes) == {"full": 2}


def test_growing_gives_crowded_groups_one_more_lane_than_they_have() -> None:
    minimum = {"full": 1, "other": 1}
    assert lowering._grow(["full"], minimum, {"full": 2, "other": 1})
    assert minimum == {"full": 3, "other": 1}
    assert not lowering._grow(["capped"], minimum, {"full": 2})
    assert minimum == {"full": 3, "other": 1}


def test_over_the_step_limit_with_too_few_channels_the_search_gives_up_early(monkeypatch) -> None:
    """Two channels per GPU pair cap every group at two lanes: asking for more changes no
    assignment, so the search must give up instead of growing groups one lane at a time up to their
    transfer counts (one assignment per lane)."""
    forest = solve(load("dgx-a100"), k=8, reverse=True).forest
    limits = replace(runtime_limits("msccl-executor", None), max_channels=2, max_steps_per_tb=8)
    calls = []
    real_assign = lowering.assign

    def counted(*args, **kwargs):
        calls.append(1)
        return real_assign(*args, **kwargs)

    monkeypatch.setattr(lowering, "assign", counted)
    with pytest.raises(DoesNotFit):
        lower(forest, LoweringOptions(coll="reducescatter"), limits)
    assert len(calls) <= 8  # 16 when groups grew one lane at a time


def test_shared_stages_need_no_merged_threadblocks_where_a_lane_per_depth_does() -> None:
    """2×8 A100 allreduce at k = 1 under 56 threadblocks: a lane per tree depth, kept apart, merges
    senders with receivers; asked to share tree depths, the lowering needs fewer threadblocks and
    merges none, and says why its threadblocks carry several depths. Joining a pair's nearest depths
    (the default) fits too without merging, and keeps every other depth on lanes of its own."""
    forest = solve(load("dgx-a100", {"boxes": "2"}), k=1).forest
    limits = runtime_limits("msccl-executor", 56)
    per_depth = lower(forest, LoweringOptions(coll="allreduce", join_stages=False), limits)
    shared = lower(forest, LoweringOptions(coll="allreduce", share_stages=True), limits)
    joined = lower(forest, LoweringOptions(coll="allreduce"), limits)
    assert per_depth.merged_tbs > 0 and per_depth.stages_shared is None and per_depth.joined_stages == 0
    assert shared.merged_tbs == 0 and shared.usage.max_tbs < per_depth.usage.max_tbs
    assert shared.stages_shared == "instead of merged threadblocks"
    assert joined.merged_tbs == 0 and joined.stages_shared is None and joined.usage.max_tbs <= 56
    assert joined.joined_stages > 0 and joined.lanes > shared.lanes


def test_emissions_over_the_step_limit_stop_at_the_cap(monkeypatch) -> None:
    """An emission whose threadblocks exceed the step limit grows lanes and emits again; with
    ``max_emissions`` each lane search gives up after that many (an emission takes seconds at 128
    GPUs) and says so. Planted: every emission is over the limit and can always grow."""
    forest = solve(load("dgx-a100"), k=1).forest
    limits = runtime_limits("msccl-executor", None)
    emissions, searches = [], []
    real_emit, real_fit = lowering.emit, lowering._fit

    def emitted(*args, **kwargs):
        emissions.append(1)
        return real_emit(*args, **kwargs)

    def searched(*args, **kwargs):
        searches.append(1)
        return (yield from real_fit(*args, **kwargs))

    monkeypatch.setattr(lowering, "emit", emitted)
    monkeypatch.setattr(lowering, "_fit", searched)
    monkeypatch.setattr(
        lowering, "_steps", lambda algo: [[limits.max_steps_per_tb + 1] * len(gpu.tbs) for gpu in algo.gpus]
    )
    monkeypatch.setattr(lowering, "_growable", lambda assignment, lanes, sizes: dict(lanes))
    with pytest.raises(
        DoesNotFit,
        match=f"still needs .* steps after 3 emissions, the runtime allows {limits.max_steps_per_tb}",
    ):
        lower(forest, LoweringOptions(coll="allgather", max_emissions=3), limits)
    assert searches and len(emissions) == 3 * len(searches)
