"""The forest solve as steps (collc.solver.pipeline.solve_steps): a compile service stops a job between
two steps, so no step may hold a long run of max-flows; cutting the solve finer changes nothing in
the forest."""

from __future__ import annotations

import pytest

from collc.solver import packing, pipeline, solve
from collc.solver.maxflow import FlowNetwork
from collc.topology import load


def _max_flows_per_step(topology, monkeypatch) -> tuple[list[int], object]:
    """The max-flow calls of each step of ``solve_steps(topology, k=1)``, and the forest it returns."""
    calls = [0]
    original = FlowNetwork.max_flow

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FlowNetwork, "max_flow", counted)
    steps, per_step, seen = pipeline.solve_steps(topology, k=1), [], 0
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            per_step.append(calls[0] - seen)
            return per_step, stop.value.forest
        per_step.append(calls[0] - seen)
        seen = calls[0]


@pytest.fixture(scope="module")
def fabric():
    """4×8 A100: an NVSwitch per box and a network switch that joins 32 NICs."""
    topology = load("dgx-a100", {"boxes": "4"})
    return topology, solve(topology, k=1).forest


def test_switch_removal_and_packing_stop_within_one_gpu_s_max_flows(fabric, monkeypatch):
    """Whole, the network switch's removal is one step of 761 max-flows; split after each in-arc, no
    step runs more than the final check's one max-flow per GPU."""
    topology, forest = fabric
    per_step, stepped = _max_flows_per_step(topology, monkeypatch)
    assert stepped.trees == forest.trees
    assert sum(per_step) > 1000
    assert max(per_step) <= topology.num_gpus


def test_a_finer_stride_gives_more_steps_and_the_same_forest(fabric, monkeypatch):
    topology, forest = fabric
    coarse, _ = _max_flows_per_step(topology, monkeypatch)
    monkeypatch.setattr(packing, "GROW_STRIDE", 2)
    fine, stepped = _max_flows_per_step(topology, monkeypatch)
    assert stepped.trees == forest.trees
    assert sum(fine) == sum(coarse)
    assert len(fine) > 2 * len(coarse)
