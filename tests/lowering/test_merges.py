"""Which threadblocks are merged at the runtime's limit: the lanes busy the shortest time first
(docs/lowering.md §5, Merging)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from collc.lowering import LoweringOptions, lower, runtime_limits
from collc.lowering.assign import Lane, _merges
from collc.lowering.plan import DOWN, UP, build_plan, path_bandwidth
from collc.predict.des import ProgramCost
from collc.predict.model import TopologyModel
from collc.predict.params import protocol
from collc.solver import solve
from collc.topology import load

FIXTURES = Path(__file__).parent / "fixtures"
TIGHT = runtime_limits("rccl", 16)  # the fixture's allreduce needs 28 threadblocks per GPU unmerged


@pytest.fixture(scope="module")
def slow_nic():
    topology = load(str(FIXTURES / "two-boxes-slow-nic.yaml"))
    return topology, solve(topology, k=1).forest


def _allreduce(forest, arc_bandwidths, *, join_stages: bool = False):
    """The fixture's allreduce at :data:`TIGHT`; by default with its tree depths kept apart, so that
    threadblocks are merged."""
    options = LoweringOptions(coll="allreduce", join_stages=join_stages)
    return lower(forest, options, TIGHT, arc_bandwidths=arc_bandwidths, allow_shared_stages=False)


def _merged_network_lanes(algo) -> int:
    """Merged threadblocks (both a send and a receive peer) with a peer in the other box."""
    return sum(
        1
        for gpu in algo.gpus
        for tb in gpu.tbs
        if tb.send >= 0 and tb.recv >= 0 and (tb.send // 4 != gpu.id // 4 or tb.recv // 4 != gpu.id // 4)
    )


def test_merged_threadblocks_leave_the_slow_network_lanes_alone(slow_nic):
    topology, forest = slow_nic
    timed = _allreduce(forest, topology.arc_bandwidths())
    assert timed.merged_tbs > 0 and timed.usage.max_tbs <= TIGHT.max_tbs
    assert _merged_network_lanes(timed.algorithm) == 0
    assert _merged_network_lanes(_allreduce(forest, None).algorithm) > 0  # channel order merges them


def _share_of_bound(topology, algo) -> float:
    model = TopologyModel(topology)
    time_us = ProgramCost(model.network, algo).time_us("allreduce", 2**30, protocol("Simple"))
    return 2**30 / time_us / 1e3 / float(model.bound_algbw("allreduce"))


def test_merging_the_least_busy_lanes_keeps_allreduce_at_its_bound(slow_nic):
    topology, forest = slow_nic
    assert _share_of_bound(topology, _allreduce(forest, topology.arc_bandwidths()).algorithm) >= 0.95
    assert _share_of_bound(topology, _allreduce(forest, None).algorithm) < 0.8  # measured 0.721


def test_joining_a_pairs_nearest_depths_keeps_allreduce_at_its_bound_without_bandwidths(slow_nic):
    """Where merging needs the links' bandwidths to leave the slow NIC's lanes alone, joining tree
    depths of one pair (which saves a threadblock at both ends and couples depths a hop apart) merges
    nothing and reaches the bound without them."""
    topology, forest = slow_nic
    joined = _allreduce(forest, None, join_stages=True)
    assert joined.merged_tbs == 0 and joined.joined_stages > 0
    assert joined.usage.max_tbs <= TIGHT.max_tbs
    assert _share_of_bound(topology, joined.algorithm) >= 0.95  # measured 0.992


def test_a_transfer_carries_the_bandwidth_of_the_arcs_its_data_crosses():
    topology = load(str(FIXTURES / "asym-source4.yaml"))  # GPU 0 sends at 40 GB/s, receives at 20
    forest = solve(topology, k=1).forest
    plan = build_plan(forest, "allreduce", arc_bandwidths=topology.arc_bandwidths())
    for transfer in plan.transfers:
        expected = 40 if transfer.src == 0 else 20 if transfer.dst == 0 else 30
        assert transfer.bandwidth == expected, transfer
    assert {t.key[0] for t in plan.transfers} == {UP, DOWN}  # both directions of the tree edges
    assert all(t.bandwidth is None for t in build_plan(forest, "allreduce").transfers)


def test_a_paths_bandwidth_is_its_slowest_arc():
    arcs = {("a", "s"): Fraction(300), ("s", "b"): Fraction(25)}
    assert path_bandwidth(("a", "s", "b"), arcs) == 25
    assert path_bandwidth(("a", "s"), arcs) == 300
    assert path_bandwidth(("b", "s", "a"), arcs) is None  # an arc that does not exist


def _lanes_on_gpu_1():
    """GPU 1 receives tree 0 from GPU 0 and forwards it to GPU 2; it also receives tree 1 from GPU 3
    and sends tree 2 (a deeper stage) to GPU 4. Everything on channel 0."""
    lanes = [
        Lane(0, 1, None, 0, (0, 1, None, (1, 2))),  # 0: receives tree 0
        Lane(1, 2, None, 0, (1, 2, None, (1, 4))),  # 1: forwards tree 0
        Lane(3, 1, None, 0, (3, 1, None, (1, 2))),  # 2: receives tree 1
        Lane(1, 4, None, 0, (1, 4, None, (1, 8))),  # 3: sends tree 2
    ]
    units = [frozenset({(0, 0, 0)}), frozenset({(0, 0, 0)}), frozenset({(1, 0, 0)}), frozenset({(2, 0, 0)})]
    return lanes, units


def test_a_forwarding_pair_costs_its_slower_lane_and_the_others_their_sum():
    lanes, units = _lanes_on_gpu_1()
    busy = [Fraction(3), Fraction(3), Fraction(2), Fraction(2)]
    # forwarding pair: max(3, 3) = 3, cheaper than the unrelated light pair's 2 + 2 = 4
    assert _merges([0, 2], [1, 3], lanes, units, busy, 1) == [(1, 0)]
    busy = [Fraction(5), Fraction(5), Fraction(2), Fraction(2)]
    assert _merges([0, 2], [1, 3], lanes, units, busy, 1) == [(3, 2)]  # 4 < 5
    assert _merges([0, 2], [1, 3], lanes, units, busy, 2) == [(3, 2), (1, 0)]
    assert _merges([0, 2], [1, 3], lanes, units, busy, 0) == []


def test_without_bandwidths_forwarding_pairs_merge_first():
    lanes, units = _lanes_on_gpu_1()
    assert _merges([0, 2], [1, 3], lanes, units, None, 1) == [(1, 0)]
    other_channel = [*lanes[:3], Lane(1, 4, None, 1, lanes[3].group)]
    assert _merges([0, 2], [3], other_channel, units, None, 1) == []  # only lanes of one channel merge
