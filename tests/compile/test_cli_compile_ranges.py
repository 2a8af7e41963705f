import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main


def test_compile_bundle_writes_a_directory_and_notes_next_to_it(tmp_path: Path) -> None:
    """With --json, stdout is one document: the manifest, the buffer, and the paths written."""
    out = tmp_path / "msccl-algorithms"
    result = CliRunner().invoke(main, ["compile", "dgx-a100", "--bundle", str(out), "--json"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names and all(name.endswith(".xml") for name in names)
    assert {name.split("-")[1] for name in names} == {"allreduce", "allgather", "reducescatter"}
    manifest = json.loads((tmp_path / "msccl-algorithms.manifest.json").read_text())
    assert [entry["name"] for entry in manifest["files"]] == names
    report = json.loads(result.stdout)
    buffsize = report["buffsize"]  # what the deploy notes set, where not the default
    assert {env.get("NCCL_BUFFSIZE") for env in manifest["env"].values()} == {buffsize and str(buffsize)}
    assert report == {
        **manifest,
        "buffsize": buffsize,
        "left_to_runtime": [],
        "deploy_notes": str(tmp_path / "msccl-algorithms.deploy.md"),
        "manifest": str(tmp_path / "msccl-algorithms.manifest.json"),
        **{"error": None, "hint": None, "location": None, "exit_code": 0},  # written, no error
    }
    # the deploy notes and the manifest predict what nccl-tests should report with the bundle: what
    # `collc simulate TOPO DIR` prints for the same calls
    notes = Path(report["deploy_notes"]).read_text()
    assert "`all_reduce_perf -b 1M -e 1G -f 4 -g 1`" in notes and "## Predicted" in notes
    predicted = manifest["predicted"]
    assert set(predicted) == {"allreduce", "allgather", "reducescatter"}
    sizes = ",".join(str(row["bytes"]) for row in predicted["allgather"])
    alone = CliRunner().invoke(main, ["simulate", "dgx-a100", str(out), "--sizes", sizes, "--json"])
    assert json.loads(alone.stdout)["collectives"] == predicted
    assert all(row["file"] for row in predicted["allreduce"])  # 1x8 A100: a file wins 1 MiB-1 GiB


def test_compile_needs_exactly_one_of_output_and_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["compile", "dgx-a100"])
    assert result.exit_code == 2 and "--bundle" in result.output
    result = CliRunner().invoke(
        main, ["compile", "dgx-a100", "-o", str(tmp_path / "x.xml"), "--bundle", str(tmp_path / "d")]
    )
    assert result.exit_code == 2


LINE3 = str(Path(__file__).parents[1] / "lowering" / "fixtures" / "line3.yaml")


def test_a_bundle_for_one_collective_with_coll(tmp_path: Path) -> None:
    """--coll given: only that collective. On 3 GPUs each protocol's file serves other sizes near the
    grid's (4104, 4128 bytes for 4 KiB); its ranges still follow the grid, one per file. One Simple
    file: the fastest candidates at 1 GiB and 64 MiB gain less over compile's pick than a file costs
    (they took 64 GiB and 128 GiB up, within a hundredth of a per cent of it)."""
    out = tmp_path / "algos"
    result = CliRunner().invoke(
        main, ["compile", LINE3, "--coll", "allgather", "--bundle", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert {entry["coll"] for entry in files} == {"allgather"}
    primary = [entry["proto"] for entry in files if entry["role"] == "primary"]
    assert sorted(primary) == ["LL", "LL128", "Simple"]
    (simple,) = [entry for entry in files if entry["proto"] == "Simple"]
    assert simple["name"].endswith("-simple-primary.xml") and simple["max_bytes"] == 0
    assert {entry["chosen_at_bytes"] for entry in files} == {1 << 30}


@pytest.mark.parametrize("flag", [["--proto", "LL"], ["--min-bytes", "1MiB"], ["--max-bytes", "0"]])
def test_a_bundle_refuses_flags_it_would_ignore(tmp_path: Path, flag: list[str]) -> None:
    out = tmp_path / "algos"
    result = CliRunner().invoke(main, ["compile", LINE3, "--bundle", str(out), *flag])
    assert result.exit_code == 2
    assert f"{flag[0]} does not apply to --bundle" in result.output and not out.exists()
