import itertools
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from collc.compile.bundle import (
    FILE_COST,
    PLAN_SIZES,
    BundleResult,
    FileKind,
    SizeRange,
    _simple_files,
    bundle_files,
    bundle_gain,
    check_disjoint,
    compile_bundle,
    on_grid,
    uncovered,
    write_bundle,
)
from collc.compile.driver import REFERENCE_BYTES
from collc.compile.outlook import SizeOutlook, grid, outlook
from collc.errors import InputError, InvariantError
from collc.fileio import TEMP_SUFFIX
from collc.msccl.writer import to_xml
from collc.predict.model import TopologyModel
from collc.predict.params import DEFAULT_BUFFER_BYTES, PROTOCOLS
from collc.predict.params import simple as simple_protocol
from predict.models import model
from predict.test_des import star_allgather

SIMPLE = PROTOCOLS["Simple"]


def test_check_disjoint_refuses_overlapping_ranges_of_one_collective() -> None:
    with pytest.raises(InvariantError):
        check_disjoint([SizeRange("allreduce", "LL", 0, 100), SizeRange("allreduce", "Simple", 100, 0)])
    check_disjoint([SizeRange("allreduce", "LL", 0, 99), SizeRange("allgather", "Simple", 50, 0)])


RANGES = [SizeRange("allgather", "LL", 4096, 2**20), SizeRange("allgather", "Simple", 2**22, 0)]


def _compile(size_range: SizeRange, fallback: bool):
    """A stand-in compiler: the star allgather on 8 GPUs, 1 chunk per GPU (fallback) or 4 (primary)."""
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
    assert [f.role for f in files] == ["primary", "fallback"] * len(ranges)
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


def _asked_ranges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Records the protocol and size range of every compile a bundle asks for."""
    import collc.compile.bundle as bundle_module

    asked: list[tuple[str, int, int]] = []
    compile_schedule = bundle_module.compile_schedule

    def recorded(topology, options, progress):
        asked.append((options.proto, options.min_bytes, options.max_bytes))
        return compile_schedule(topology, options, progress)

    monkeypatch.setattr(bundle_module, "compile_schedule", recorded)
    return asked


def test_compile_bundle_writes_verified_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collc.compile.driver import CompileOptions
    from collc.msccl.reader import read_xml
    from collc.verify import verify

    m = model("dgx-a100", 1)
    asked = _asked_ranges(monkeypatch)
    lines = compile_bundle(
        m.topology, CompileOptions(), tmp_path / "algos", collectives=("allgather",)
    ).lines()
    # compile's pick is the fastest at 1 GiB, so that compile is not asked for again; 64 MiB is
    assert ("Simple", REFERENCE_BYTES, REFERENCE_BYTES) not in asked
    assert ("Simple", REFERENCE_BYTES // 16, REFERENCE_BYTES // 16) in asked
    names = sorted(p.name for p in (tmp_path / "algos").iterdir())
    assert names[0].startswith("00-allgather-") and len(names) >= 2
    assert any(line.endswith("algos.deploy.md") for line in lines)
    manifest = json.loads((tmp_path / "algos.manifest.json").read_text())["files"]
    assert manifest[0]["role"] == "primary"
    for before, entry in itertools.pairwise(manifest):  # a fallback follows its primary, with fewer chunks
        if entry["role"] == "fallback":
            assert before["role"] == "primary" and entry["nchunksperloop"] < before["nchunksperloop"]
    algos = [read_xml((tmp_path / "algos" / name).read_text(), name) for name in names]
    for name, algo in zip(names, algos, strict=True):
        assert verify(algo, runtime="msccl-executor", topology=m.topology).ok, name
        # every file is selected only where its simulation beats the runtime's best
        rows = outlook(m, algo, grid(), "msccl-executor")
        assert [row.nbytes for row in rows if row.selected and not row.wins] == [], name

    # every power of two is decided: where no file's range takes it, no file of the bundle would win
    # there (on compile's powers-of-four grid, 128 KiB and 8 MiB fell between two files' ranges)
    def planned(algo):  # one row per planned size
        return on_grid(algo, outlook(m, algo, PLAN_SIZES, "msccl-executor"), PLAN_SIZES)

    taken = [planned(algo) for algo in algos]
    opened = [planned(replace(algo, min_bytes=0, max_bytes=0)) for algo in algos]
    for index in range(len(PLAN_SIZES)):
        if not any(rows[index].selected for rows in taken):
            assert not any(rows[index].wins for rows in opened), PLAN_SIZES[index]


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


def _row(nbytes: int, algbw: float | None, vendor: float) -> SizeOutlook:
    return SizeOutlook(nbytes, algbw, algbw, vendor, None, 2 * vendor, True)


def test_bundle_gain_sums_the_log_gain_of_the_file_kept_at_each_size() -> None:
    outlooks = {
        "LL": [_row(1, 30.0, 10.0), _row(2, 5.0, 10.0), _row(3, None, 10.0)],
        "Simple": [_row(1, 20.0, 10.0), _row(2, 8.0, 10.0), _row(3, 40.0, 10.0)],
    }
    # size 1: LL's 3x (the faster winner); size 2: no file wins; size 3: Simple's 4x; two files used
    assert bundle_gain(outlooks) == pytest.approx(math.log(3) + math.log(4) - 2 * FILE_COST)
    assert bundle_gain({"LL": [_row(1, 9.0, 10.0)]}) == 0.0


@dataclass(frozen=True)
class _Stub:
    """What :func:`_simple_files` reads of a compile result: its buffer and (through the stub
    outlook) how fast it is."""

    coll: str
    buffer_bytes: int | None
    algbw: float


def _choose(choices, speed: dict[tuple[str, int | None], float], others=None):
    """_simple_files over stub compiles: ``speed[(coll, buffer)]`` is the Simple file's algbw at one
    grid point, where the runtime gets 10; ``others`` are the other protocols' files."""
    results = dict(others or {})
    asked = []

    def compiled(coll, proto, fallback, buffsize):
        assert proto == "Simple" and not fallback
        buffer = None if buffsize == DEFAULT_BUFFER_BYTES else buffsize
        asked.append((coll, buffer))
        return _Stub(coll, buffer, speed[(coll, buffer)])

    colls = sorted({coll for coll, _ in speed})
    chosen = _simple_files(results, colls, choices, compiled, lambda r: [_row(1, r.algbw, 10.0)])
    return chosen, results, asked


