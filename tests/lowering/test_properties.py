"""Properties of the lowering: random forests always lower to verified programs; rails; infeasibility."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.compile import CompileOptions, compile_schedule
from collc.lowering import DoesNotFit, LoweringOptions, lower, runtime_limits
from collc.solver.forest import Forest, Tree, TreeEdge
from collc.topology import load

from .checks import assert_valid
from .forests import flat_topology


@st.composite
def random_forests(draw) -> Forest:
    """2..6 GPUs, 1..3 trees per root of random shape (random parent among earlier BFS nodes)."""
    n = draw(st.integers(2, 6))
    trees = []
    k = None
    for root in range(n):
        multiplicities = draw(st.lists(st.integers(1, 80), min_size=1, max_size=3))
        if k is None:
            k = sum(multiplicities)
        else:  # every root needs the same k: rescale the last tree
            multiplicities[-1] += k - sum(multiplicities)
            if multiplicities[-1] < 1:
                multiplicities = [k]
        for multiplicity in multiplicities:
            order = [root, *draw(st.permutations([g for g in range(n) if g != root]))]
            parents = [draw(st.integers(0, i - 1)) for i in range(1, n)]
            children: dict[int, list[int]] = {}
            for position, parent in enumerate(parents, start=1):
                children.setdefault(order[parent], []).append(order[position])
            edges, queue = [], [root]
            for node in queue:
                for child in children.get(node, []):
                    edges.append(TreeEdge(node, child, (f"g{node}", f"g{child}")))
                    queue.append(child)
            trees.append(Tree(root, multiplicity, tuple(edges)))
    return Forest(n, k, Fraction(1, draw(st.integers(1, 50))), tuple(trees))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    forest=random_forests(),
    coll=st.sampled_from(["allgather", "reducescatter", "allreduce"]),
    placement=st.sampled_from([(True, True), (True, False), (False, True)]),
    runtime=st.sampled_from(["msccl-executor", "rccl"]),
    tbs=st.sampled_from([8, 108]),
)
def test_random_forests_lower_to_verified_programs(forest, coll, placement, runtime, tbs):
    limits = runtime_limits(runtime, tbs)
    options = LoweringOptions(coll=coll, inplace=placement[0], outofplace=placement[1])
    try:
        lowered = lower(forest, options, limits)
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
