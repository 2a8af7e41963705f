"""`collc.mscclpp.reader`: the v0.10.x parser's rules with located messages, and hostile input bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collc.errors import InputError
from collc.input_limits import MAX_PLAN_BYTES
from collc.mscclpp.reader import PlanSyntaxError, looks_like_plan, read_plan, render_path
from collc.mscclpp.verify import verify_plan_text

FIXTURE = Path(__file__).parent.parent / "fixtures" / "mscclpp" / "allgather_4gpu_port.json"


def document() -> dict:
    return json.loads(FIXTURE.read_text())


def fail(doc: dict | str) -> PlanSyntaxError:
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=1)
    with pytest.raises(PlanSyntaxError) as caught:
        read_plan(text, "p.json")
    return caught.value


def test_reads_the_fixture_into_the_model() -> None:
    plan = read_plan(FIXTURE.read_text(), FIXTURE.name)
    assert (plan.collective, plan.protocol, plan.inplace, len(plan.gpus)) == ("allgather", "Simple", False, 4)
    gpu = plan.gpus[2]
    assert gpu.channels[0].peers == (0, 1, 3)
    assert [b.rank for b in gpu.remote_buffers] == [0, 1, 3]
    tb = gpu.threadblocks[0]
    assert tb.channels == {"port": (0, 1, 2)} and tb.remote_buffers == {"port": (0, 1, 2)}
    pws = tb.ops[2]
    assert pws.name == "pws" and pws.channel_ids == (0, 1, 2) and [d.buffer_id for d in pws.dst] == [0, 1, 2]
    assert pws.path == ("gpus", 2, "threadblocks", 0, "ops", 2)
    assert plan.max_message_size == 1 << 30 and plan.buffer_alignment == 16


def test_optional_fields_take_the_executors_defaults() -> None:
    doc = document()
    for key in ("reuse_resources", "num_threads_per_block", "use_double_scratch_buffer", "buffer_alignment"):
        del doc[key]
    del doc["min_message_size"], doc["max_message_size"]
    plan = read_plan(json.dumps(doc))
    assert (plan.threads_per_block, plan.buffer_alignment, plan.min_message_size) == (1024, 16, 0)
    assert plan.max_message_size == 2**64 - 1


def test_unknown_op_is_located_at_its_op_with_the_closest_name() -> None:
    doc = document()
    doc["gpus"][1]["threadblocks"][0]["ops"][2]["name"] = "pwss"
    text = json.dumps(doc, indent=1)
    error = fail(text)
    assert error.rule == "unknown-op"
    assert error.message.startswith("gpus[1].threadblocks[0].ops[2].name: unknown op 'pwss'")
    assert "did you mean 'pws'" in (error.hint or "")
    line = text.splitlines()[error.location.line - 1]
    assert error.location.file == "p.json" and line.strip() == "{"
    assert '"name": "pwss"' in "\n".join(text.splitlines()[error.location.line - 1 :][:12])


def test_missing_required_field_suggests_the_plans_spelling() -> None:
    doc = document()
    doc["gpus"][3]["input_chunk"] = doc["gpus"][3].pop("input_chunks")
    error = fail(doc)
    assert error.rule == "missing-field" and error.message.startswith("gpus[3].input_chunks: required field")
    assert "'input_chunk'" in (error.hint or "")


@pytest.mark.parametrize(
    ("change", "rule", "where"),
    [
        (lambda d: d.update(inplace="yes"), "plan-type", "inplace: expected true or false"),
        (lambda d: d["gpus"][0].update(id=-1), "plan-range", "gpus[0].id: -1 is outside"),
        (lambda d: d["gpus"][0]["remote_buffers"][1].update(type="x"), "unknown-buffer-type", "type"),
        (lambda d: d["gpus"][0]["channels"][0].update(channel_type="nvlink"), "unknown-channel-type", "type"),
        (lambda d: d.update(gpus={}), "plan-type", "gpus: expected a list"),
        (
            lambda d: d["gpus"][0]["threadblocks"][0]["ops"][3].update(channel_ids=[0, True]),
            "plan-type",
            "[1]",
        ),
    ],
)
def test_wrong_values_are_named_by_path(change, rule: str, where: str) -> None:
    doc = document()
    change(doc)
    error = fail(doc)
    assert error.rule == rule and where in error.message, error.message


def test_malformed_json_is_located() -> None:
    error = fail('{\n  "name": "x",\n  "gpus": [1,\n}')
    assert error.rule == "json" and (error.location.line, error.location.column) == (4, 1)


def test_duplicate_keys_are_refused() -> None:
    error = fail('{"name": "a", "name": "b"}')
    assert error.rule == "json" and "'name' appears twice" in error.message


def where(error: InputError) -> tuple[int | None, int | None]:
    return error.location.line, error.location.column


def test_refusals_of_the_json_itself_name_the_line_and_column() -> None:
    """The object that names a field twice or holds half a surrogate pair, the integer too long to
    read, the value that nests too deep: each located (they named only the file)."""
    assert where(fail('{"name": "a",\n "gpus": [{"id": 0},\n   {"id": 1, "id": 2}]}')) == (3, 4)
    assert where(fail('{"name": "a",\n "gpus": [{"id": "x\\ud800"}]}')) == (2, 11)
    assert where(fail('{"name": "a",\n "gpus": [7, ' + "9" * 400 + "]}")) == (2, 14)
    assert where(fail('{"name": "a",\n "gpus": ' + "[" * 70 + "]" * 70 + "}")) == (2, 73)


def test_half_a_surrogate_pair_is_refused_as_the_executors_json_library_does() -> None:
    error = fail('{"name": "x\\ud800y"}')
    assert error.rule == "json" and "'name' holds half of a UTF-16 surrogate pair" in error.message
    error = fail('{"n\\udc00": 1}')  # in a field name too
    assert error.rule == "json" and "surrogate" in error.message
    whole = fail('{"name": "\\ud83d\\ude00"}')  # both halves: a character; the plan fails later
    assert "surrogate" not in whole.message


def test_input_beyond_the_limits_is_an_input_error_not_a_verdict() -> None:
    with pytest.raises(InputError, match="collc reads plans of at most"):
        verify_plan_text(" " * (MAX_PLAN_BYTES + 1), "big.json")
    with pytest.raises(InputError, match="nests too deeply"):
        read_plan("[" * 100_000 + "]" * 100_000)
    doc = document()
    doc["gpus"][0]["junk"] = json.loads("[" * 100 + "]" * 100)  # read by C, too deep to locate in Python
    with pytest.raises(InputError, match="nests deeper than 64 levels") as deep:
        verify_plan_text(json.dumps(doc), "deep.json")
    assert deep.value.location.line == 1 and deep.value.location.column is not None


def test_a_verdict_for_parser_rule_violations() -> None:
    report = verify_plan_text('{"name": "x"}', "x.json")
    assert not report.ok and report.rules() == {"missing-field"}


def test_a_byte_order_mark_is_skipped_like_the_executor_does() -> None:
    text = "\ufeff" + json.dumps(document(), indent=1).replace('"pws"', '"pwss"')
    assert looks_like_plan(text)
    error = fail(text)
    assert error.rule == "unknown-op" and error.location.line is not None


def test_render_path_and_plan_detection() -> None:
    assert (
        render_path(("gpus", 3, "threadblocks", 2, "ops", 5, "name")) == "gpus[3].threadblocks[2].ops[5].name"
    )
    assert render_path(()) == "the plan"
    assert looks_like_plan('\n  {"gpus": []}') and not looks_like_plan('<algo name="x">')


def test_a_pipeline_too_long_to_simulate_is_refused_before_the_work() -> None:
    doc = document()
    tb = doc["gpus"][0]["threadblocks"][0]
    wait = tb["ops"].pop(3)
    tb["ops"].insert(
        3, {"name": "pipeline", "iter_context": {"unit_size": 16, "num_chunks": 2**30}, "ops": [wait]}
    )
    with pytest.raises(InputError, match="op executions to simulate"):
        verify_plan_text(json.dumps(doc), "long.json")
