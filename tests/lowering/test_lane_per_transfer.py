"""A lane for every transfer (LoweringOptions.lane_per_transfer, assign.lane_per_transfer)."""

from __future__ import annotations

import pytest

from collc.lowering import LoweringOptions, lower, runtime_limits
from collc.lowering.limits import DoesNotFit
from collc.lowering.plan import network_planes
from collc.msccl.program import SEND_TYPES
from collc.predict.model import TopologyModel
from collc.predict.params import simple
from collc.solver import solve
from collc.topology import load

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
    result = lowered(LoweringOptions(coll="reducescatter", lane_per_transfer=True))
    assert result.lane_per_transfer and result.merged_tbs == 0 and not result.lanes_capped
    sends = [
        sum(1 for step in tb.steps if step.type in SEND_TYPES)
        for gpu in result.algorithm.gpus
        for tb in gpu.tbs
        if tb.send >= 0
    ]
    assert sends and set(sends) == {1}
    by_rate = lowered(LoweringOptions(coll="reducescatter"))
    assert not by_rate.lane_per_transfer and by_rate.lanes < result.lanes


def test_equal_loads_keep_fair_sharing_from_starving_the_heavier_threadblocks(dgx1_reducescatter):
    """The reason for the option: threadblocks sharing an arc get equal shares (max-min fair), which
    only matches their needs where their loads are equal (152.2 -> 165.0 GB/s at 1 GiB, bound 171.4)."""
    topology, lowered = dgx1_reducescatter
    model = TopologyModel(topology)
    proto = simple(256 << 10)

    def algbw(options: LoweringOptions) -> float:
        algo = lowered(options).algorithm
        return 2**30 / model.collc(algo).time_us("reducescatter", 2**30, proto) / 1000

    by_rate = algbw(LoweringOptions(coll="reducescatter"))
    balanced = algbw(LoweringOptions(coll="reducescatter", lane_per_transfer=True))
    assert balanced >= 1.05 * by_rate
    assert balanced >= 0.95 * 171.4


def test_no_capping_and_no_merging_where_it_does_not_fit(dgx1_reducescatter):
    """Lanes sized by rate fit a tight limit by merging or capping; a lane per transfer refuses."""
    _, lowered = dgx1_reducescatter
    tight = runtime_limits("msccl-executor", 24)
    fitted = lowered(LoweringOptions(coll="reducescatter"), tight)
    assert fitted.usage.max_tbs <= 24
    with pytest.raises(DoesNotFit, match="a lane per transfer"):
        lowered(LoweringOptions(coll="reducescatter", lane_per_transfer=True), tight)
