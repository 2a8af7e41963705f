"""Plant one defect of each class into a correct program and check that the verifier names it."""

from __future__ import annotations

import pytest

from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.topology.model import Metadata, Node, Topology
from collc.verify import verify
from collc.verify.fold import fold_threadblock
from collc.verify.simulate import Case, simulate

from .programs import (
    allpairs_allreduce,
    exchange,
    fixture,
    reducescatter_through_other_blocks,
    ring_allgather,
    step,
    threadblock,
    without_reducer_wait,
)


def errors(algo, **kwargs) -> set[str]:
    return {problem.rule for problem in verify(algo, **kwargs).errors}


def test_unmodified_programs_are_clean() -> None:
    for name in ("ring_allgather_4", "ring_allreduce_4x2", "tree_allreduce_3"):
        assert verify(fixture(name)).problems == []
    assert verify(exchange(2, "Simple")).problems == []


def test_deadlock_through_fifo_depth_names_the_cycle() -> None:
    """Send 3 chunks before receiving: Simple buffers 2 calls per connection, LL 8."""
    report = verify(exchange(3, "Simple"), filename="exchange.xml")
    (deadlock,) = [p for p in report.problems if p.rule == "deadlock"]
    assert "cycle of waits" in deadlock.message
    assert "rank 0 tb 0 step 1 (s) waits for room in the FIFO to rank 1" in deadlock.message
    assert "rank 1 tb 0 step 1 (s) waits for room in the FIFO to rank 0" in deadlock.message
    assert "one chunk per call" in deadlock.message
    assert deadlock.location is not None and deadlock.location.file == "exchange.xml"
    assert all(p.location is None for p in verify(exchange(3, "Simple")).problems)  # IR without lines
    assert verify(exchange(3, "LL")).problems == []
    assert verify(exchange(9, "LL")).rules() == {"deadlock"}


def test_ring_allreduce_needs_fifo_depth_two() -> None:
    """The fixture README: the composite ring completes on Simple (K=2); any step added that makes
    every rank send two messages before its first receive deadlocks."""
    algo = fixture("ring_allreduce_4x2")
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            first = tb.steps[0]
            tb.steps.insert(0, Step(0, "s", first.srcbuf, first.srcoff, "o", 0, 1))
            tb.steps.insert(0, Step(0, "s", first.srcbuf, first.srcoff, "o", 0, 1))
            tb.steps.append(Step(0, "r", "o", 0, "s", 0, 1))
            tb.steps.append(Step(0, "r", "o", 0, "s", 0, 1))
            for index, member in enumerate(tb.steps):
                member.s = index
        gpu.s_chunks = 1
    assert "deadlock" in errors(algo)


def test_missing_wait_is_a_race() -> None:
    algo = fixture("tree_allreduce_3")
    send_result = step(algo, 0, 1, 1)
    send_result.depid, send_result.deps = -1, -1
    report = verify(algo)
    assert "race" in report.rules()
    race = next(p for p in report.problems if p.rule == "race")
    assert "rank 0 tb 1 step 1 (s)" in race.message and "o[0] of rank 0" in race.message


def test_removed_nop_wait_is_a_race() -> None:
    algo = fixture("tree_allreduce_3")
    tb = threadblock(algo, 0, 0)
    del tb.steps[1]  # the nop that waits for tb 2's copy into o
    for index, member in enumerate(tb.steps):
        member.s = index
    step(algo, 0, 1, 1).deps = 2  # keep the other wait pointing at the (renumbered) fused chain
    assert "race" in errors(algo)


def test_wrong_deps_too_early_is_a_race() -> None:
    algo = fixture("tree_allreduce_3")
    step(algo, 0, 0, 0).hasdep = 1
    step(algo, 0, 1, 1).deps = 0  # waits for the receive instead of the reduction
    assert "race" in errors(algo)


def test_wrong_deps_beyond_the_last_flag_hangs() -> None:
    algo = fixture("tree_allreduce_3")
    step(algo, 0, 1, 1).deps = 4
    rules = errors(algo)
    assert {"dep-on-unpublished", "deadlock"} <= rules


def test_dependency_on_own_or_missing_threadblock() -> None:
    algo = fixture("tree_allreduce_3")
    step(algo, 0, 1, 1).depid = 7
    assert "dep-target" in errors(algo)
    step(algo, 0, 1, 1).depid = 1
    assert "dep-target" in errors(algo)


def test_unpaired_connection() -> None:
    algo = fixture("ring_allgather_4")
    threadblock(algo, 0, 0).send = 2
    assert "unpaired-connection" in errors(algo)


