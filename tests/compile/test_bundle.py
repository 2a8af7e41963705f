import itertools
import json
from dataclasses import replace
from pathlib import Path

import pytest

from collc.compile.bundle import (
    SizeRange,
    bundle_files,
    check_disjoint,
    compile_bundle,
    write_bundle,
)
from collc.compile.outlook import grid, outlook
from collc.errors import InputError, InvariantError
from collc.fileio import TEMP_SUFFIX
from collc.msccl.writer import to_xml
from collc.predict.params import PROTOCOLS
from predict.models import model
from predict.test_des import star_allgather

SIMPLE = PROTOCOLS["Simple"]


def test_check_disjoint_refuses_overlapping_ranges_of_one_collective() -> None:
    with pytest.raises(InvariantError):
        check_disjoint([SizeRange("allreduce", "LL", 0, 100), SizeRange("allreduce", "Simple", 100, 0)])
    check_disjoint([SizeRange("allreduce", "LL", 0, 99), SizeRange("allgather", "Simple", 50, 0)])


RANGES = [SizeRange("allgather", "LL", 4096, 2**20), SizeRange("allgather", "Simple", 2**22, 0)]


def _compile(size_range: SizeRange, fallback: bool):
    """A stand-in compiler: the star allgather on 8 GPUs, 1 chunk per GPU (fallback) or 4 (optimal)."""
    algo = star_allgather(8)
    chunks = 8 if fallback else 32
    return replace(
        algo,
        proto=size_range.proto,
        min_bytes=size_range.min_bytes,
        max_bytes=size_range.max_bytes,
        nchunksperloop=chunks,
        name=f"star-{chunks}",
    )


def test_bundle_directory_holds_only_algorithms_in_priority_order(tmp_path: Path) -> None:
    ranges = RANGES
    files = bundle_files(ranges, _compile, to_xml)
    assert [f.role for f in files] == ["optimal", "fallback"] * len(ranges)
    out = tmp_path / "algos"
    written = write_bundle(out, files, "dgx-a100", 8)
    names = sorted(p.name for p in out.iterdir())
    assert names == [f.name for f in files]  # sorted order = priority order
    assert all(name.endswith(".xml") for name in names)
    assert (tmp_path / "algos.deploy.md") in written and (tmp_path / "algos.manifest.json") in written
    manifest = json.loads((tmp_path / "algos.manifest.json").read_text())
    assert [f["name"] for f in manifest["files"]] == names
    assert manifest["env"]["rccl"]["RCCL_MSCCL_FORCE_ENABLE"] == "1"
    notes = (tmp_path / "algos.deploy.md").read_text()
    assert "MSCCL_ALGO_DIR=/path/to/algos" in notes and "readdir" in notes
    first = (out / names[0]).read_text()
    assert f'minBytes="{ranges[0].min_bytes}"' in first and 'proto="LL"' in first


def test_bundle_refuses_a_directory_with_other_files(tmp_path: Path) -> None:
    out = tmp_path / "algos"
    out.mkdir()
    (out / "README").write_text("hello")
    files = bundle_files(RANGES, _compile, to_xml)
    with pytest.raises(InputError, match="README"):
        write_bundle(out, files, "dgx-a100", 8)


def test_a_program_for_the_wrong_range_is_a_bug() -> None:
    ranges = RANGES
    with pytest.raises(InvariantError):
        bundle_files(ranges, lambda r, fallback: replace(_compile(r, fallback), min_bytes=7), to_xml)


def test_compile_bundle_writes_verified_files(tmp_path: Path) -> None:
    from collc.compile.driver import CompileOptions
    from collc.msccl.reader import read_xml
    from collc.verify import verify

    m = model("dgx-a100", 1)
    lines = compile_bundle(m.topology, CompileOptions(), tmp_path / "algos", collectives=("allgather",))
    names = sorted(p.name for p in (tmp_path / "algos").iterdir())
    assert names[0].startswith("00-allgather-") and len(names) >= 2
    assert any(line.endswith("algos.deploy.md") for line in lines)
    manifest = json.loads((tmp_path / "algos.manifest.json").read_text())["files"]
    assert manifest[0]["role"] == "optimal"
    for before, entry in itertools.pairwise(manifest):  # a fallback follows its optimal, with fewer chunks
        if entry["role"] == "fallback":
            assert before["role"] == "optimal" and entry["nchunksperloop"] < before["nchunksperloop"]
    for name in names:
        algo = read_xml((tmp_path / "algos" / name).read_text(), name)
        assert verify(algo, runtime="msccl-executor", topology=m.topology).ok, name
        # every file is selected only where its simulation beats the runtime's best
        rows = outlook(m, algo, grid(), "msccl-executor")
        assert [row.nbytes for row in rows if row.selected and not row.wins] == [], name


def test_bundle_notes_are_not_replaced_without_force_and_stale_temporaries_are_ignored(
    tmp_path: Path,
) -> None:
    files = bundle_files(RANGES, _compile, to_xml)
    out = tmp_path / "algos"
    write_bundle(out, files, "dgx-a100", 8)
    notes = tmp_path / "algos.deploy.md"
    notes.write_text("my edits")
    with pytest.raises(InputError, match="already exist"):
        write_bundle(out, files, "dgx-a100", 8)
    assert notes.read_text() == "my edits"
    (out / f".00-x.xml.999999999.deadbeef{TEMP_SUFFIX}").write_text("left by a killed writer")  # no such pid
    write_bundle(out, files, "dgx-a100", 8, force=True)
    assert notes.read_text() != "my edits"
    assert sorted(p.name for p in out.iterdir()) == [f.name for f in files]
