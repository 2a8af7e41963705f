"""collc compile --runtime mscclpp: plans from the lowered program, their verification and prediction.

The compiles run on a small two-box fabric (eight GPUs, memory channels inside a box, port channels
between boxes) so that every collective fits the CI budget; the shipped presets are compiled by hand
(docs/mscclpp.md lists the run). Planted defects check that what compile_plan relies on catches a
broken translation: the channel pairing, the ready handshake, the semaphores and the read-back.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.compile.driver import CompileOptions
from collc.msccl.program import GpuProgram, Step, Threadblock
from collc.mscclpp.compile import PlanResult, compile_plan
from collc.mscclpp.lower import PIPELINE_UNIT_BYTES, box_of_ranks, groups, semaphores, to_plan
from collc.mscclpp.lower_sim import PlanCost, differences, protocol, to_algorithm
from collc.mscclpp.plan import MAX_OPERATIONS
from collc.mscclpp.reader import read_plan
from collc.mscclpp.verify import verify_plan_text
from collc.predict.params import protocol as xml_protocol
from collc.topology.presets import load

FABRIC = str(Path(__file__).parents[1] / "lowering" / "fixtures" / "two-boxes-slow-nic.yaml")


@cache
def _topology():
    return load(FABRIC)


@cache
def _compiled(coll: str) -> PlanResult:
    return compile_plan(_topology(), CompileOptions(coll=coll, user_range=True))


def _errors(text: str) -> set[str]:
    return {problem.rule for problem in verify_plan_text(text).errors}


@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
def test_every_collective_compiles_to_a_plan_that_verifies_and_reads_back(coll):
    planned = _compiled(coll)
    assert verify_plan_text(planned.text).ok
    document = json.loads(planned.text)
    assert document["collective"] == coll and len(document["gpus"]) == 8
    boxes = box_of_ranks(_topology())
    for gpu in planned.plan.gpus:
        for kind, peers in gpu.channels:  # memory channels inside a box, port channels between boxes
            assert all((boxes[peer] == boxes[gpu.id]) == (kind == "memory") for peer in peers)
        assert max(tb.op_count() for tb in gpu.threadblocks) <= MAX_OPERATIONS
    assert any(kind == "port" for gpu in planned.plan.gpus for kind, _ in gpu.channels)
    assert differences(planned.result.algorithm, to_algorithm(read_plan(planned.text))) == []


def test_the_same_input_gives_byte_identical_plans():
    again = compile_plan(_topology(), CompileOptions(coll="allgather", user_range=True))
    assert again.text == _compiled("allgather").text


def test_the_report_predicts_the_plan_with_its_own_parameters():
    planned = _compiled("allreduce")
    network = planned.result.model.network
    cost = PlanCost(network, planned.result.algorithm, PIPELINE_UNIT_BYTES)
    rows = {row.nbytes: row.algbw for row in planned.result.predicted}
    for nbytes, algbw in rows.items():
        assert algbw == pytest.approx(nbytes / cost.time_us("allreduce", nbytes, None) / 1000)
    # the pipeline unit is a parameter of the prediction: whole-chunk ops pipeline nothing (k = 1, whose
    # 8 chunks, one instance, are the largest: 1.26x; the k the search emits has more, smaller chunks)
    options = CompileOptions(coll="allreduce", user_range=True, k=1, instances=1, more_instances=False)
    one = compile_plan(_topology(), options).result.algorithm
    size = 1 << 30
    pipelined = PlanCost(network, one, PIPELINE_UNIT_BYTES).time_us("allreduce", size, None)
    assert PlanCost(network, one, 1 << 40).time_us("allreduce", size, None) > 1.2 * pipelined
    # and it is not the XML file's simulation (FIFO credit, 2 MiB calls, 512-thread copies)
    xml = planned.result.model.collc(planned.result.algorithm).time_us(
        "allreduce", 1 << 26, xml_protocol("Simple")
    )
    assert cost.time_us("allreduce", 1 << 26, None) != pytest.approx(xml)
    assert protocol(PIPELINE_UNIT_BYTES).call_bytes == PIPELINE_UNIT_BYTES


def _mutated(text: str, change) -> str:
    document = json.loads(text)
    change(document)
    return json.dumps(document, indent=2, sort_keys=True)


def test_ranks_must_list_their_channels_to_a_peer_in_the_same_order():
    """The executor pairs the k-th channel from a to b with the k-th from b to a."""

    def swap(document):
        peers = document["gpus"][0]["channels"][0]["connected_to"]
        other = next(i for i, peer in enumerate(peers) if peer != peers[0])
        peers[0], peers[other] = peers[other], peers[0]

    assert _errors(_mutated(_compiled("allgather").text, swap))


def test_every_writer_waits_for_its_reader_to_be_ready_once_per_call():
    """A call's writes go straight into the peer's buffers: a writing threadblock first waits for the
    reading threadblock's signal, sent as its first op (it has finished the previous call). One call's
    simulation cannot see the next call, so this is checked on the plan's structure."""
    for gpu in _compiled("allreduce").plan.gpus:
        for tb in gpu.threadblocks:
            *prologue, pipeline = tb.ops
            inner = pipeline.ops
            sends = {(op.channel_type, op.channel_ids) for op in inner if op.name in ("put", "pwsf")}
            reads = {(op.channel_type, op.channel_ids) for op in inner if op.name == "wait"}
            assert {(op.channel_type, op.channel_ids) for op in prologue if op.name == "wait"} == sends
            assert {(op.channel_type, op.channel_ids) for op in prologue if op.name == "signal"} == reads
            assert [op.name for op in prologue] == sorted(op.name for op in prologue)[::-1]  # signal first