def test_a_bundle_compiles_every_simple_file_for_one_buffer() -> None:
    small = 256 << 10
    # 256 KiB delivers more in all (30 x 15 against 12 x 20): every Simple file is for it
    speed = {("allreduce", None): 12.0, ("allreduce", small): 30.0}
    speed |= {("allgather", None): 20.0, ("allgather", small): 15.0}
    chosen, results, asked = _choose((None, small), speed)
    assert chosen == small and set(asked) == set(speed) and len(asked) == len(speed)
    assert {key: r.buffer_bytes for key, r in results.items()} == {
        ("allreduce", FileKind("Simple")): small,
        ("allgather", FileKind("Simple")): small,
    }
    # a gain under BUFFER_GAIN (2 %) keeps the earlier choice, the default (nothing to set)
    speed[("allreduce", None)] = 22.2  # 22.2 x 20 against 30 x 15: 1.4 % less
    chosen, results, _ = _choose((None, small), speed)
    assert chosen is None and {r.buffer_bytes for r in results.values()} == {None}
    speed[("allreduce", None)] = 21.9  # 2.7 % less: the smaller buffer is kept
    assert _choose((None, small), speed)[0] == small
    # where another protocol already wins faster at the point, a Simple file there gains nothing
    faster = {("allreduce", FileKind("LL128")): _Stub("allreduce", None, 100.0)}
    speed = {("allreduce", None): 12.0, ("allreduce", small): 30.0}
    chosen, results, _ = _choose((None, small), speed, faster)
    assert (
        chosen is None
        and results[("allreduce", FileKind("LL128"))] == faster[("allreduce", FileKind("LL128"))]
    )
    # one choice (the user's --buffsize): each collective is compiled once, for it
    chosen, _, asked = _choose((small,), speed)
    assert chosen == small and asked == [("allreduce", small)]


def test_a_bundle_deploys_the_buffer_its_simple_files_need(tmp_path: Path) -> None:
    """On 8 GPUs behind a switch with one slow port, compile picks a 256 KiB buffer for Simple
    (tests/lowering/test_compile.py); the bundle's Simple file is compiled, verified and ranged for
    it, records it, and its deploy notes and manifest set it."""
    from collc.compile.driver import CompileOptions
    from collc.msccl.reader import read_xml
    from collc.topology.presets import load
    from collc.verify import deployed_buffer, verify

    topology = load(Path(__file__).parents[1] / "lowering" / "fixtures" / "switch8-slow-port.yaml")
    bundle = compile_bundle(topology, CompileOptions(), tmp_path / "algos", collectives=("allreduce",))
    assert (
        "NCCL_BUFFSIZE=262144: the Simple files are predicted and verified with a 256KiB buffer "
        "(the deploy notes set it)"
    ) in bundle.lines()
    assert bundle.buffer_bytes == bundle.to_json()["buffsize"] == 256 << 10
    manifest = json.loads((tmp_path / "algos.manifest.json").read_text())
    assert {env["NCCL_BUFFSIZE"] for env in manifest["env"].values()} == {"262144"}
    assert "`NCCL_BUFFSIZE=262144`" in (tmp_path / "algos.deploy.md").read_text()
    simple = [entry["name"] for entry in manifest["files"] if entry["proto"] == "Simple"]
    assert simple
    # the fastest Simple candidate at 1 GiB, which is also the fastest at 64 MiB (one file), takes the
    # sizes from 4 MiB up: faster there than compile's own pick (which no range keeps), same buffer;
    # it also beats the runtime at 2 MiB, the last size of the file below, so the sizes between are its
    (only,) = [item for item in bundle.ranges if item.proto == "Simple"]
    assert only.tuned_for == REFERENCE_BYTES and only.min_bytes == (2 << 20) + 1 and only.max_bytes == 0
    assert simple == ["02-allreduce-simple-1gib-primary.xml"]
    m = TopologyModel(topology)
    for name in simple:
        algo = read_xml((tmp_path / "algos" / name).read_text(), name)
        assert deployed_buffer(algo, None) == 256 << 10, name
        assert verify(algo, runtime="msccl-executor", topology=topology, buffer_bytes=256 << 10).ok
        rows = outlook(m, algo, grid(), "msccl-executor", proto=simple_protocol(256 << 10))
        assert [row.nbytes for row in rows if row.selected and not row.wins] == [], name


