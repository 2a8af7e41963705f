"""`collc.mscclpp.verify` on hand-made MSCCL++ v0.10.x plans: the valid ones pass, each planted defect is
rejected with its rule and located at its JSON path, and removing any signal, wait or data op of a valid
plan is caught."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from collc.mscclpp.verify import verify_plan_text

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mscclpp"
VALID = sorted(p for p in FIXTURES.glob("*.json") if not p.name.startswith("bad_"))
#: each planted defect and the rule that must name it
DEFECTS = {
    "bad_missing_signal.json": "deadlock",
    "bad_channel_index.json": "channel-index",
    "bad_chunk_bounds.json": "chunk-bounds",
    "bad_race.json": "race",
    "bad_reduction.json": "postcondition",
    "bad_field_name.json": "op-fields",
    "bad_missing_nop.json": "missing-sync",
    "bad_pws_memory.json": "put-signal-channel",
    "bad_leftover_signal.json": "leftover-signal",
    "bad_unknown_op.json": "unknown-op",
    "bad_port_peer.json": "channel-peer",
}


def verify(document: dict | str, name: str = "plan.json"):
    text = document if isinstance(document, str) else json.dumps(document, indent=1)
    return verify_plan_text(text, name)


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_every_defect_fixture_is_listed() -> None:
    assert {p.name for p in FIXTURES.glob("bad_*.json")} == set(DEFECTS)
    assert len(VALID) == 5


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_plans_pass_the_simulation(path: Path) -> None:
    report = verify_plan_text(path.read_text(), path.name)
    assert report.ok and not report.problems, [str(p) for p in report.problems]
    assert any(note.startswith("simulated ") for note in report.notes)


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_planted_defect_is_rejected_with_its_rule_and_location(name: str) -> None:
    text = (FIXTURES / name).read_text()
    report = verify_plan_text(text, name)
    assert not report.ok
    found = [p for p in report.errors if p.rule == DEFECTS[name]]
    assert found, [str(p) for p in report.problems]
    location = found[0].location
    assert location is not None and location.file == name and location.line is not None
    assert 1 <= location.line <= text.count("\n")


def test_race_is_located_at_the_unordered_read() -> None:
    text = (FIXTURES / "bad_race.json").read_text()
    (problem,) = verify_plan_text(text, "bad_race.json").errors
    assert "gpus[0].threadblocks[0].ops[4] (re)" in problem.message
    assert "gpus[1].threadblocks[0].ops[0] (put)" in problem.message
    # the op object opens on the located line: a "name": "re" follows it within the object
    lines = text.splitlines()
    assert lines[problem.location.line - 1].strip() == "{"
    assert '"name": "re"' in "\n".join(lines[problem.location.line - 1 : problem.location.line + 20])


def test_deadlock_names_the_wait_and_what_it_waits_for() -> None:
    report = verify(load("bad_missing_signal.json"))
    (problem,) = report.errors
    assert problem.message.startswith("gpus[0].threadblocks[0].ops[5] (wait) never completes")
    assert "signal #1 on memory channel 0 (from rank 1), which rank 1 sends 0 time(s)" in problem.message


def test_field_misspelling_is_warned_with_the_right_name() -> None:
    report = verify(load("bad_field_name.json"))
    (warning,) = [p for p in report.problems if p.rule == "unknown-field"]
    assert warning.severity == "warning" and "did you mean 'channel_ids'" in warning.message


def test_many_unknown_fields_leave_a_plan_valid() -> None:
    """Beyond the eight listed, unknown fields are counted in one entry; it was an error, so a plan with
    nine fields v0.10.x ignores was reported invalid."""
    plan = load("allgather_2gpu_memory.json")
    plan.update({f"extra_{index}": 0 for index in range(12)})
    report = verify(plan)
    (rest,) = [p for p in report.problems if p.omitted]
    assert report.ok and rest.severity == "warning" and rest.omitted == 4
    assert rest.message == "… and 4 more 'unknown-field' problems"


def _sites(plan: dict, names: frozenset[str]):
    for g, gpu in enumerate(plan["gpus"]):
        for t, tb in enumerate(gpu["threadblocks"]):
            for o, op in enumerate(tb["ops"]):
                if op["name"] in names:
                    yield g, t, o


SYNC_AND_DATA = frozenset({"signal", "wait", "pws", "put", "copy", "re", "ppkt", "repkt", "upkt"})


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_removing_any_signal_wait_or_data_op_is_caught(path: Path) -> None:
    plan = json.loads(path.read_text())
    sites = list(_sites(plan, SYNC_AND_DATA))
    assert sites
    for g, t, o in sites:
        mutant = copy.deepcopy(plan)
        removed = mutant["gpus"][g]["threadblocks"][t]["ops"].pop(o)
        report = verify(mutant)
        assert not report.ok, (
            f"removing {removed['name']} at gpus[{g}].threadblocks[{t}].ops[{o}] went unnoticed"
        )


def test_relaxed_signals_order_no_data() -> None:
    """rlxsignal/rlxwait count like signal/wait but carry no memory ordering: the peer's put is then not
    known to have landed when the rank's kernel ends."""
    plan = load("allgather_2gpu_memory.json")
    for gpu in plan["gpus"]:
        ops = gpu["threadblocks"][0]["ops"]
        ops[4]["name"], ops[5]["name"] = "rlxsignal", "rlxwait"
    report = verify(plan)
    assert report.rules() == {"unawaited-write"}


