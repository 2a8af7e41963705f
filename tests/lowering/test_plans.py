"""A candidate lowered several ways builds each plan once (collc.lowering.lower.Plans), and plans
are never handed to a lowering of another forest."""

from __future__ import annotations

import importlib

import pytest

from collc.errors import InvariantError
from collc.lowering import LoweringOptions, runtime_limits
from collc.solver import solve
from collc.stepping import drain
from collc.topology import load

lowering = importlib.import_module("collc.lowering.lower")  # the module, not the function


def _lowered(forest, options, plans, **kwargs):
    limits = runtime_limits("msccl-executor", 108)
    return drain(lowering.lower_steps(forest, options, limits, plans=plans, **kwargs))


def test_lowering_a_forest_again_reuses_its_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    build_plan = lowering.build_plan
    monkeypatch.setattr(
        lowering, "build_plan", lambda *args, **kwargs: built.append(1) or build_plan(*args, **kwargs)
    )
    forest = solve(load("dgx-a100"), k=1).forest
    plans = lowering.Plans(forest)
    first = _lowered(forest, LoweringOptions(coll="allgather"), plans)
    assert len(built) == 1
    again = _lowered(forest, LoweringOptions(coll="allgather", split_lanes=True), plans)
    assert len(built) == 1  # the same plan, lowered another way
    fresh = _lowered(forest, LoweringOptions(coll="allgather", split_lanes=True), None)
    assert len(built) == 2
    assert fresh.algorithm == again.algorithm and first.algorithm.ngpus == 8
    _lowered(forest, LoweringOptions(coll="allgather", instances=2), plans)
    assert len(built) == 3  # two instances: another plan


def test_plans_of_another_forest_are_refused() -> None:
    topology = load("dgx-a100")
    plans = lowering.Plans(solve(topology, k=1).forest)
    with pytest.raises(InvariantError, match="another forest"):
        _lowered(solve(topology, k=2).forest, LoweringOptions(coll="allgather"), plans)