def test_message_count_and_leftover_message() -> None:
    algo = fixture("ring_allgather_4")
    threadblock(algo, 0, 0).steps.append(Step(7, "s", "o", 0, "o", 0, 1))
    rules = verify(algo).rules()
    assert {"message-count", "leftover-message"} <= rules


def test_wrong_postcondition_shows_rank_chunk_expected_and_found() -> None:
    algo = fixture("ring_allreduce_4x2")
    step(algo, 1, 0, 1).srcoff = 2  # rank 1 adds its chunk 2 where chunk 3 belongs
    report = verify(algo)
    assert "postcondition" in report.rules()
    messages = [p.message for p in report.problems if p.rule == "postcondition"]
    assert any(
        "o[3] should hold in_0[3] + in_1[3] + in_2[3] + in_3[3] but holds" in m and "missing in_1[3]" in m
        for m in messages
    ), messages


def test_duplicate_contribution_breaks_the_postcondition() -> None:
    algo = fixture("tree_allreduce_3")
    tb = threadblock(algo, 0, 0)
    tb.steps.insert(4, Step(4, "re", "s", 0, "o", 0, 2, hasdep=0))
    tb.steps[3].hasdep = 0  # the chain now ends at the new step, which publishes position 4
    tb.steps[4].hasdep = 1
    for index, member in enumerate(tb.steps):
        member.s = index
    step(algo, 0, 1, 1).deps = 4
    report = verify(algo)
    assert report.rules() == {"postcondition"}
    assert "in_1[0] more than once" in report.problems[0].message


def test_rccl_rejects_composite_step_types() -> None:
    algo = fixture("ring_allreduce_4x2")
    assert errors(algo, runtime="rccl") == {"rccl-step-type"}
    assert errors(algo, runtime="msccl-executor") == set()


@pytest.mark.parametrize(("offset", "cnt"), [(4, 1), (3, 2), (-1, 1)])
def test_out_of_range_offset(offset: int, cnt: int) -> None:
    algo = fixture("ring_allgather_4")
    receive = step(algo, 0, 0, 2)
    receive.dstoff, receive.cnt = offset, cnt
    report = verify(algo)
    assert "operand-range" in report.rules()
    assert any("simulation skipped" in note for note in report.notes)


def test_step_numbering_and_nop_rules() -> None:
    algo = fixture("tree_allreduce_3")
    step(algo, 0, 0, 4).s = 5
    step(algo, 0, 0, 2).depid = -1  # the step after the nop has no dependency of its own
    rules = errors(algo)
    assert {"step-numbering", "nop-chain"} <= rules


def test_fused_chain_longer_than_the_executor_handles() -> None:
    algo = fixture("tree_allreduce_3")
    gpu = next(g for g in algo.gpus if g.id == 0)
    gpu.s_chunks = 40
    tb = threadblock(algo, 0, 2)
    tb.steps[0].hasdep = 0
    tb.steps += [Step(1 + n, "re", "s", 2 * n, "o", 0, 2, hasdep=1 if n == 15 else 0) for n in range(16)]
    assert "re-chain-too-long" in errors(algo)
    assert "re-chain-too-long" not in errors(algo, runtime="rccl")


def test_limits_of_the_runtime() -> None:
    algo = fixture("ring_allgather_4")
    threadblock(algo, 0, 0).chan = 32
    assert "chan-range" in errors(algo)
    algo = fixture("ring_allgather_4")
    algo.gpus = algo.gpus[:3]
    assert "missing-gpu" in errors(algo)
    algo = fixture("ring_allgather_4")
    algo.gpus[0].o_chunks = 8
    assert "buffer-size" in errors(algo)
    algo = fixture("ring_allgather_4")
    algo.coll = "reduce_scatter"
    assert "coll" in errors(algo)


def test_threadblocks_against_the_topology_sms() -> None:
    gpus = tuple(Node(f"g{r}", "gpu") for r in range(4))
    topology = Topology("tiny", gpus, (), tuple(g.name for g in gpus), metadata=Metadata("X", sms_per_gpu=2))
    algo = fixture("ring_allreduce_4x2")
    assert errors(algo, topology=topology) == set()
    topology = Topology("tiny", gpus, (), tuple(g.name for g in gpus), metadata=Metadata("X", sms_per_gpu=1))
    assert errors(algo, topology=topology) == {"tbs-exceed-sms"}


@pytest.mark.parametrize("name", ["ring_allreduce_4x2", "ring_allgather_4"])
def test_in_place_variants_are_checked_with_aliasing(name: str) -> None:
    algo = fixture(name)
    algo.inplace = 1
    report = verify(algo)
    assert report.problems == []
    assert any("data and races in-place and out-of-place" in note for note in report.notes), report.notes