def _two_port_channels(put_channel: int, signal_channel: int) -> dict:
    """allgather on 2 ranks, each holding two port channels to the other: the put goes through one,
    the signal (after a nop) through the other, and a receipt comes back on the signal's channel."""
    plan = load("allgather_2gpu_memory.json")
    for gpu in plan["gpus"]:
        peer = 1 - gpu["id"]
        gpu["channels"] = [{"channel_type": "port", "connected_to": [peer, peer]}]
        gpu["remote_buffers"][0]["access_channel_types"] = ["port"]
        tb = gpu["threadblocks"][0]
        tb["channels"] = [{"channel_type": "port", "channel_ids": [0, 1]}]
        tb["remote_buffer_refs"] = [{"access_channel_type": "port", "remote_buffer_ids": [0]}]
        put, signal, wait = tb["ops"][2], tb["ops"][4], tb["ops"][5]
        put.update(channel_type="port", channel_ids=[put_channel])
        signal.update(channel_type="port", channel_ids=[signal_channel])
        wait.update(channel_type="port", channel_ids=[signal_channel])
        tb["ops"] += [dict(signal), dict(wait)]
    return plan


def test_a_wait_orders_only_the_puts_of_its_own_port_channel() -> None:
    """Each port channel has its own proxy, which serves the channel's requests in order: a signal
    on another channel of the same peer may arrive before the put."""
    assert verify(_two_port_channels(0, 0)).ok
    assert verify(_two_port_channels(1, 1)).ok
    rules = verify(_two_port_channels(0, 1)).rules()
    assert "unawaited-write" in rules and rules <= {"unawaited-write", "race"}


def test_a_call_waits_for_the_peer_to_finish_the_previous_one() -> None:
    """Without its closing signal and wait, a rank of the reducescatter can put into its peer's scratch
    in the next call while the peer still reduces from it."""
    plan = load("reducescatter_2gpu_memory.json")
    for gpu in plan["gpus"]:
        del gpu["threadblocks"][0]["ops"][-3:]
    report = verify(plan)
    assert report.rules() == {"race"}
    assert all("in the call before, of s[0]" in problem.message for problem in report.errors)
    plan["use_double_scratch_buffer"] = True  # consecutive calls use the two halves of the scratch
    assert verify(plan).ok


def test_a_port_put_frees_its_source_only_after_a_flush_or_a_receipt() -> None:
    """The proxy reads a port put's source after the kernel may have ended; pwsf makes the thread wait
    for the proxy's flush, the fixture's receipts order it too."""
    plan = load("allgather_4gpu_port.json")
    for gpu in plan["gpus"]:
        del gpu["threadblocks"][0]["ops"][-2:]  # the receipts
    assert verify(plan).rules() == {"race"}
    for gpu in plan["gpus"]:
        gpu["threadblocks"][0]["ops"][2]["name"] = "pwsf"
    assert verify(plan).ok


def test_pipeline_runs_its_ops_once_per_chunk() -> None:
    plan = load("allgather_2gpu_memory.json")
    for gpu in plan["gpus"]:
        gpu["output_chunks"], gpu["input_chunks"] = 4, 2
        ops = gpu["threadblocks"][0]["ops"]
        rank = gpu["id"]
        ops[0]["src_buff"][0]["size"] = ops[0]["dst_buff"][0]["size"] = 2
        ops[0]["dst_buff"][0]["index"] = 2 * rank
        ops[2]["src_buff"][0].update(index=2 * rank, size=2)
        ops[2]["dst_buff"][0].update(index=2 * rank, size=2)
        inner = [ops[0], ops[1], ops[2], ops[3], ops[4], ops[5], {"name": "nop"}]
        gpu["threadblocks"][0]["ops"] = [
            {"name": "pipeline", "iter_context": {"unit_size": 1 << 20, "num_chunks": 2}, "ops": inner}
        ]
    report = verify(plan)
    assert report.ok, [str(p) for p in report.problems]
    assert any("pipelines simulated" in note for note in report.notes)
    # one rank's pipeline of one chunk per op: its iterations stop short of the other rank's
    pipeline = plan["gpus"][1]["threadblocks"][0]["ops"][0]
    pipeline["iter_context"]["num_chunks"] = 1
    assert "pipeline-sizes" in verify(plan).rules()


