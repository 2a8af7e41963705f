"""`collc verify PLAN.json` through click: plans go to the MSCCL++ verifier, next to XML files."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from collc.cli import main

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mscclpp"


def run(*args: str):
    return CliRunner().invoke(main, ["verify", *args])


def test_valid_plan_exits_zero() -> None:
    result = run(str(FIXTURES / "allreduce_2gpu_memory.json"))
    assert result.exit_code == 0, result.output
    assert ": ok (0 error(s), 0 warning(s); runtime MSCCL++ v0.10.x)" in result.output
    assert "note: simulated allreduce, in-place, 2 rank(s)" in result.output


def test_invalid_plan_exits_one_with_location_rule_and_fix() -> None:
    path = str(FIXTURES / "bad_missing_nop.json")
    result = run(path)
    assert result.exit_code == 1
    assert f"{path}:78:7: error: gpus[0].threadblocks[0].ops[3] (signal) follows" in result.output
    assert (
        "[missing-sync]" in result.output and 'fix: insert {"name": "nop"} before the signal' in result.output
    )


def test_json_output_for_a_directory_of_plans(tmp_path: Path) -> None:
    for name in ("allgather_2gpu_memory.json", "bad_reduction.json"):
        (tmp_path / name).write_text((FIXTURES / name).read_text())
    result = run("--json", str(tmp_path))
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert [f["ok"] for f in document["files"]] == [True, False]
    assert {p["rule"] for p in document["files"][1]["problems"]} == {"postcondition"}


def test_explain_notes_that_it_covers_xml_only() -> None:
    result = run("--explain", "--bytes", "1MiB", str(FIXTURES / "allgather_2gpu_memory.json"))
    assert result.exit_code == 0
    assert "selection not explained: --explain covers MSCCL XML files" in result.output


def test_oversized_plan_exits_two(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("collc.mscclpp.reader.MAX_PLAN_BYTES", 10)
    path = tmp_path / "plan.json"
    path.write_text((FIXTURES / "allgather_2gpu_memory.json").read_text())
    result = run(str(path))
    assert result.exit_code == 2 and "collc reads plans of at most 10" in result.output
    assert "Traceback" not in result.output


def test_a_plan_with_more_threadblocks_per_gpu_than_the_limit_exits_two_at_once(tmp_path: Path) -> None:
    """13,000 threadblocks per GPU took the verifier past 90 s and 15 GB; the limit refuses them where
    they are listed."""
    plan = json.loads((FIXTURES / "allgather_2gpu_memory.json").read_text())
    blocks = plan["gpus"][0]["threadblocks"]
    plan["gpus"][0]["threadblocks"] = [dict(blocks[0], id=i) for i in range(1025)]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan, indent=1))
    result = run(str(path))
    assert result.exit_code == 2, result.output
    assert "gpus[0].threadblocks: 1,025 threadblocks on one GPU; collc reads at most 1,024" in result.output
    assert f"{path}:" in result.output


def test_options_meant_for_xml_are_checked_or_named_for_a_plan(tmp_path: Path) -> None:
    """--topology checks a plan's rank count as it does an XML file's; --runtime, which a plan does
    not take, is named in a note instead of passing silently; an XML file checked for runtime mscclpp
    is told that MSCCL++ runs plans."""
    plan = str(FIXTURES / "allreduce_2gpu_memory.json")
    wrong = run("--topology", "dgx-a100", plan)
    assert wrong.exit_code == 1
    assert "the plan is for 2 ranks but topology dgx-a100 has 8 GPUs [topology-ngpus]" in wrong.output
    noted = run("--runtime", "rccl", plan)
    assert noted.exit_code == 0, noted.output
    assert "note: --runtime rccl does not apply: plans run on the MSCCL++ executor" in noted.output
    xml = Path(__file__).parents[1] / "verify" / "fixtures" / "valid" / "ring_allgather_4.xml"
    translated = run("--runtime", "mscclpp", str(xml))
    assert "note: runtime mscclpp: MSCCL++ runs execution plans (JSON)" in translated.output


def test_a_json_file_that_is_no_plan_is_said_to_be_neither(tmp_path: Path) -> None:
    """A JSON array (or an empty .json file) is not a plan, whose first character is '{': it is read
    as MSCCL XML, which the report says, so the XML parser's complaint is not the only clue."""
    for name, text in (("array.json", "[1, 2]\n"), ("empty.json", "")):
        path = tmp_path / name
        path.write_text(text)
        result = run(str(path))
        assert result.exit_code == 1, result.output
        assert "note: read as MSCCL XML: an MSCCL++ plan is one JSON object" in result.output


def test_a_gpu_id_out_of_range_is_one_error_not_a_cascade(tmp_path: Path) -> None:
    """gpus[1] with id 7 in a 2-rank plan: the executor throws 'GPU rank does not match', and that is
    the one error; its ops' local buffers were each reported as naming no buffer as well."""
    plan = json.loads((FIXTURES / "allreduce_2gpu_memory.json").read_text())
    plan["gpus"][1]["id"] = 7
    path = tmp_path / "gpuid.json"
    path.write_text(json.dumps(plan, indent=2))
    result = run(str(path))
    assert result.exit_code == 1
    assert "[gpu-id]" in result.output and "[op-buffers]" not in result.output
    assert "INVALID (1 error(s)" in result.output
