"""`collc verify` through click: exit codes, human output with locations and fixes, JSON, --explain."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.msccl.program import Threadblock
from collc.msccl.writer import to_xml
from collc.sizes import parse_size

from .corpus import allpairs_allreduce
from .fixture_source import ring_allreduce
from .programs import INVALID, VALID, ring_allgather


def run(*args: str):
    return CliRunner().invoke(main, ["verify", *args])


def path_of(name: str) -> str:
    return str(next(p for p in [*VALID, *INVALID] if p.name == name))


def test_valid_files_exit_zero() -> None:
    result = run(*map(str, VALID))
    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (0 error(s)") == len(VALID)


def test_invalid_file_exits_one_with_location_rule_and_fix() -> None:
    result = run(path_of("ring_allgather_4.xml"), path_of("chan_ge_nchannels.xml"))
    assert result.exit_code == 1
    assert f"{path_of('chan_ge_nchannels.xml')}:4: error: rank 0 tb 0: chan=1" in result.output
    assert "[chan-ge-nchannels]" in result.output and "fix: use chan < nchannels" in result.output


def test_lexical_error_exits_one_with_line_and_column() -> None:
    result = run(path_of("tabs.xml"))
    assert result.exit_code == 1
    assert (
        f"{path_of('tabs.xml')}:2:1: error: XML Parse error : expecting '<', got '\\t' [xml-tab]"
        in result.output
    )


def test_unreadable_file_exits_two(tmp_path) -> None:
    binary = tmp_path / "bad.xml"
    binary.write_bytes(b"\xff\xfe\x00")
    result = run(str(tmp_path / "missing.xml"), str(binary), path_of("ring_allgather_4.xml"))
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_runtime_option_selects_the_rules() -> None:
    assert run("--runtime", "rccl", path_of("ring_allreduce_4x2.xml")).exit_code == 1
    assert run("--runtime", "msccl-executor", path_of("ring_allreduce_4x2.xml")).exit_code == 0
    assert run("--runtime", "nccl", path_of("ring_allreduce_4x2.xml")).exit_code == 2


def test_json_output_for_ci() -> None:
    result = run("--json", path_of("cnt_mismatch.xml"), path_of("tree_allreduce_3.xml"))
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["ok"] is False
    first, second = document["files"]
    assert first["ok"] is False and second["ok"] is True
    mismatch = next(p for p in first["problems"] if p["rule"] == "cnt-mismatch")
    assert mismatch["location"]["line"] == 5 and mismatch["severity"] == "error" and mismatch["hint"]


def test_explain_selected_and_not_selected() -> None:
    ring = path_of("ring_allgather_4.xml")
    result = run(ring, "--explain", "--nranks", "4", "--bytes", "64MiB", "--dtype", "bf16")
    assert result.exit_code == 0 and "selected for this call: yes" in result.output
    result = run(ring, "--explain", "--nranks", "8", "--bytes", "6B", "--dtype", "bf16", "--inplace")
    assert result.exit_code == 1
    assert "selected for this call: no" in result.output
    assert "ngpus=4 but the communicator has 8 ranks" in result.output
    assert "in-place" in result.output
    assert "not divisible by nchunksperloop=4" not in result.output  # 6 B is not whole bf16 per rank
    assert "not a positive whole number" in result.output


def test_explain_needs_the_call_size() -> None:
    result = run(path_of("ring_allgather_4.xml"), "--explain", "--nranks", "4")
    assert result.exit_code == 2 and "--explain needs --bytes" in result.output


def test_explain_defaults_the_rank_count_to_the_files() -> None:
    result = run(path_of("ring_allgather_4.xml"), "--explain", "--bytes", "64MiB")
    assert result.exit_code == 0 and "selected for this call: yes" in result.output


@pytest.mark.parametrize("nranks", ["0", "-4"])
def test_explain_rejects_a_rank_count_below_one(nranks: str) -> None:
    result = run(path_of("ring_allgather_4.xml"), "--explain", "--nranks", nranks, "--bytes", "1MiB")
    assert result.exit_code == 2
    assert f"{nranks} is not in the range x>=1" in result.output and "Traceback" not in result.output


def test_explain_uses_the_size_model_for_one_call(tmp_path) -> None:
    """The all-pairs exchange of 8-chunk blocks: one call per block at 11 MiB, 2 chunks per call (a
    deadlock on Simple's 2-call FIFO) at 512 MiB; at 128 MiB 8 chunks per call complete, but with a
    1 MiB buffer a call carries only 2 of them."""
    path = tmp_path / "allpairs.xml"
    path.write_text(to_xml(allpairs_allreduce(), runtime="rccl"))
    small = run(str(path), "--explain", "--bytes", "11534336", "--inplace")
    assert small.exit_code == 0, small.output
    assert "71 chunk(s) per primitive call" in small.output and "hangs" not in small.output
    large = run(str(path), "--explain", "--bytes", "512MiB", "--inplace")
    assert large.exit_code == 1
    assert "2 chunk(s) per primitive call" in large.output
    assert "a call of this size hangs: a cycle of waits: rank 0 tb 8 step 0 (s)" in large.output
    default = run(str(path), "--explain", "--bytes", "128MiB", "--inplace")
    assert "8 chunk(s) per primitive call" in default.output and "hangs" not in default.output
    buffer = run(str(path), "--explain", "--bytes", "128MiB", "--inplace", "--buffsize", "1MiB")
    assert "2 chunk(s) per primitive call" in buffer.output and "a call of this size hangs" in buffer.output


def test_buffsize_below_the_slot_count_is_an_input_error() -> None:
    result = run(path_of("ring_allgather_4.xml"), "--buffsize", "4")
    assert result.exit_code == 2 and "smaller than the 8 slots" in result.output


def test_the_file_declares_its_runtime(tmp_path) -> None:
    """collc writes runtime="…" into <algo>; verify uses it unless --runtime overrides it."""
    ring = ring_allreduce(4, 2)
    for runtime, verdict in (("rccl", 1), ("msccl-executor", 0)):
        path = tmp_path / f"{runtime}.xml"
        path.write_text(to_xml(ring, runtime=runtime))
        result = run(str(path))
        assert result.exit_code == verdict and f"runtime {runtime}: declared by the file" in result.output
    assert run(str(tmp_path / "rccl.xml"), "--runtime", "msccl-executor").exit_code == 0
    unknown = tmp_path / "unknown.xml"
    unknown.write_text(to_xml(ring).replace('maxBytes="0"', 'maxBytes="0" runtime="nccl-9"'))
    result = run(str(unknown))
    assert result.exit_code == 0 and 'declares runtime="nccl-9", which collc does not know' in result.output


def test_verify_and_compile_offer_the_same_runtimes() -> None:
    from collc.cli.compile import compile_command
    from collc.cli.verify import verify_command

    def choices(command) -> list[str]:
        option = next(p for p in command.params if p.name == "runtime")
        return list(option.type.choices)

    # verify also reads msccl-tools' 2023 files as their legacy loader did; compile writes for the rest
    assert choices(verify_command) == [*choices(compile_command), "msccl-legacy"]


def test_explain_json_has_the_selection() -> None:
    result = run(path_of("tree_allreduce_3.xml"), "--json", "--explain", "--nranks", "3", "--bytes", "1MiB")
    selection = json.loads(result.output)["files"][0]["selection"]
    assert selection["selected"] is False
    assert any("maxBytes=65536" in reason for reason in selection["reasons"])


@pytest.mark.parametrize(
    ("text", "value"), [("4096", 4096), ("64MiB", 64 * 2**20), ("1GB", 10**9), ("2 kib", 2048)]
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_parse_size_rejects_garbage() -> None:
    with pytest.raises(Exception, match="is not a size"):
        parse_size("64 parsecs")


def test_topology_checks_ranks_and_picks_its_runtime(tmp_path) -> None:
    eight = tmp_path / "ring8.xml"
    eight.write_text(to_xml(ring_allgather(8)))
    result = run(str(eight), "--topology", "dgx-a100")
    assert result.exit_code == 0, result.output
    assert "runtime msccl-executor" in result.output
    result = run(str(eight), "--topology", "dgx-a100", "--set", "boxes=2")
    assert result.exit_code == 1 and "[topology-ngpus]" in result.output
    sixteen = tmp_path / "ring16.xml"
    sixteen.write_text(to_xml(ring_allgather(16)))
    result = run(str(sixteen), "--topology", "mi250")
    assert result.exit_code == 0 and "runtime rccl" in result.output


def test_set_without_topology_is_an_input_error() -> None:
    result = run(path_of("ring_allgather_4.xml"), "--set", "boxes=2")
    assert result.exit_code == 2 and "--set needs --topology" in result.output


def test_directory_is_verified_like_the_runtime_loads_it(tmp_path) -> None:
    """Every regular file in MSCCL_ALGO_DIR is parsed, a README included; overlapping files warn."""
    ring = next(p for p in VALID if p.name == "ring_allgather_4.xml").read_text()
    (tmp_path / "a_ring.xml").write_text(ring)
    (tmp_path / "b_ring.xml").write_text(
        ring.replace('minBytes="0" maxBytes="0"', 'minBytes="0" maxBytes="1024"')
    )
    (tmp_path / "subdir").mkdir()
    result = run(str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "a_ring.xml and" in result.output and "[overlapping-selection]" in result.output
    result = run(str(tmp_path), "--explain", "--nranks", "4", "--bytes", "512")
    assert f"the runtime would use: {tmp_path / 'a_ring.xml'}" in result.output
    (tmp_path / "README").write_text("notes\n")
    result = run(str(tmp_path), "--json")
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert [Path(f["file"]).name for f in document["files"]] == ["README", "a_ring.xml", "b_ring.xml"]
    assert len(document["overlaps"]) == 1


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ('ngpus="4"', 'ngpus="2147483647"', [":2:", "at most 4,096"]),
        ('nchunksperloop="4"', 'nchunksperloop="2147483647"', [":2:", "at most 1,048,576"]),
        # within the reader's limits, but 4 ranks × (1 + 4) × 262144 chunks exceed what is simulated
        ('nchunksperloop="4"', 'nchunksperloop="1048576"', [":2:", "5,242,880 chunks", "at most 2,097,152"]),
    ],
)
def test_sizes_beyond_the_limits_are_refused_before_the_work(tmp_path, old, new, fragments) -> None:
    path = tmp_path / "big.xml"
    path.write_text(Path(path_of("ring_allgather_4.xml")).read_text().replace(old, new, 1))
    start = time.monotonic()
    result = run(str(path))
    assert time.monotonic() - start < 10
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert sum("error:" in line for line in result.output.splitlines()) == 1
    assert all(fragment in result.output for fragment in fragments), result.output


def test_threadblocks_beyond_the_limit_are_refused(monkeypatch) -> None:
    """The limit is on threadblocks × ranks (each clock names a block per rank), pinned at its boundary."""
    import collc.verify
    from collc.errors import InputError

    algo = ring_allgather(4)
    monkeypatch.setattr(collc.verify, "MAX_SIMULATED_CLOCK_ENTRIES", 4 * 8)
    algo.gpus[0].tbs += [Threadblock(i, -1, -1, 0, []) for i in range(1, 6)]
    with pytest.raises(InputError, match="9 threadblocks on 4 rank"):
        collc.verify.verify(algo)
    algo.gpus[0].tbs.pop()
    assert sum(len(gpu.tbs) for gpu in algo.gpus) * len(algo.gpus) == 4 * 8
    collc.verify.verify(algo)  # at the limit: simulated


def test_the_size_limit_admits_collcs_largest_file_and_refuses_a_larger_one(tmp_path, monkeypatch) -> None:
    """Schedules were read up to 2 GiB: a valid file padded with 450,000 nops (52 MB) took 13 s and
    2.3 GB. The limit sits above collc's 1,088-GPU rail allgather (284,217,060 bytes: 76 s and 2.3 GB)
    and below 2 GiB; here it is lowered to 1 MiB to refuse a file just above it, and the file after it
    is still checked."""
    import collc.cli.common
    from collc.input_limits import MAX_SCHEDULE_BYTES

    assert 284_217_060 < MAX_SCHEDULE_BYTES == 512 * 2**20
    monkeypatch.setattr(collc.cli.common, "MAX_SCHEDULE_BYTES", 2**20)
    ring = Path(path_of("ring_allgather_4.xml")).read_text()
    padded = tmp_path / "padded.xml"
    padded.write_text(ring + "<!--" + "x" * 2**20 + "-->\n")
    result = run(str(padded), path_of("ring_allgather_4.xml"))
    assert result.exit_code == 2
    assert f"{padded}: error: the file is larger than 1 MiB, the most collc reads" in result.output
    assert "4,096 elements per rank" in result.output
    assert f"{path_of('ring_allgather_4.xml')}: ok" in result.output


def test_every_file_is_reported_with_the_same_keys_and_the_worst_exit(tmp_path) -> None:
    """A file beyond collc's limits used to stop the run (files: null, the verdicts already computed
    lost), a non-UTF-8 file got an entry of other keys ({file, ok, unreadable}) with a null top-level
    error, and the two exit-2 documents ordered their keys differently."""
    from collc.cli.verify import FILE_KEYS, VERIFY_KEYS
    from collc.jsondoc import OUTCOME_KEYS

    ring = path_of("ring_allgather_4.xml")
    huge = tmp_path / "huge.xml"
    huge.write_text(Path(ring).read_text().replace('nchunksperloop="4"', 'nchunksperloop="4294967296"', 1))
    binary = tmp_path / "binary.xml"
    binary.write_bytes(b"<algo name=\xff")
    files = [ring, str(huge), str(binary), str(tmp_path / "missing.xml")]
    result = run("--json", *files)
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert list(document) == [*VERIFY_KEYS, *OUTCOME_KEYS]
    entries = document["files"]
    assert [entry["file"] for entry in entries] == files
    assert all(list(entry) == [*FILE_KEYS, *OUTCOME_KEYS] for entry in entries)
    assert [entry["exit_code"] for entry in entries] == [0, 2, 2, 2]
    assert entries[0]["ok"] is True and entries[0]["error"] is None
    assert [entry["location"] for entry in entries[1:]] == [
        {"file": str(huge), "line": 2, "column": 60},
        {"file": str(binary), "line": 1, "column": 12},
        {"file": str(tmp_path / "missing.xml"), "line": None, "column": None},
    ]
    assert "outside collc's limit" in entries[1]["error"] and "not UTF-8" in entries[2]["error"]
    assert "cannot read the file" in entries[3]["error"]
    assert document["ok"] is False and document["error"] == entries[1]["error"]
    assert document["location"] == entries[1]["location"] and document["exit_code"] == 2
    refused = json.loads(run("--json", ring, "--set", "boxes=2").stdout)
    assert list(refused) == list(document)  # an option error has the same keys in the same order
    text = run(*files)
    assert text.exit_code == 2 and f"{ring}: ok" in text.output
    errors = [line for line in text.output.splitlines() if ": error: " in line]
    assert [line.split(":")[0] for line in errors] == files[1:]