def test_unsimulated_ops_are_not_accepted() -> None:
    plan = load("allgather_2gpu_memory.json")
    plan["gpus"][0]["threadblocks"][0]["ops"][0]["tbg_info"] = {"tb_id": 0, "tbg_size": 1}
    report = verify(plan)
    assert not report.ok and report.rules() == {"not-simulated"}
    assert "not simulated" in report.notes[0]


def test_ops_of_one_threadblock_need_a_nop_or_another_order() -> None:
    """Without the nop, the put's threads may read o[r] before the copy's threads wrote it."""
    plan = load("allgather_2gpu_memory.json")
    del plan["gpus"][0]["threadblocks"][0]["ops"][1]  # the nop between copy and put
    report = verify(plan)
    assert report.rules() == {"race"}
    assert "(put) and the write by gpus[0].threadblocks[0].ops[0] (copy)" in report.errors[0].message


def test_a_packet_round_trip_orders_two_ops_of_one_threadblock() -> None:
    """In the packet allreduce, tb 0 reads i[peer] and later overwrites it with no nop between: the
    peer's reply, which it must wait for, orders the two."""
    plan = load("allreduce_2gpu_packets.json")
    assert [op["name"] for op in plan["gpus"][0]["threadblocks"][0]["ops"]] == ["ppkt", "upkt"]
    assert verify(plan).ok