def test_a_plan_without_its_semaphores_fails_verification():
    def drop_acquires(document):
        for gpu in document["gpus"]:
            for tb in gpu["threadblocks"]:
                for op in tb["ops"]:
                    if op["name"] == "pipeline":
                        op["ops"] = [inner for inner in op["ops"] if inner["name"] != "sem_acquire"]

    text = _compiled("allreduce").text
    assert '"sem_acquire"' in text
    assert _errors(_mutated(text, drop_acquires))


def test_port_writes_must_flush_before_the_call_ends():
    """The proxy reads a port write's source after the op returns: without the flush the next call's
    copy into that slot races with this call's network read."""
    text = _compiled("allgather").text
    assert '"pwsf"' in text
    assert "race" in _errors(text.replace('"pwsf"', '"pws"'))


def test_read_back_sees_a_write_moved_to_another_slot():
    planned = _compiled("allgather")

    def move(document):
        for gpu in document["gpus"]:
            for tb in gpu["threadblocks"]:
                for op in tb["ops"]:
                    for inner in op.get("ops", []):
                        if inner["name"] in ("put", "pwsf"):
                            inner["dst_buff"][0]["index"] += 1
                            return

    moved = _mutated(planned.text, move)
    assert differences(planned.result.algorithm, to_algorithm(read_plan(moved)))


def test_a_consumer_waits_only_for_steps_beyond_those_it_already_waited_for():
    def step(index: int, depid: int = -1, deps: int = -1) -> Step:
        return Step(index, "cpy", "i", index, "o", index, 1, depid, deps)

    producer = Threadblock(0, -1, -1, 0, [step(i) for i in range(6)])
    consumer = Threadblock(1, -1, -1, 0, [step(0, 0, 3), step(1, 0, 1), step(2, 0, 5), step(3, 0, 5)])
    table = semaphores(GpuProgram(0, 8, 8, 0, [producer, consumer]))
    assert table.pairs == [(0, 1)]
    assert dict(table.acquire) == {
        (1, 0): [0],
        (1, 2): [0],
    }  # the waits for steps 1 and 5 (again) are implied
    assert dict(table.release) == {(0, 3): [0], (0, 5): [0]}


def test_steps_of_unequal_size_do_not_pipeline():
    algo = _compiled("allgather").result.algorithm
    gpu = algo.gpus[0]
    data = next(tb for tb in gpu.tbs if any(s.type == "cpy" for s in tb.steps))
    bigger = [replace(s, cnt=2) if s.type == "cpy" else s for s in data.steps]
    tbs = [replace(tb, steps=bigger) if tb is data else tb for tb in gpu.tbs]
    broken = replace(algo, gpus=[replace(gpu, tbs=tbs), *algo.gpus[1:]])
    with pytest.raises(Exception, match="one count for all"):
        to_plan(broken, _topology())


def test_cli_compiles_and_simulates_a_plan(tmp_path):
    plan = tmp_path / "ag.json"
    runner = CliRunner()
    done = runner.invoke(
        main,
        [
            "compile",
            FABRIC,
            "--coll",
            "allgather",
            "--runtime",
            "mscclpp",
            "--min-bytes",
            "0",
            "-o",
            str(plan),
        ],
    )
    assert done.exit_code == 0, done.output
    assert plan.read_text() == _compiled("allgather").text
    assert "MSCCL++ v0.10.0" in done.output and "ExecutionPlan" in done.output
    simulated = runner.invoke(main, ["simulate", FABRIC, str(plan), "--sizes", "64MiB", "--json"])
    assert simulated.exit_code == 0, simulated.output
    row = json.loads(simulated.output)["rows"][0]
    assert row["collc"]["algbw"] > 0
    # on fewer GPUs than the plan's ranks: the located line, before the plan's timing model is built
    fewer = runner.invoke(main, ["simulate", FABRIC, "--gpus", "0-1", str(plan)])
    assert fewer.exit_code == 2 and "the schedule is for" in fewer.output and "GPUs but" in fewer.output
    assert f"{plan}:" in fewer.output and "unexpected" not in fewer.output
    for option, value, message in (
        ("--proto", "LL", "runs the Simple protocol"),
        ("--buffsize", "1MiB", "has none"),
    ):
        refused = runner.invoke(main, ["simulate", FABRIC, str(plan), option, value])
        assert refused.exit_code == 2 and message in refused.output, refused.output
    refused = runner.invoke(
        main, ["compile", FABRIC, "--runtime", "mscclpp", "--bundle", str(tmp_path / "b")]
    )
    assert refused.exit_code == 2 and "--bundle" in refused.output


def test_folds_into_one_slot_become_one_re_split_where_another_threadblock_waits():
    def fold(index: int, source: int, depid: int, hasdep: int = 0) -> Step:
        return Step(index, "re", "s", source, "o", 0, 1, depid, 0, hasdep)

    steps = [fold(0, 1, 1), fold(1, 2, 2), fold(2, 3, 3, hasdep=1), fold(3, 4, 4)]
    steps += [fold(4 + i, 5 + i, -1) for i in range(10)]  # ten more: one re holds 9 sources at most
    folder = Threadblock(0, -1, -1, 0, steps)
    producers = [
        Threadblock(i, -1, -1, 0, [Step(0, "cpy", "i", i, "s", i, 1, hasdep=1)]) for i in range(1, 5)
    ]
    waiter = Threadblock(5, -1, -1, 0, [Step(0, "cpy", "o", 0, "o", 1, 1, 0, 2)])
    gpu = GpuProgram(0, 8, 8, 16, [folder, *producers, waiter])
    assert groups(folder, semaphores(gpu)) == [[0, 1, 2], [3, 4, 5, 6, 7, 8, 9, 10, 11], [12, 13]]
