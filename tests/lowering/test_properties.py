"""Properties of the lowering: random forests always lower to verified programs; rails; infeasibility."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.compile import CompileOptions, compile_schedule
from collc.lowering import DoesNotFit, LoweringOptions, lower, runtime_limits
from collc.topology import load

from .checks import assert_valid
from .forests import flat_topology, random_forests


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    forest=random_forests(),
    coll=st.sampled_from(["allgather", "reducescatter", "allreduce"]),
    placement=st.sampled_from([(True, True), (True, False), (False, True)]),
    runtime=st.sampled_from(["msccl-executor", "rccl"]),
    tbs=st.sampled_from([8, 108]),
    rates=st.none() | st.lists(st.integers(1, 400), min_size=36, max_size=36),
)
def test_random_forests_lower_to_verified_programs(forest, coll, placement, runtime, tbs, rates):
    """``rates``: GB/s of every arc ``g{a} -> g{b}`` (they decide which threadblocks merge), or none."""
    limits = runtime_limits(runtime, tbs)
    options = LoweringOptions(coll=coll, inplace=placement[0], outofplace=placement[1])
    arcs = [(f"g{a}", f"g{b}") for a in range(6) for b in range(6)]
    arc_bandwidths = (
        None if rates is None else {arc: Fraction(rate) for arc, rate in zip(arcs, rates, strict=True)}
    )
    try:
        lowered = lower(forest, options, limits, arc_bandwidths=arc_bandwidths)
    except DoesNotFit:
        return  # small threadblock budgets may not fit; what fits must be right
    assert_valid(lowered.algorithm, limits)


def test_cross_box_channels_follow_the_nic_plane_on_dgx_a100():
    topology = load("dgx-a100", {"boxes": "2"})
    result = compile_schedule(topology, CompileOptions(coll="allreduce", k=1))
    crossing = 0
    for gpu in result.algorithm.gpus:
        for tb in gpu.tbs:
            for peer in (tb.send, tb.recv):
                if peer >= 0 and peer // 8 != gpu.id // 8:  # other box: over NIC gpu.id % 8 and its IB plane
                    crossing += 1
                    assert tb.chan % 2 == (gpu.id % 8) % 2
    assert crossing > 0


def test_nothing_fits_is_an_infeasible_error_naming_the_limit():
    topology = flat_topology(6, sms=2)
    with pytest.raises(DoesNotFit, match="threadblocks") as error:
        compile_schedule(topology, CompileOptions(coll="allreduce", runtime="rccl"))
    assert error.value.exit_code == 1 and error.value.hint


def test_reduce_scatter_on_an_asymmetric_fabric_uses_the_reversed_solution():
    from collc.topology.model import Link, Metadata, Node, Topology

    nodes = tuple(Node(f"g{i}", "gpu") for i in range(4))
    links = tuple(
        Link(f"g{i}", f"g{j}", Fraction(100 if i < j else 25), directed=True)
        for i in range(4)
        for j in range(4)
        if i != j
    )
    topology = Topology(
        "asym", nodes, links, tuple(f"g{i}" for i in range(4)), metadata=Metadata(sms_per_gpu=108)
    )
    result = compile_schedule(topology, CompileOptions(coll="reducescatter"))
    assert result.solution.forest.reversed and result.verification.ok
    assert not compile_schedule(topology, CompileOptions(coll="allgather")).solution.forest.reversed
    with pytest.raises(Exception, match="reversed fabric"):
        lower(result.solution.forest, LoweringOptions(coll="allgather"), runtime_limits("rccl", 108))
