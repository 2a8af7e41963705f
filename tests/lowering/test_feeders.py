"""Lanes for transfers that feed a NIC (assign.with_feeder_lanes)."""

from __future__ import annotations

from dataclasses import replace

from collc.lowering import LoweringOptions, lower, runtime_limits
from collc.lowering.assign import (
    feeders_first,
    feeding_groups,
    group_loads,
    group_of,
    network_feeders,
    with_feeder_lanes,
)
from collc.lowering.plan import Plan, Span, Transfer, network_planes
from collc.lowering.sequence import hazards
from collc.solver import solve
from collc.topology import load

UP, DOWN = 0, 1


def transfer(phase: int, tree: int, src: int, dst: int, plane: int | None, level: int = 2) -> Transfer:
    span = Span("o", 10 * phase + tree, 1)  # one chunk per phase and tree
    return Transfer((phase, level, tree, 0, 0, 0), src, dst, span, span, plane)


# GPU 0 sends trees 0 and 1 to GPU 1 inside the box; GPU 1 forwards tree 0 over plane 0 to GPU 2.
# In the aggregation phase GPU 3 sends tree 2 to GPU 1, which sends it up over plane 1.
TRANSFERS = (
    transfer(DOWN, 0, 0, 1, None),
    transfer(DOWN, 1, 0, 1, None),
    transfer(DOWN, 0, 1, 2, 0, level=4),
    transfer(UP, 2, 3, 1, None, level=-4),
    transfer(UP, 2, 1, 0, 1, level=-2),
    transfer(UP, 0, 3, 1, None, level=-4),  # tree 0 is not sent on across a plane in this phase
)
PLAN = Plan("allreduce", 4, 4, TRANSFERS, (), 4, 4, (0, 0, 0, 0))


def test_feeders_are_matched_by_phase_and_tree_piece():
    assert network_feeders(PLAN) == {0, 3}


def test_a_feeding_group_gets_a_lane_per_transfer():
    wanted = {group_of(t, False): 1 for t in TRANSFERS}
    feeding = feeding_groups(PLAN, group_loads(PLAN, False))
    assert feeding == {group_of(TRANSFERS[0], False): 2, group_of(TRANSFERS[3], False): 2}
    boosted = with_feeder_lanes(wanted, feeding, max_tbs=64, max_channels=32, num_planes=2)
    assert boosted[group_of(TRANSFERS[0], False)] == 2  # trees 0 and 1 from GPU 0 to GPU 1
    assert boosted[group_of(TRANSFERS[2], False)] == 1


def test_no_boost_while_a_feeding_group_has_a_single_transfer():
    # GPU 3 -> GPU 1 carries only tree 2's piece: it cannot be spread, and boosting GPU 0 -> GPU 1
    # would take port share from it.
    single = Plan("allreduce", 4, 4, TRANSFERS[:5], (), 4, 4, (0, 0, 0, 0))
    wanted = {group_of(t, False): 1 for t in single.transfers}
    feeding = feeding_groups(single, group_loads(single, False))
    assert feeding == {group_of(TRANSFERS[0], False): 2, group_of(TRANSFERS[3], False): 1}
    assert with_feeder_lanes(wanted, feeding, max_tbs=64, max_channels=32, num_planes=2) is wanted


def test_no_boost_when_it_would_exceed_the_threadblocks_of_a_gpu():
    wanted = {group_of(t, False): 1 for t in TRANSFERS}
    feeding = feeding_groups(PLAN, group_loads(PLAN, False))
    assert with_feeder_lanes(wanted, feeding, max_tbs=3, max_channels=32, num_planes=2) is wanted
    assert with_feeder_lanes(wanted, feeding, max_tbs=64, max_channels=1, num_planes=1) is wanted


def test_other_sends_of_a_gpu_wait_for_its_free_running_nic_feeding_sends():
    # GPU 0 feeds GPU 1's rail with tree 0 and also sends tree 1 to GPU 1; GPU 3 feeds with tree 2
    # and also sends tree 0 up. Sends that cross a plane themselves never wait.
    assert feeders_first(PLAN, hazards(PLAN)) == {1: [0], 5: [3]}


def test_feeders_that_wait_for_data_are_not_waited_for():
    predecessors = hazards(PLAN).with_edges({0: [3]})  # as if tree 0's feeder depended on another transfer
    assert feeders_first(PLAN, predecessors) == {5: [3]}


def _sends_waiting_for_sends(max_tbs: int) -> tuple[int, int]:
    """(sends whose dependency is another send, merged threadblocks) of 2x8 H100 rail reduce-scatter."""
    topology = load("dgx-h100-rail", {"boxes": "2"})
    forest = solve(topology, k=2, reverse=True).forest
    limits = replace(runtime_limits("msccl-executor", 132), max_tbs=max_tbs)
    lowered = lower(forest, LoweringOptions(coll="reducescatter"), limits, planes=network_planes(topology))
    waiting = 0
    for gpu in lowered.algorithm.gpus:
        for tb in gpu.tbs:
            for step in tb.steps:
                if step.type == "s" and step.depid >= 0:
                    waiting += gpu.tbs[step.depid].steps[step.deps].type == "s"
    return waiting, lowered.merged_tbs


def test_emitted_sends_wait_for_feeding_sends_unless_threadblocks_are_merged():
    # a send never needs another send's data, so a send waiting for a send is a feeders-first wait
    waiting, merged = _sends_waiting_for_sends(max_tbs=128)
    assert merged == 0 and waiting > 0
    waiting, merged = _sends_waiting_for_sends(max_tbs=40)
    assert merged > 0 and waiting == 0
