"""Free-running senders paced by their GPU's dependent traffic (LoweringOptions.pace_free_senders,
emit._pace_free_senders)."""

from __future__ import annotations

import pytest

from collc.lowering import LoweringOptions, lower
from collc.lowering.limits import limits_for
from collc.msccl.program import SEND_TYPES, Algorithm
from collc.solver import solve
from collc.topology import load
from collc.verify import verify

from .simulated import lowered_algbw

OPTIONS = LoweringOptions(coll="reducescatter")
PACED = LoweringOptions(coll="reducescatter", pace_free_senders=True)


@pytest.fixture(scope="module")
def mi250():
    """One MI250 box (16 GCDs on xGMI), reduce-scatter on k = 8 trees: every leaf sends its own input
    and waits for nothing, while an inner GPU's send waits for its children's partial sums."""
    topology = load("mi250")
    forest = solve(topology, k=8, reverse=True).forest
    limits = limits_for(topology, "rccl")
    return topology, {options: lower(forest, options, limits).algorithm for options in (OPTIONS, PACED)}


def _free_senders(algo: Algorithm) -> dict[tuple[int, int], int]:
    """(GPU, threadblock) -> sends, for threadblocks that only send and wait for nothing."""
    return {
        (gpu.id, tb.id): sum(step.type in SEND_TYPES for step in tb.steps)
        for gpu in algo.gpus
        for tb in gpu.tbs
        if tb.recv < 0 and tb.steps and all(step.depid < 0 for step in tb.steps)
    }


def test_each_free_sender_waits_once_per_iteration_for_its_gpus_dependent_traffic(mi250):
    topology, programs = mi250
    free = _free_senders(programs[OPTIONS])
    assert len(free) > 16  # at least one per GPU
    paced = programs[PACED]
    assert not _free_senders(paced)
    for gpu, tb_id in free:
        tb = paced.gpus[gpu].tbs[tb_id]
        waits = [step for step in tb.steps if step.depid >= 0]
        assert len(waits) == 1 and waits[0] is [s for s in tb.steps if s.type in SEND_TYPES][-1]
        waited = paced.gpus[gpu].tbs[waits[0].depid]
        assert waited.id != tb_id and waited.steps[waits[0].deps].hasdep
    assert verify(paced, runtime="rccl", topology=topology).ok


def test_pacing_stops_the_leaves_running_ahead_of_the_inner_sends():
    """4x8 MI300X allreduce at k = 2 (256 KiB buffer, tree depths kept apart): unpaced, the leaves run
    iterations ahead and take full shares of the links the inner sends need, which then end late
    (221.6 GB/s at 1 GiB); paced 229.8 (bound 256). It does not always gain: 1x16 MI250 reduce-scatter
    at k = 8 goes 309.8 -> 296.7, so compile simulates both."""
    algbw = lowered_algbw("mi300x", 4, 2, "rccl")
    free = algbw(LoweringOptions(coll="allreduce", join_stages=False))
    paced = algbw(LoweringOptions(coll="allreduce", pace_free_senders=True, join_stages=False))
    assert paced >= 1.03 * free
    assert paced >= 0.89 * 256
