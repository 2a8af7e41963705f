"""Allreduce over two forests: the reduce-scatter half on a forest solved on the reversed fabric, the
allgather half on the allgather forest (docs/lowering.md §3)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from math import lcm
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.compile import CompileOptions, compile_schedule
from collc.compile.driver import two_forests
from collc.errors import InvariantError
from collc.lowering import LoweringOptions, coll_algbw, lower, runtime_limits
from collc.lowering.limits import limits_for
from collc.lowering.plan import DOWN, UP, build_plan
from collc.msccl.writer import to_xml
from collc.predict.des import ProgramCost
from collc.predict.model import TopologyModel
from collc.predict.params import protocol
from collc.solver import solve
from collc.solver.forest import Forest
from collc.topology import load

from .checks import assert_valid
from .forests import binary, chain, forest, random_forests, star

FIXTURES = Path(__file__).parent / "fixtures"
ALLREDUCE = LoweringOptions(coll="allreduce")


def reversed_forest(n: int, shapes: list[tuple]) -> Forest:
    return replace(forest(n, shapes), reversed=True)


def test_reduce_phase_runs_on_the_reduce_forest_and_broadcast_on_the_forest():
    broadcast = forest(5, [(chain, 1), (star, 1)])
    reduce = reversed_forest(5, [(binary, 2)])
    plan = build_plan(broadcast, "allreduce", reduce_forest=reduce, max_piece=1)
    for transfer in plan.transfers:
        phase, tree = transfer.key[0], transfer.key[2]
        if phase == UP:  # an aggregation tree's edge read backwards: child -> parent
            edges = {(e.dst, e.src) for e in reduce.trees[tree].edges}
        else:
            assert phase == DOWN
            edges = {(e.src, e.dst) for e in broadcast.trees[tree].edges}
        assert (transfer.src, transfer.dst) in edges
    ups = sum(1 for t in plan.transfers if t.key[0] == UP)
    assert ups == 5 * 4 * 2 and len(plan.transfers) - ups == 5 * 2 * 4  # one transfer per edge and chunk


def test_chunks_per_root_are_the_lcm_of_both_k():
    broadcast = forest(4, [(chain, 1), (star, 1)])
    plan = build_plan(broadcast, "allreduce", reduce_forest=reversed_forest(4, [(star, 3)]))
    assert plan.nchunksperloop == 4 * 6 and plan.i_chunks == plan.o_chunks == 24
    # every chunk of root r's shard is reduced into r's output and broadcast from there
    reduced: dict[int, set[int]] = {r: set() for r in range(4)}
    for op in plan.local_ops:
        if op.target.buf == "o":  # the root's copy and folds; inner GPUs fold into scratch
            reduced[op.gpu].update(op.target.chunks())
    sent: dict[int, set[int]] = {r: set() for r in range(4)}
    for transfer in plan.transfers:
        if transfer.key[0] == DOWN and transfer.src == broadcast.trees[transfer.key[2]].root:
            sent[transfer.src].update(transfer.source.chunks())
    assert reduced == sent == {r: set(range(6 * r, 6 * r + 6)) for r in range(4)}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), runtime=st.sampled_from(["msccl-executor", "rccl"]))
def test_two_random_forests_lower_to_verified_allreduce_programs(data, runtime):
    broadcast = data.draw(random_forests(max_multiplicity=2))
    reduce = replace(
        data.draw(random_forests(num_gpus=broadcast.num_gpus, max_multiplicity=2)), reversed=True
    )
    limits = runtime_limits(runtime, 108)
    lowered = lower(broadcast, ALLREDUCE, limits, reduce_forest=reduce)
    assert lowered.algorithm.nchunksperloop == broadcast.num_gpus * lcm(broadcast.k, reduce.k)
    assert_valid(lowered.algorithm, limits)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broadcast=random_forests())
def test_a_reduce_forest_that_is_the_forest_reversed_gives_todays_program(broadcast):
    """On a symmetric fabric the reversed solve returns the same trees; the program must not change."""
    limits = runtime_limits("msccl-executor", 108)
    alone = lower(broadcast, ALLREDUCE, limits)
    paired = lower(broadcast, ALLREDUCE, limits, reduce_forest=replace(broadcast, reversed=True))
    assert paired == alone


def test_on_a_symmetric_preset_the_reversed_solve_gives_the_same_program():
    topology = load("dgx-a100", {"boxes": "1"})
    ag, rs = solve(topology, k=2).forest, solve(topology, k=2, reverse=True).forest
    assert rs.reversed and rs.trees == ag.trees
    limits = limits_for(topology, "msccl-executor")
    assert to_xml(lower(ag, ALLREDUCE, limits, reduce_forest=rs).algorithm) == to_xml(
        lower(ag, ALLREDUCE, limits).algorithm
    )


def test_a_reduce_forest_must_be_allreduces_and_solved_on_the_reversed_fabric():
    broadcast = forest(3, [(chain, 1)])
    with pytest.raises(InvariantError, match="reversed fabric"):
        build_plan(broadcast, "allreduce", reduce_forest=broadcast)
    with pytest.raises(InvariantError, match="for allreduce"):
        build_plan(broadcast, "allgather", reduce_forest=replace(broadcast, reversed=True))
    with pytest.raises(InvariantError, match="spans 4 GPUs"):
        build_plan(broadcast, "allreduce", reduce_forest=reversed_forest(4, [(chain, 1)]))


def _algbw(predictor, nbytes: int = 2**30) -> float:
    """GB/s (nccl-tests algbw) ``predictor`` gives allreduce at ``nbytes``, Simple."""
    return nbytes / predictor.time_us("allreduce", nbytes, protocol("Simple")) / 1e3


@pytest.mark.parametrize("name", ["asym-source4", "asym-ring4"])
def test_on_a_fabric_whose_directions_differ_the_reduce_forest_reaches_the_allreduce_bound(name):
    """Allgather trees read backwards aggregate over the slow arcs; the reduce forest uses the fast ones.

    asym-source4: allgather 80, reduce-scatter 106.7 GB/s, so the allreduce bound 1/(1/80 + 1/106.7)
    = 45.7 GB/s is above what one forest reaches (40) and NCCL's ring (40). asym-ring4: both bounds
    are equal, the forests are not each other's reversal.
    """
    topology = load(str(FIXTURES / f"{name}.yaml"))
    model = TopologyModel(topology)
    limits = limits_for(topology, "msccl-executor")
    ag, rs = solve(topology, k=8).forest, solve(topology, k=8, reverse=True).forest
    two = lower(ag, ALLREDUCE, limits, reduce_forest=rs).algorithm
    one = lower(ag, ALLREDUCE, limits).algorithm
    assert_valid(two, limits, topology)
    bound = float(model.bound_algbw("allreduce"))
    two_algbw = _algbw(ProgramCost(model.network, two))
    assert two_algbw >= 0.9 * bound
    assert two_algbw > 1.1 * _algbw(ProgramCost(model.network, one))
    if name == "asym-source4":  # k = 8 meets both optima: what the lowering aims at is the bound
        assert coll_algbw(ag, "allreduce", rs) == model.bound_algbw("allreduce")
        assert model.bound_algbw("allreduce") == 1 / (Fraction(1, 80) + Fraction(3, 320))
        assert two_algbw > 1.1 * _algbw(model.ring)


def test_compile_reduces_allreduce_over_its_own_forest_where_the_directions_differ():
    topology = load(str(FIXTURES / "asym-source4.yaml"))
    assert two_forests(topology, "allreduce") and not two_forests(topology, "allgather")
    assert not two_forests(load("dgx-a100", {"boxes": "1"}), "allreduce")
    result = compile_schedule(topology, CompileOptions(coll="allreduce"))
    assert result.verification.ok
    assert result.bound_algbw == 1 / (Fraction(1, 80) + Fraction(3, 320))
    model = TopologyModel(topology)
    simulated = _algbw(ProgramCost(model.network, result.algorithm))
    assert simulated >= 0.95 * float(result.bound_algbw)  # one forest: 40.0 (0.875)
    assert simulated > 1.1 * _algbw(model.ring)
