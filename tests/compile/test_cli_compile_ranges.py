import json
from pathlib import Path

from click.testing import CliRunner

from collc.cli import main


def test_compile_bundle_writes_a_directory_and_notes_next_to_it(tmp_path: Path) -> None:
    out = tmp_path / "msccl-algorithms"
    result = CliRunner().invoke(main, ["compile", "dgx-a100", "--bundle", str(out)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names and all(name.endswith(".xml") for name in names)
    assert {name.split("-")[1] for name in names} == {"allreduce", "allgather", "reducescatter"}
    manifest = json.loads((tmp_path / "msccl-algorithms.manifest.json").read_text())
    assert [entry["name"] for entry in manifest["files"]] == names
    assert (tmp_path / "msccl-algorithms.deploy.md").exists()


def test_compile_needs_exactly_one_of_output_and_bundle(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["compile", "dgx-a100"])
    assert result.exit_code == 2 and "--bundle" in result.output
    result = CliRunner().invoke(
        main, ["compile", "dgx-a100", "-o", str(tmp_path / "x.xml"), "--bundle", str(tmp_path / "d")]
    )
    assert result.exit_code == 2