def test_a_bundle_adds_the_fastest_simple_file_at_1_gib(tmp_path: Path) -> None:
    """Compile's own pick is one file for every size and prefers, within 3 % at 1 GiB, one that wins at
    1 MiB too; a bundle also holds the fastest candidate at 1 GiB. 1x16 MI250 reduce-scatter at 256
    KiB: the pick (k = 2, two instances) loses to RCCL's ring at 1 GiB (314.7 against 316.4 GB/s), and
    the bundle left every size from 8 MiB up to RCCL; the fastest (k = 8, two instances, free senders
    paced) wins there."""
    from collc.compile.driver import CompileOptions
    from collc.topology.presets import load

    options = CompileOptions(buffsize=256 << 10)
    bundle = compile_bundle(load("mi250"), options, tmp_path / "algos", collectives=("reducescatter",))
    (simple,) = [item for item in bundle.ranges if item.proto == "Simple"]
    assert simple.tuned_for == REFERENCE_BYTES and simple.max_bytes == 0
    (at_1gib,) = [row for row in bundle.manifest["predicted"]["reducescatter"] if row["bytes"] == 1 << 30]
    assert at_1gib["file"] == "03-reducescatter-simple-1gib-primary.xml"
    assert at_1gib["algbw"] == pytest.approx(324.3, abs=0.05) and at_1gib["ring_algbw"] < 316.5


def test_a_bundle_reports_each_compile_and_its_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collc.compile.driver import CompileOptions
    from collc.topology.presets import load

    asked = _asked_ranges(monkeypatch)
    heard: list[tuple[str, int, int | None]] = []
    topology = load(Path(__file__).parents[1] / "lowering" / "fixtures" / "line3.yaml")
    bundle = compile_bundle(
        topology,
        CompileOptions(),
        tmp_path / "algos",
        collectives=("allgather",),
        progress=lambda stage, done, total: heard.append((stage, done, total)),
    )
    counts = [done for stage, done, _ in heard if stage == "bundle: compiles done"]
    # LL, LL128, Simple at each buffer compile tries, and a fallback per file: counted one by one
    assert counts == list(range(len(counts))) and len(counts) >= 4 + len(bundle.ranges)
    assert any(stage.startswith("compile: ") for stage, _, _ in heard)
    # on 3 GPUs compile's pick is not the fastest allgather file at 1 GiB: that one is compiled too
    assert ("Simple", REFERENCE_BYTES, REFERENCE_BYTES) in asked


def test_the_sizes_no_range_takes_are_named_as_intervals() -> None:
    """The report says which sizes stay with the runtime: below the first range, between ranges whose
    grid sizes were not both won, and above a bounded last one. Ranges print inclusive, as the
    runtime compares them."""
    ranges = [
        SizeRange("allreduce", "LL128", 128 * 1024, 2 * 1024 * 1024),
        SizeRange("allreduce", "LL", 4096, 64 * 1024),
        SizeRange("allreduce", "Simple", 4 * 1024 * 1024, 0),
    ]
    assert ranges[1].describe() == "allreduce LL [4KiB, 64KiB]"
    assert ranges[2].describe() == "allreduce Simple [4MiB, ∞)"
    assert uncovered(ranges) == ["[0B, 4KiB)", "(64KiB, 128KiB)", "(2MiB, 4MiB)"]
    assert uncovered([SizeRange("allgather", "LL", 0, 1024)]) == ["(1KiB, ∞)"]
    assert uncovered([SizeRange("allgather", "Simple", 0, 0)]) == []


def _result(files: list, align: int | None = None) -> BundleResult:
    return BundleResult(Path("algos"), [], files, RANGES, None, [], {}, num_gpus=8, align=align)


def test_the_report_says_where_a_range_serves_no_power_of_two_count() -> None:
    """A range whose finest file (the fallback) needs counts that are multiples of 3 takes no
    power-of-two call: the report says so (it had claimed the range for collc)."""
    files = bundle_files(RANGES, _compile, to_xml)
    assert all("NOT" not in line for line in _result(files).lines())  # 8 chunks: every power of two
    odd = [replace(file, nchunksperloop=3 * 8) for file in files]  # an allgather's 24 chunks on 8 ranks
    lines = [line for line in _result(odd).lines() if "predicted at least as fast" in line]
    assert lines and all(
        line.endswith(
            "for every count that is a multiple of 3 elements -- NOT all power-of-two counts "
            "(the runtime keeps the others)"
        )
        for line in lines
    )
    assert all("NOT" not in line for line in _result(odd, align=3).lines())  # the counts asked for