def test_in_place_aliasing_breaks_a_program_correct_out_of_place() -> None:
    """Receive the peer's input into o, then add i: in place, o[0] is i[0], so the own input is gone."""
    gpus = []
    for rank in range(2):
        steps = [
            Step(0, "s", "i", 0, "o", 0, 1),
            Step(1, "r", "o", 0, "o", 0, 1),
            Step(2, "re", "i", 0, "o", 0, 1),
        ]
        gpus.append(GpuProgram(rank, 1, 1, 0, [Threadblock(0, 1 - rank, 1 - rank, 0, steps)]))
    algo = Algorithm("swap_add", "LL", 1, 1, 2, "allreduce", 0, 1, 0, 0, gpus)
    assert verify(algo).problems == []
    algo.inplace = 1
    report = verify(algo)
    messages = [p.message for p in report.problems if p.rule == "postcondition"]
    assert len(messages) == 2 and all("in-place" in m for m in messages)
    assert (
        "rank 0 o[0] should hold in_0[0] + in_1[0] but holds in_1[0], with in_1[0] more than once"
        in messages[0]
    )


def test_in_place_reducescatter_that_uses_other_blocks_as_scratch_warns() -> None:
    """Receiving into the peer's (already sent) block is harmless in place but changes the user's
    buffer outside the output, which NCCL never does; out of place it writes the const input."""
    algo = reducescatter_through_other_blocks()
    report = verify(algo)
    assert report.ok and report.rules() == {"clobbers-input"}
    algo.inplace, algo.outofplace = 0, 1
    assert verify(algo).rules() == {"writes-input"}


def test_parser_node_limit() -> None:
    algo = fixture("ring_allgather_4")
    gpu = algo.gpus[0]
    template = gpu.tbs[0]
    gpu.tbs = [
        Threadblock(n, -1, -1, 0, [Step(s, "cpy", "i", 0, "o", 0, 1) for s in range(64)]) for n in range(64)
    ]
    gpu.tbs[0] = template
    assert "parser-node-limit" in errors(algo)


def test_flag_nobody_waits_for_is_a_warning() -> None:
    algo = fixture("ring_allgather_4")
    step(algo, 2, 0, 3).hasdep = 1
    report = verify(algo)
    assert report.ok and report.rules() == {"unused-flag"}
    assert report.problems[0].location.line == step(algo, 2, 0, 3).line


def test_generated_ring_scales() -> None:
    assert verify(ring_allgather(16)).problems == []


def test_fixture_ring_needs_fifo_depth_two() -> None:
    """fixtures/msccl/README.md: the composite ring allreduce deadlocks under K = 1."""
    algo = fixture("ring_allreduce_4x2")
    folded = {(gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs}
    assert [p.rule for p in simulate(algo, "allreduce", folded, Case(1, 1))] == ["deadlock"]
    assert simulate(algo, "allreduce", folded, Case(2, 1, (True, False))) == []


def test_msccl_tools_in_place_conventions_are_valid() -> None:
    """In-place allreduce files may name only i (o_chunks=0); in-place allgather files only o
    (i_chunks=0, input j of rank r renamed to o[r*k + j])."""
    allreduce = fixture("ring_allreduce_4x2")
    allreduce.inplace, allreduce.outofplace = 1, 0
    for gpu in allreduce.gpus:
        gpu.o_chunks = 0
        for tb in gpu.tbs:
            for member in tb.steps:
                member.srcbuf, member.dstbuf = "i", "i"
    assert verify(allreduce).problems == []
    allgather = fixture("ring_allgather_4")
    allgather.inplace, allgather.outofplace = 1, 0
    for gpu in allgather.gpus:
        gpu.i_chunks = 0
        tb = gpu.tbs[0]
        del tb.steps[0]  # the copy of the own block is a no-op in place
        tb.steps[0].srcbuf, tb.steps[0].srcoff = "o", gpu.id
        for index, member in enumerate(tb.steps):
            member.s = index
    assert verify(allgather).problems == []
    allgather.outofplace = 1
    assert "undefined-read" in verify(allgather).rules()  # out of place, o[r] is never written


def test_allpairs_allreduce_with_nop_waits_and_fused_chains() -> None:
    """Many waits folded from nops into a fused re chain (the shape of RCCL's shipped all-pairs
    files): clean on RCCL; dropping one wait for a receive into scratch is a race."""
    algo = allpairs_allreduce(4)
    assert verify(algo, runtime="rccl").problems == []
    report = verify(without_reducer_wait(algo), runtime="rccl")
    assert "race" in report.rules()
    assert any("s[0] of rank 0" in p.message for p in report.problems if p.rule == "race")


def test_allpairs_allreduce_scales() -> None:
    assert verify(allpairs_allreduce(8, channels=4)).problems == []
