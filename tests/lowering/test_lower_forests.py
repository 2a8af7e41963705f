"""The lowering on hand-built forests: every collective, placement and runtime, checked end to end."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from collc.lowering.emit import _cap_reduce_chains
from collc.lowering.limits import reduce_chains, runtime_limits
from collc.lowering.lower import DoesNotFit, LoweringOptions, lower
from collc.lowering.plan import build_plan, network_planes, split_pieces, tree_offsets
from collc.msccl.program import Step
from collc.solver.forest import Forest, Tree, TreeEdge
from collc.topology import load
from collc.topology.model import Link, Node, Topology

from .checks import assert_valid
from .forests import binary, chain, flat_topology, forest, star

FIXTURES = Path(__file__).parents[1] / "compile" / "fixtures"

SHAPES = {
    "ring": [(chain, 1)],
    "star": [(star, 1)],
    "binary": [(binary, 1)],
    "mixed-k3": [(chain, 1), (binary, 2)],
    "split-cnt": [(chain, 1), (star, 72)],
}
PLACEMENTS = {"both": (True, True), "inplace": (True, False), "outofplace": (False, True)}


@pytest.mark.parametrize("runtime", ["msccl-executor", "rccl"])
@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_lowered_program_is_valid(shape, coll, placement, runtime):
    inplace, outofplace = PLACEMENTS[placement]
    limits = runtime_limits(runtime, 108)
    options = LoweringOptions(coll=coll, inplace=inplace, outofplace=outofplace)
    lowered = lower(forest(5, SHAPES[shape], U=Fraction(1, 10)), options, limits)
    assert_valid(lowered.algorithm, limits)
    assert lowered.algorithm.coll == coll
    assert (lowered.algorithm.inplace, lowered.algorithm.outofplace) == (int(inplace), int(outofplace))


def test_chunk_layout_gives_each_tree_its_multiplicity_in_its_roots_shard():
    f = forest(3, [(chain, 2), (star, 3)])
    assert tree_offsets(f) == [0, 2, 0, 2, 0, 2]
    plan = build_plan(f, "allgather", instances=2, outofplace=False)
    assert plan.nchunksperloop == 3 * 5 * 2
    assert (plan.i_chunks, plan.o_chunks) == (10, 30)
    # root 1's star tree (offset 2, multiplicity 3), instance 1: local chunks 7..9, output chunks 17..19
    sent = {(t.source.buf, t.source.off, t.target.off, t.source.cnt) for t in plan.transfers if t.src == 1}
    assert ("i", 7, 17, 3) in sent
    assert ("i", 2, 12, 3) in sent
    assert not plan.local_ops  # in place, the input already is the output slot
    copies = build_plan(f, "allgather", instances=2).local_ops
    assert {(op.gpu, op.source.off, op.target.off, op.source.cnt) for op in copies if op.gpu == 1} == {
        (1, 0, 10, 2),
        (1, 2, 12, 3),
        (1, 5, 15, 2),
        (1, 7, 17, 3),
    }


def test_reducescatter_output_is_the_roots_shard_and_scratch_is_sized():
    plan = build_plan(forest(4, [(star, 2)]), "reducescatter")
    assert (plan.i_chunks, plan.o_chunks) == (8, 2)
    # a star root receives one partial sum (2 chunks) from each of its 3 children, for each of 4 roots
    # only as root: leaves send their input directly
    assert plan.s_chunks == (6, 6, 6, 6)


def sent_counts(lowered) -> set[int]:
    return {
        step.cnt for gpu in lowered.algorithm.gpus for tb in gpu.tbs for step in tb.steps if step.type == "s"
    }


def test_pieces_are_near_equal_and_within_the_cnt_limit():
    assert split_pieces(71) == [(0, 71)]
    assert split_pieces(72) == [(0, 36), (36, 36)]
    assert split_pieces(150) == [(0, 50), (50, 50), (100, 50)]
    assert split_pieces(3, 1) == [(0, 1), (1, 1), (2, 1)]


def test_steps_move_one_chunk_when_that_fits():
    lowered = lower(forest(3, [(chain, 150)]), LoweringOptions(coll="allgather"), runtime_limits("rccl", 108))
    assert (lowered.piece_chunks, sent_counts(lowered)) == (1, {1})


def test_steps_move_whole_pieces_when_one_chunk_steps_do_not_fit():
    # 600 one-chunk steps per pair need more lanes than the 32 channels allow; 9 pieces of <= 71 fit
    limits = runtime_limits("msccl-executor", 108)
    lowered = lower(forest(3, [(chain, 600)]), LoweringOptions(coll="allgather"), limits)
    assert (lowered.piece_chunks, sent_counts(lowered)) == (71, {66, 67})
    assert_valid(lowered.algorithm, limits)


def test_output_is_deterministic():
    f = forest(5, SHAPES["mixed-k3"], U=Fraction(1, 10))
    limits = runtime_limits("msccl-executor", 108)
    first = lower(f, LoweringOptions(), limits).algorithm
    assert lower(f, LoweringOptions(), limits).algorithm == first


def test_instances_multiply_chunks_and_stay_valid():
    limits = runtime_limits("msccl-executor", 108)
    lowered = lower(forest(4, [(binary, 1)]), LoweringOptions(coll="allreduce", instances=3), limits)
    assert lowered.algorithm.nchunksperloop == 12
    assert_valid(lowered.algorithm, limits)


def test_fat_links_get_several_lanes_on_distinct_channels():
    # 4 GPUs, 4 star trees per root: algbw 4*4/U = 1600 GB/s, 4 transfers of 1 chunk per pair
    f = forest(4, [(star, 1)] * 4, U=Fraction(1, 100))
    limits = runtime_limits("msccl-executor", 108)
    lowered = lower(f, LoweringOptions(coll="allgather"), limits)
    algo = lowered.algorithm
    lanes_0_to_1 = [tb.chan for tb in algo.gpus[0].tbs if tb.send == 1]
    assert len(lanes_0_to_1) > 1 and len(set(lanes_0_to_1)) == len(lanes_0_to_1)
    assert_valid(algo, limits)


def test_threadblock_limit_merges_then_caps_lanes():
    f = forest(5, [(chain, 1), (star, 3)], U=Fraction(1, 100))
    roomy = lower(f, LoweringOptions(coll="allreduce"), runtime_limits("rccl", 108))
    tight_limits = runtime_limits("rccl", 10)
    tight = lower(f, LoweringOptions(coll="allreduce"), tight_limits)
    assert roomy.usage.max_tbs > 10 >= tight.usage.max_tbs
    assert tight.merged_tbs > 0
    assert_valid(tight.algorithm, tight_limits)
    with pytest.raises(DoesNotFit, match="threadblocks"):
        lower(f, LoweringOptions(coll="allreduce"), runtime_limits("rccl", 3))


def test_step_limit_spreads_traffic_over_more_lanes():
    # k = 80 chain trees of multiplicity 1 on 3 GPUs: 80+ steps per connection end with one lane
    f = forest(3, [(chain, 1)] * 80, U=Fraction(1000))
    limits = runtime_limits("msccl-executor", 108)
    lowered = lower(f, LoweringOptions(coll="allgather"), limits)
    assert lowered.usage.max_steps_per_tb <= 64
    assert lowered.lanes > 6
    assert_valid(lowered.algorithm, limits)


def _two_plane_topology() -> tuple[Topology, Forest]:
    """4 GPUs; GPUs 0,2 on plane ib.even and 1,3 on ib.odd, plus a slow direct link 0<->2."""
    nodes = [Node(f"g{r}", "gpu", box=r // 2) for r in range(4)]
    nodes += [Node(f"nic{r}", "nic", box=r // 2) for r in range(4)] + [
        Node("ib.even", "switch"),
        Node("ib.odd", "switch"),
    ]
    links = [Link(f"g{r}", f"nic{r}", Fraction(25)) for r in range(4)]
    links += [Link(f"nic{r}", "ib.even" if r % 2 == 0 else "ib.odd", Fraction(25)) for r in range(4)]
    links += [Link("g0", "g1", Fraction(100)), Link("g2", "g3", Fraction(100))]
    topology = Topology("planes", tuple(nodes), tuple(links), tuple(f"g{r}" for r in range(4)))

    def via(a: int, b: int) -> TreeEdge:
        if a // 2 == b // 2:
            return TreeEdge(a, b, (f"g{a}", f"g{b}"))
        plane = "ib.even" if a % 2 == 0 else "ib.odd"
        return TreeEdge(a, b, (f"g{a}", f"nic{a}", plane, f"nic{b}", f"g{b}"))

    partner = {0: 1, 1: 0, 2: 3, 3: 2}
    trees = []
    for root in range(4):
        remote = (root + 2) % 4
        edges = (via(root, partner[root]), via(root, remote), via(remote, partner[remote]))
        trees.append(Tree(root, 1, edges))
    return topology, Forest(4, 1, Fraction(1, 10), tuple(trees))


def test_channels_keep_the_network_plane_parity():
    topology, f = _two_plane_topology()
    planes = network_planes(topology)
    assert planes == {"ib.even": 0, "ib.odd": 1}
    limits = runtime_limits("msccl-executor", 108)
    algo = lower(f, LoweringOptions(coll="allreduce"), limits, planes=planes).algorithm
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            for peer in (tb.send, tb.recv):
                if peer >= 0 and peer // 2 != gpu.id // 2:  # crosses the IB fabric on GPU gpu.id's plane
                    assert tb.chan % 2 == gpu.id % 2
    assert_valid(algo, limits)


def test_reduce_chains_longer_than_15_are_broken():
    steps = [Step(i, "re", "s", i, "o", 0, 1) for i in range(40)]
    assert reduce_chains(steps) == [40]
    _cap_reduce_chains(steps)
    assert max(reduce_chains(steps)) <= 15
    assert sum(reduce_chains(steps)) == 40


def test_single_gpu_forest_is_rejected():
    with pytest.raises(Exception, match=r"spans|tree"):
        lower(
            Forest(2, 1, Fraction(1), (Tree(0, 1, ()), Tree(1, 1, ()))),
            LoweringOptions(),
            runtime_limits("rccl", 8),
        )


def test_flat_topology_has_no_planes():
    assert network_planes(flat_topology(4)) == {}


def test_leaves_that_take_whole_boxes_are_not_planes():
    """A plane is a switch that some box reaches with a part of its NICs (rails); a leaf per box is
    reached by all of its box's NICs and is not one, while the leaves of rails under leaf groups
    (DGX H100, two boxes per leaf group) stay planes, one per rail and group."""
    assert network_planes(load(FIXTURES / "leaf-per-box-2x4.yaml")) == {}
    rails = network_planes(load("dgx-h100", {"boxes": "4", "boxes_per_leaf": "2"}))
    assert sorted(rails) == sorted(f"leaf{i}" for i in range(16))


def test_lanes_carry_one_tree_depth_each_unless_shared():
    from collc.lowering.assign import assign, group_loads, wanted_lanes

    plan = build_plan(forest(5, [(chain, 1)]), "allreduce")
    for split in (True, False):
        loads = group_loads(plan, split)
        lanes = wanted_lanes(plan, loads, Fraction(1))
        assignment = assign(plan, loads, lanes, num_planes=0, max_channels=32, max_tbs=108)
        stages: dict[int, set] = {}
        for transfer, lane in zip(plan.transfers, assignment.lane_of, strict=True):
            stages.setdefault(lane, set()).add(transfer.key[:2])
        widest = max(len(s) for s in stages.values())
        # a 5-GPU chain uses pair (0, 1) at every depth: split lanes hold one stage, shared lanes several
        assert widest == 1 if split else widest > 1


def test_a_pair_short_of_channels_shares_its_lanes_across_stages():
    """A 5-GPU chain's pair (0, 1) carries every tree depth, a lane each: with 2 channels the depths
    beyond two share the pair's lanes instead of failing; with none the pair cannot connect."""
    from collc.lowering.assign import assign, group_loads, wanted_lanes

    plan = build_plan(forest(5, [(chain, 1)]), "allreduce")
    loads = group_loads(plan, True)
    lanes = wanted_lanes(plan, loads, Fraction(1))
    roomy = assign(plan, loads, lanes, num_planes=0, max_channels=32, max_tbs=108)
    assert roomy.nchannels > 2
    tight = assign(plan, loads, lanes, num_planes=0, max_channels=2, max_tbs=108)
    assert tight.nchannels == 2 and sorted(tight.lane_of) != sorted(roomy.lane_of)
    with pytest.raises(DoesNotFit, match="needs channel 0"):
        assign(plan, loads, lanes, num_planes=0, max_channels=0, max_tbs=108)
    limits = replace(runtime_limits("rccl", 108), max_channels=2)
    lowered = lower(
        forest(5, [(chain, 1)]), LoweringOptions(coll="allreduce"), limits, allow_shared_stages=False
    )
    assert lowered.usage.nchannels <= 2
    assert_valid(lowered.algorithm, limits)