def documented_plan_rules() -> set[str]:
    """The rule ids listed in the MSCCL++ section of docs/verify.md (bullets starting with rule ids)."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "verify.md").read_text()
    section = docs[docs.index("## MSCCL++ execution plans") :]
    return {
        rule
        for line in re.findall(r"^\* (`.*?) —", section, flags=re.MULTILINE)
        for rule in re.findall(r"`([a-z-]+)`", line)
    }


def test_every_plan_rule_is_documented() -> None:
    """The rule ids the plan reader and verifier emit are exactly those docs/verify.md lists in its
    MSCCL++ section."""
    root = Path(__file__).resolve().parents[2] / "src" / "collc" / "mscclpp"
    source = "".join((root / name).read_text() for name in ("reader.py", "verify.py"))
    emitted = set(re.findall(r'(?:self\.add|self\.fail|PlanSyntaxError)\(\s*"([a-z-]+)"', source))
    emitted |= {f"unknown-{what.replace(' ', '-')}" for what in ("op", "buffer type", "channel type")}
    assert emitted == documented_plan_rules()


def test_packets_live_in_scratch() -> None:
    """The packet handlers read and write packets at scratch offsets whatever the buffer type says."""
    plan = load("allreduce_2gpu_packets.json")
    plan["gpus"][1]["threadblocks"][0]["ops"][1]["src_buff"][0]["type"] = "i"  # upkt from the input
    report = verify(plan)
    assert report.rules() == {"op-buffers"}
    assert "upkt handles this operand as packets" in report.errors[0].message


def test_offsets_limit_the_largest_call_and_the_notes_say_which_calls_run() -> None:
    """LL scratch holds data and flags: two scratch chunks per input chunk of the packet allreduce make
    its scratch twice its input, so 2^31 - 1 bytes is its largest call within 32-bit offsets."""
    plan = load("allreduce_2gpu_packets.json")
    plan["max_message_size"] = 2**31 - 1
    report = verify(plan)
    assert report.ok and not report.problems
    assert "calls of a multiple of 32 bytes (buffer_alignment 16 × 2 chunks)" in report.notes[0]
    plan["max_message_size"] = 2**31
    (warning,) = verify(plan).problems
    assert warning.rule == "offset-limit" and warning.hint == "set max_message_size to at most 2147483647"


def test_an_operand_that_names_no_buffer_is_reported() -> None:
    plan = load("allgather_2gpu_memory.json")
    plan["gpus"][1]["threadblocks"][0]["ops"][2]["dst_buff"][0]["buffer_id"] = 3
    report = verify(plan)
    assert report.rules() == {"remote-buffer-index"}
    assert report.errors[0].message.startswith("gpus[1].threadblocks[0].ops[2].dst_buff[0]: buffer_id 3")


def test_a_plan_without_ranks_or_threadblocks_is_not_accepted() -> None:
    assert verify({**load("allgather_2gpu_memory.json"), "gpus": []}).rules() == {"plan-range"}
    plan = load("allgather_2gpu_memory.json")
    plan["gpus"][1]["threadblocks"] = []
    report = verify(plan)
    assert "plan-range" in report.rules() and not report.ok


def _copy_in_another_threadblock(barrier: bool) -> dict:
    """allgather on 2 ranks where threadblock 1 copies the input into the output and threadblock 0
    sends it, meeting at barrier 0 (or not meeting at all)."""
    plan = load("allgather_2gpu_memory.json")
    meet = {"name": "barrier", "barrier_id": 0, "num_threadblocks": 2}
    for gpu in plan["gpus"]:
        tb0 = gpu["threadblocks"][0]
        copy_op = tb0["ops"].pop(0)
        tb0["ops"].pop(0)  # its nop
        if barrier:
            tb0["ops"].insert(0, dict(meet))
        ops = [copy_op, dict(meet)] if barrier else [copy_op]
        gpu["threadblocks"].append({"id": 1, "ops": ops, "channels": [], "remote_buffer_refs": []})
    return plan


def test_a_barrier_orders_the_threadblocks_of_a_rank() -> None:
    assert verify(_copy_in_another_threadblock(barrier=True)).ok
    report = verify(_copy_in_another_threadblock(barrier=False))
    races = [problem.message for problem in report.errors if problem.rule == "race"]
    assert any(
        "the write by gpus[0].threadblocks[1].ops[0] (copy) and the read by gpus[0].threadblocks[0].ops[0]"
        in m
        for m in races
    ), races


def _relay(nop: bool) -> dict:
    """Rank 0 puts into rank 2's output and tells rank 1; rank 1 waits on one channel and passes the
    word on with a signal on two (back to rank 0, on to rank 2), with or without a nop between."""

    def gpu(rank: int, peers: list[int], ops: list[dict], remote: list[dict]) -> dict:
        channels = list(range(len(peers)))
        return {
            "id": rank,
            "input_chunks": 1,
            "output_chunks": 1,
            "scratch_chunks": 0,
            "channels": [{"channel_type": "memory", "connected_to": peers}],
            "remote_buffers": remote,
            "threadblocks": [
                {
                    "id": 0,
                    "ops": ops,
                    "channels": [{"channel_type": "memory", "channel_ids": channels}],
                    "remote_buffer_refs": [{"access_channel_type": "memory", "remote_buffer_ids": [0]}]
                    if remote
                    else [],
                }
            ],
        }

    def sync(name: str, ids: list[int]) -> dict:
        return {"name": name, "channel_ids": ids, "channel_type": "memory"}

    put = {
        "name": "put",
        "src_buff": [{"type": "i", "index": 0, "size": 1}],
        "dst_buff": [{"buffer_id": 0, "index": 0, "size": 1}],
        "channel_type": "memory",
    }
    relay = [sync("wait", [0]), *([{"name": "nop"}] if nop else []), sync("signal", [0, 1])]
    return {
        "name": "relay",
        "collective": "sendrecv",
        "protocol": "Simple",
        "inplace": False,
        "max_message_size": 1 << 30,
        "gpus": [
            gpu(
                0,
                [1],
                [put, {"name": "nop"}, sync("signal", [0]), sync("wait", [0])],
                [{"rank": 2, "type": "o", "access_channel_types": ["memory"]}],
            ),
            gpu(1, [0, 2], relay, []),
            gpu(2, [1], [sync("wait", [0])], []),
        ],
    }


def test_only_the_threads_that_waited_pass_on_what_they_learnt() -> None:
    """The wait runs on thread 0, the signal's second channel on thread 1, which did not wait."""
    assert verify(_relay(nop=True)).ok
    report = verify(_relay(nop=False))
    assert report.rules() == {"unawaited-write"}
    assert report.errors[0].message.startswith("gpus[0].threadblocks[0].ops[0] (put) writes o[0] of rank 2")


def test_a_plan_takes_the_calls_of_its_range_and_step_only() -> None:
    """What `collc simulate` counts as the sizes a plan takes: a multiple of buffer_alignment x chunks
    between min_message_size and max_message_size (the table's other sizes run the runtime's own)."""
    import dataclasses

    from collc.mscclpp.reader import read_plan
    from collc.mscclpp.verify import takes_call

    plan = read_plan((FIXTURES / "allreduce_2gpu_memory.json").read_text())
    step = plan.buffer_alignment * plan.gpus[0].input_chunks
    assert [takes_call(plan, n) for n in (step, 3 * step, step + 1, 2**30, 2**30 + step)] == [
        True,
        True,
        False,
        True,
        False,
    ]
    narrow = dataclasses.replace(plan, min_message_size=2**20, max_message_size=2**20 - 1)
    assert not any(takes_call(narrow, n) for n in (2**20 - step, 2**20, 2**20 + step))