def test_lowering_falls_back_to_shared_stages_only_when_allowed():
    f = forest(5, [(chain, 1)], U=Fraction(1, 10))
    limits = runtime_limits("rccl", 6)  # one lane per depth needs 8 threadblocks on a GPU even merged
    apart = LoweringOptions(coll="allreduce", join_stages=False)
    with pytest.raises(DoesNotFit):
        lower(f, apart, limits, allow_shared_stages=False)
    shared = lower(f, apart, limits)
    assert shared.stages_shared and shared.usage.max_tbs <= 6
    assert_valid(shared.algorithm, limits)
    # a pair's nearest depths joined fit without sharing them all
    joined = lower(f, LoweringOptions(coll="allreduce"), limits, allow_shared_stages=False)
    assert joined.joined_stages > 0 and not joined.stages_shared and joined.usage.max_tbs <= 6
    assert_valid(joined.algorithm, limits)


def test_at_most_32_lanes_per_channel_and_direction_on_a_gpu():
    f = forest(40, [(star, 1)])  # every root sends to 39 peers directly
    limits = runtime_limits("msccl-executor", 128)
    algo = lower(f, LoweringOptions(coll="allgather"), limits).algorithm
    for gpu in algo.gpus:
        for chan in range(algo.nchannels):
            assert sum(1 for tb in gpu.tbs if tb.send >= 0 and tb.chan == chan) <= 32
            assert sum(1 for tb in gpu.tbs if tb.recv >= 0 and tb.chan == chan) <= 32
    assert 2 <= algo.nchannels <= 3  # 39 peers cannot share one channel
