"""The file's size range: only where its simulation beats the runtime's own algorithms."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.compile import CompileOptions, compile_schedule
from collc.compile import outlook as outlook_module
from collc.compile.bundle import (
    FILE_COST,
    FileKind,
    best_plan,
    grid_points,
    on_grid,
    plan_ranges,
    wins_throughout,
)
from collc.compile.outlook import SizeOutlook, grid, nccl_tests_bytes, outlook, served_size
from collc.compile.ranges import ByteRange, at_end, choose_range, inside_end, predicted_range, winning_runs
from collc.errors import InvariantError
from collc.topology import load
from compiled import preset_compile, same_worker

KIB, MIB, GIB = 2**10, 2**20, 2**30


def row(nbytes: int, collc: float | None, vendor: float = 100.0) -> SizeOutlook:
    return SizeOutlook(nbytes, collc, collc, vendor, None, 200.0, collc is not None)


def test_a_run_that_reaches_the_top_of_the_grid_is_unbounded():
    rows = [row(2**i * KIB, 50.0 if i < 3 else 150.0) for i in range(6)]
    assert choose_range(rows, "msccl-executor") == ByteRange(8 * KIB, 0)


def test_a_loss_at_any_power_of_two_splits_the_run():
    """The grid has every power of two (the sizes of an nccl-tests sweep): a file that loses at 2 MiB
    between wins at 1 and 4 MiB is not selected at 2 MiB, so its range starts above it."""
    assert all(b == 2 * a for a, b in itertools.pairwise(grid()))
    rows = [row(n, 90.0 if n == 2 * MIB else 150.0) for n in grid()]
    assert choose_range(rows, "msccl-executor") == ByteRange(4 * MIB, 0)


def test_the_top_run_beats_a_longer_run_below_and_a_bounded_run_ends_at_its_last_win():
    sizes = [4**i * KIB for i in range(8)]
    top = [row(n, 150.0 if i in (0, 1, 2, 3, 7) else 50.0) for i, n in enumerate(sizes)]
    assert choose_range(top, "msccl-executor") == ByteRange(sizes[7], 0)
    middle = [row(n, 150.0 if i in (2, 3, 4) else 50.0) for i, n in enumerate(sizes)]
    assert choose_range(middle, "msccl-executor") == ByteRange(sizes[2], sizes[4])
    # the legacy loader's maxBytes is exclusive: one byte more keeps the last winning size
    assert choose_range(middle, "msccl-legacy").max_bytes == sizes[4] + 1
    # ties between runs of equal length go to the larger sizes
    two = [row(n, 150.0 if i in (1, 4) else 50.0) for i, n in enumerate(sizes)]
    assert choose_range(two, "msccl-executor") == ByteRange(sizes[4], sizes[4])


def test_no_win_is_no_range_and_unserved_sizes_never_win():
    rows = [row(4**i * KIB, None) for i in range(5)]
    assert winning_runs(rows) == [] and choose_range(rows, "msccl-executor") is None
    assert not row(KIB, None).wins and row(KIB, 100.0).wins  # a tie counts as a win (as fast)


def test_bundle_ranges_take_the_fastest_winning_protocol_per_size():
    sizes = [4**i * KIB for i in range(6)]
    outlooks = {
        FileKind("LL"): [row(n, 150.0 if i < 2 else 50.0) for i, n in enumerate(sizes)],
        FileKind("Simple"): [row(n, 120.0 + i if i >= 1 else 20.0) for i, n in enumerate(sizes)],
    }
    ranges = plan_ranges("allreduce", outlooks, "msccl-executor")
    assert [(r.proto, r.min_bytes, r.max_bytes) for r in ranges] == [
        ("LL", sizes[0], sizes[1]),
        ("Simple", sizes[1] + 1, 0),  # it also wins at sizes[1]: the sizes between are its (bridged)
    ]
    assert plan_ranges("allreduce", {FileKind("LL"): [row(n, 1.0) for n in sizes]}, "msccl-executor") == []


def test_a_bundles_second_simple_file_takes_the_sizes_where_it_is_the_faster():
    """1x16 MI250 allreduce's figures (GB/s; RCCL's best as the vendor): the file chosen at 1 GiB
    (k = 8) loses to RCCL's ring from 16 to 128 MiB, where the Simple file chosen at 64 MiB (k = 2)
    wins; each takes its run of sizes, and the second's range says what it was chosen at."""
    sizes = [16 * MIB, 64 * MIB, 256 * MIB, GIB]
    vendor = dict(zip(sizes, [95.0, 136.6, 153.4, 158.3], strict=True))
    at_1gib = dict(zip(sizes, [80.0, 118.1, 154.4, 164.7], strict=True))
    at_64mib = dict(zip(sizes, [99.2, 139.7, 153.0, 158.6], strict=True))
    outlooks = {
        FileKind("Simple"): [row(n, at_1gib[n], vendor[n]) for n in sizes],
        FileKind("Simple", 64 * MIB): [row(n, at_64mib[n], vendor[n]) for n in sizes],
    }
    ranges = plan_ranges("allreduce", outlooks, "rccl")
    assert [(r.kind, r.min_bytes, r.max_bytes) for r in ranges] == [
        (FileKind("Simple", 64 * MIB), 16 * MIB, 64 * MIB),
        (FileKind("Simple"), 256 * MIB, 0),
    ]
    assert ranges[0].describe() == "allreduce Simple (fastest at 64MiB) [16MiB, 64MiB]"
    assert ranges[1].describe() == "allreduce Simple [256MiB, ∞)"


def test_each_file_of_a_bundle_takes_one_run_of_sizes():
    """Two Simple files within a few per cent of each other, the second faster at every other size:
    the fastest file per size would give it three ranges (three copies in the directory); each file
    takes one run, the plan that delivers most under that rule, and a file is used only where it
    delivers more than it costs (FILE_COST, 1 % at one size)."""
    sizes = [4**i * MIB for i in range(6)]
    main = [row(n, 150.0) for n in sizes]
    crossing = [row(n, 153.0 if i % 2 == 0 else 147.0) for i, n in enumerate(sizes)]
    outlooks = {FileKind("Simple"): main, FileKind("Simple", 64 * MIB): crossing}
    ranges = plan_ranges("allgather", outlooks, "msccl-executor")
    assert [(r.kind, r.min_bytes, r.max_bytes) for r in ranges] == [
        (FileKind("Simple", 64 * MIB), sizes[0], sizes[0]),
        (FileKind("Simple"), sizes[0] + 1, 0),  # 1.50 x 1.50 at the sizes around the gap, 1.53 x 1.47
    ]
    plan = best_plan(grid_points(outlooks))
    assert plan.taken == len(sizes)
    assert plan.gain == pytest.approx(math.log(1.53) + 5 * math.log(1.5) - 2 * FILE_COST)
    # 1.51 against 1.50 at its best size is 0.7 %, less than a file costs: the first file takes all
    crossing[0] = row(sizes[0], 151.0)
    ranges = plan_ranges("allgather", outlooks, "msccl-executor")
    assert [(r.kind, r.min_bytes, r.max_bytes) for r in ranges] == [(FileKind("Simple"), sizes[0], 0)]
    assert best_plan(grid_points(outlooks)).gain == pytest.approx(6 * math.log(1.5) - FILE_COST)
    # a file that loses between two of its wins keeps the more valuable side only
    gapped = [row(n, 90.0 if i == 2 else 120.0 + i) for i, n in enumerate(sizes)]
    (only,) = plan_ranges("allgather", {FileKind("LL"): gapped}, "msccl-executor")
    assert (only.min_bytes, only.max_bytes) == (sizes[3], 0)


def test_the_sizes_between_two_files_runs_go_to_a_file_that_wins_on_both_sides():
    """LL wins to 1 MiB, LL128 from 2 MiB. A call between (1.5 MiB) matched neither range and went to
    the runtime; now the file that is at least as fast as the runtime at both 1 and 2 MiB takes it,
    the one that delivers more there where both are, and the runtime keeps it where neither is."""
    sizes = [256 * KIB, 512 * KIB, MIB, 2 * MIB, 4 * MIB]

    def ranges(ll_at_2mib: float, ll128_at_1mib: float, runtime: str = "msccl-executor") -> list[tuple]:
        outlooks = {
            FileKind("LL"): [row(n, 150.0 if n <= MIB else ll_at_2mib) for n in sizes],
            FileKind("LL128"): [
                row(n, 50.0 if n < MIB else ll128_at_1mib if n == MIB else 160.0) for n in sizes
            ],
        }
        return [(r.proto, r.min_bytes, r.max_bytes) for r in plan_ranges("allreduce", outlooks, runtime)]

    # LL also wins at 2 MiB (by 1.40 x 1.50 there and at 1 MiB; LL128 1.10 x 1.60): LL takes the gap
    assert ranges(140.0, 110.0) == [("LL", 256 * KIB, 2 * MIB - 1), ("LL128", 2 * MIB, 0)]
    # LL128 delivers more around the gap (1.30 x 1.60 against 1.50 x 1.05): LL128 takes it
    assert ranges(105.0, 130.0) == [("LL", 256 * KIB, MIB), ("LL128", MIB + 1, 0)]
    # LL loses at 2 MiB, LL128 at 1 MiB: the sizes between stay the runtime's
    assert ranges(90.0, 90.0) == [("LL", 256 * KIB, MIB), ("LL128", 2 * MIB, 0)]
    # the legacy loader's maxBytes is exclusive: LL's range ends where LL128's begins
    assert ranges(140.0, 110.0, "msccl-legacy") == [("LL", 256 * KIB, 2 * MIB), ("LL128", 2 * MIB, 0)]
    taken = plan_ranges(
        "allreduce",
        {
            FileKind("LL"): [row(n, 150.0 if n <= MIB else 105.0) for n in sizes],
            FileKind("LL128"): [row(n, 50.0 if n < MIB else 130.0 if n == MIB else 160.0) for n in sizes],
        },
        "msccl-executor",
    )
    assert [item.describe() for item in taken] == ["allreduce LL [256KiB, 1MiB]", "allreduce LL128 (1MiB, ∞)"]
    # a fallback file takes the range LL128 took only where it also wins at 1 MiB, the gap's far end;
    # else the range LL128's run drew
    ll128 = taken[1]
    whole, drawn = ll128.fallback_choices()
    assert whole == ll128 and (whole.min_bytes, whole.beyond) == (MIB + 1, (2,))
    assert (drawn.min_bytes, drawn.max_bytes, drawn.beyond, drawn.drawn) == (2 * MIB, 0, (), None)
    fallback = [row(n, 50.0 if n < MIB else 120.0) for n in sizes]
    selected = [replace(item, selected=item.nbytes > MIB) for item in fallback]
    assert wins_throughout(selected, whole.beyond)
    selected[2] = replace(selected[2], algbw=90.0)
    assert not wins_throughout(selected, whole.beyond)
    assert wins_throughout(selected, drawn.beyond)
    assert taken[0].fallback_choices() == [taken[0]]  # LL took no gap
    # a runtime point between two runs: the runtime keeps the sizes on both sides of it
    runtime_between = {
        FileKind("LL"): [row(n, 150.0 if n <= 512 * KIB else 120.0 if n == 2 * MIB else 90.0) for n in sizes],
        FileKind("LL128"): [row(n, 160.0 if n >= 2 * MIB else 95.0) for n in sizes],
    }
    got = plan_ranges("allreduce", runtime_between, "msccl-executor")
    assert [(r.proto, r.min_bytes, r.max_bytes) for r in got] == [
        ("LL", 256 * KIB, 512 * KIB),
        ("LL128", 2 * MIB, 0),
    ]


def test_bundle_ranges_match_protocols_by_grid_point_not_by_served_size():
    """Files whose nchunksperloop is not a power of two are simulated at the nearest size each
    serves (3 GPUs: 4104 and 4128 bytes for 4 KiB); one protocol's run stays one range."""
    sizes = [4**i * KIB for i in range(6)]
    outlooks = {
        FileKind("LL"): [row(n + 8, 150.0 if i < 3 else 50.0) for i, n in enumerate(sizes)],
        FileKind("Simple"): [row(n + 32, 150.0 if i >= 3 else 20.0) for i, n in enumerate(sizes)],
    }
    ranges = plan_ranges("allgather", outlooks, "msccl-executor")
    assert [(r.proto, r.min_bytes, r.max_bytes) for r in ranges] == [
        ("LL", sizes[0] + 8, sizes[2] + 8),
        ("Simple", sizes[3] + 32, 0),
    ]
    with pytest.raises(InvariantError, match="different grids"):
        plan_ranges(
            "allgather", {**outlooks, FileKind("LL128"): outlooks[FileKind("LL")][:-1]}, "msccl-executor"
        )


def test_bundle_ranges_start_where_nccl_tests_rounds_the_first_point():
    """On 3 GPUs nccl-tests' "4 KiB" allgather is 4080 bytes (340 floats per rank, a multiple of 4)
    while the files were simulated at the sizes they serve above it; each range starts at the former,
    so the calls a user measures are the ones the files take."""
    sizes = [4**i * 4 * KIB for i in range(4)]  # 4 KiB .. 256 KiB
    outlooks = {
        FileKind("LL"): [row(n + 8, 150.0 if i < 2 else 50.0) for i, n in enumerate(sizes)],
        FileKind("Simple"): [row(n + 32, 150.0 if i >= 2 else 20.0) for i, n in enumerate(sizes)],
    }
    ranges = plan_ranges("allgather", outlooks, "msccl-executor", sizes, 3)
    assert [(r.proto, r.min_bytes, r.max_bytes) for r in ranges] == [
        ("LL", 4080, sizes[1] + 8),
        ("Simple", 65520, 0),
    ]
    assert plan_ranges("allgather", outlooks, "msccl-executor")[1].min_bytes == sizes[2] + 32


def test_bundle_ranges_stay_disjoint_where_rounded_sizes_interleave():
    """A file whose smallest call is 20 KiB serves the 4 KiB and 16 KiB points at 20 KiB; a faster
    file that takes the 16 KiB point at 16 KiB leaves 20 KiB to the first and starts at its next
    point (the ranges would overlap otherwise, and RCCL reads a bundle in no fixed order)."""
    sizes = [4 ** (i + 1) * KIB for i in range(5)]  # 4 KiB .. 1 MiB
    outlooks = {
        FileKind("LL"): [row(20 * KIB, 150.0), row(20 * KIB, 150.0)] + [row(n, 50.0) for n in sizes[2:]],
        FileKind("Simple"): [row(n, 20.0 if i == 0 else 160.0 + i) for i, n in enumerate(sizes)],
    }
    ranges = plan_ranges("allgather", outlooks, "msccl-executor")
    assert [(r.proto, r.min_bytes, r.max_bytes) for r in ranges] == [
        ("LL", 20 * KIB, 20 * KIB),
        ("Simple", 64 * KIB, 0),
    ]


def test_a_bundle_outlook_has_a_row_per_grid_size():
    topology = load("dgx-a100", {"boxes": "1"})
    result = compile_schedule(topology, CompileOptions(coll="allgather", k=1, user_range=True))
    wide = type(result.algorithm)(**{**result.algorithm.__dict__, "nchunksperloop": 4096})
    sizes = [4 * KIB, 16 * KIB, 64 * KIB]  # the file's smallest call: 4096 chunks x 4 bytes = 16 KiB
    rows = [row(16 * KIB, 1.0), row(64 * KIB, 2.0)]
    assert [r.nbytes for r in on_grid(wide, rows, sizes)] == [16 * KIB, 16 * KIB, 64 * KIB]


def test_nccl_tests_sizes_are_whole_16_byte_units_per_rank():
    assert nccl_tests_bytes("allgather", MIB, 72) == 3640 * 72 * 4  # 262144 floats / 72 = 3640.9
    assert nccl_tests_bytes("reducescatter", MIB, 72) == 3640 * 72 * 4
    assert nccl_tests_bytes("allgather", 4104, 3) == 340 * 3 * 4  # 342 floats per rank: 340
    assert nccl_tests_bytes("allreduce", MIB + 3, 72) == MIB  # whole floats, no per-rank unit
    assert nccl_tests_bytes("allgather", KIB, 72) == 0  # not one 16-byte unit per rank
    assert nccl_tests_bytes("allgather", GIB, 8) == GIB


def test_served_sizes_follow_nchunksperloop():
    topology = load("dgx-a100", {"boxes": "1"})
    result = compile_schedule(topology, CompileOptions(coll="allgather", k=1, user_range=True))
    algo = result.algorithm
    assert served_size(algo, MIB) == MIB
    assert served_size(algo, 1) == algo.nchunksperloop * 4
    odd = type(algo)(**{**algo.__dict__, "nchunksperloop": 72})
    assert served_size(odd, MIB) % (72 * 4) == 0 and MIB <= served_size(odd, MIB) < MIB + 72 * 4


@pytest.mark.parametrize(
    ("name", "boxes", "coll"),
    [
        pytest.param(name, boxes, coll, marks=same_worker(name, boxes))
        for name, boxes, coll in [("dgx-a100", 4, "allreduce"), ("mi300x", 4, "allgather")]
    ],
)
def test_a_compiled_file_is_selected_only_where_it_is_predicted_to_win(name, boxes, coll):
    """The product's promise: at every grid size the runtime would give the file, it is at least as
    fast as the runtime's best ring/tree (in the event simulation)."""
    result = preset_compile(name, boxes, coll)
    assert not result.forced
    # at the buffer the file is deployed with (the deploy lines set it)
    rows = outlook(result.model, result.algorithm, grid(), result.runtime, result.predictor, result.proto)
    assert [r for r in rows if r.selected and not r.wins] == []
    assert any(r.selected for r in rows)
    assert result.byte_range.holds(result.algorithm.min_bytes)


@same_worker("dgx1", 1)
def test_dgx1_allgather_leaves_large_calls_to_the_rings_that_meet_the_bound():
    """DGX-1's rings reach the allgather bound (171.0 of 171.4 GB/s at 1 GiB); the best power-of-two
    k reaches 56/57 of it, so no collc file can be faster on large calls. The file compile writes
    takes only small ones, where its trees are shallower than the rings (64 KiB to 1 MiB: 54.2 against
    50.4 GB/s at 1 MiB)."""
    result = preset_compile("dgx1", 1, "allgather")
    assert 0 < result.byte_range.max_bytes < 64 << 20 and not result.forced
    assert all(not row.selected for row in result.predicted if row.nbytes >= 64 << 20)
    assert all(row.algbw >= row.vendor_algbw for row in result.predicted if row.selected)


def _cli(tmp_path: Path, *args: str):
    out = tmp_path / "x.xml"
    return CliRunner().invoke(main, ["compile", "dgx-a100", *args, "-o", str(out)]), out


def test_a_file_that_wins_nowhere_is_not_written_unless_forced(tmp_path, monkeypatch):
    monkeypatch.setattr(
        outlook_module, "vendor_algbw", lambda model, coll, nbytes: {"ring": 1e9, "tree": 1e9}
    )
    result, out = _cli(tmp_path, "--k", "1")
    assert result.exit_code == 1 and "no file written" in result.output and not out.exists()
    result, out = _cli(tmp_path, "--k", "1", "--force")
    assert result.exit_code == 0, result.output
    assert "forced" in result.output and 'minBytes="0"' in out.read_text()
    # a range the user sets is written as given, with a note on where it loses
    result, out = _cli(tmp_path, "--k", "1", "--min-bytes", "1MiB", "--max-bytes", "0")
    assert result.exit_code == 0 and 'minBytes="1048576"' in out.read_text()
    assert "predicted slower than the runtime's best" in result.output
    # one end alone leaves the other where the file wins: nowhere, so no file
    out.unlink()
    result, out = _cli(tmp_path, "--k", "1", "--min-bytes", "1MiB")
    assert result.exit_code == 1 and "no file written" in result.output and not out.exists()


def _range(tmp_path: Path, *args: str, coll: str = "allgather") -> tuple[int, int, str]:
    out = tmp_path / "x.xml"
    result = CliRunner().invoke(main, ["compile", "dgx1", "--coll", coll, *args, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    return report["min_bytes"], report["max_bytes"], report["range_source"]


def test_one_end_set_by_the_user_leaves_the_other_where_the_file_wins(tmp_path):
    """1x8 V100 allgather wins from 1 MiB to 4 MiB. ``--max-bytes`` alone is the largest size the
    file takes and its start stays where it wins (it had dropped to 0, where the file loses);
    ``--min-bytes`` alone is the smallest and its end stays where it wins (it had been unbounded)."""
    assert _range(tmp_path) == (MIB, 4 * MIB, "predicted")
    # the pick weighs up to 1 MiB, where another file wins from 64 KiB
    assert _range(tmp_path, "--max-bytes", "1MiB") == (64 * KIB, MIB, "user-max")
    assert _range(tmp_path, "--min-bytes", "16KiB") == (16 * KIB, 4 * MIB, "user-min")
    # an end off the range's grid is simulated itself: allreduce's range starts at 1.5 MiB, not at the
    # next grid size (the search had started at 4 MiB)
    assert _range(tmp_path, "--min-bytes", "1.5MiB", coll="allreduce") == (3 * MIB // 2, 4 * MIB, "user-min")
    assert _range(tmp_path, "--min-bytes", "16KiB", "--max-bytes", "1MiB") == (16 * KIB, MIB, "user")


def test_the_ends_a_user_gives_clip_and_set_the_predicted_range():
    given = ByteRange(16 * KIB, 4 * MIB)
    assert [inside_end(n, "min", given) for n in (4 * KIB, 16 * KIB, GIB)] == [False, True, True]
    assert [inside_end(n, "max", given) for n in (4 * KIB, 4 * MIB, GIB)] == [True, True, False]
    assert inside_end(GIB, "max", ByteRange(0, 0)) and inside_end(KIB, None, given)
    won = ByteRange(64 * KIB, 0)
    assert at_end(won, "min", given) == ByteRange(16 * KIB, 0)
    assert at_end(won, "max", given) == ByteRange(64 * KIB, 4 * MIB)
    assert at_end(won, None, given) == won


def test_json_report_has_stable_keys_and_the_simulated_figures(tmp_path):
    result, out = _cli(tmp_path, "--k", "1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("file", "coll", "runtime", "k", "nchunksperloop", "min_bytes", "max_bytes", "bound_algbw"):
        assert key in report
    assert report["file"] == str(out) and report["k"] == 1 and report["nchunksperloop"] == 8
    sizes = [entry["bytes"] for entry in report["predicted"]]
    assert sizes == [MIB, 64 * MIB, GIB]
    for entry in report["predicted"]:
        assert {"bytes", "algbw", "busbw", "ring_algbw", "tree_algbw", "selected"} <= set(entry)
        assert entry["algbw"] <= report["bound_algbw"] + 1e-6
    assert f'minBytes="{report["min_bytes"]}"' in out.read_text()
    assert report["loaded_by"].startswith("msccl-executor-nccl (NCCL 2.23.4")
    # the forest's routes are the runtime's here: the busiest arc allows exactly the k = 1 bound
    assert report["arc_limit_algbw"] == report["file_bound_algbw"]
    assert "busiest arc      " not in result.output  # no report line: the routes add no limit


@pytest.mark.parametrize(
    ("runtime", "expected"),
    [("rccl", "RCCL 2.15.5 to 2.27.x"), ("mscclpp", "MSCCL++ v0.10.x"), ("msccl-executor", "NCCL 2.23.4")],
)
def test_the_report_names_the_releases_that_load_the_file(runtime, expected):
    from collc.runtimes.libinfo import loaded_by

    assert expected in loaded_by(runtime)


def test_a_file_takes_the_call_nccl_tests_makes_at_the_start_of_its_range():
    """On 3 GPUs the file is simulated at the sizes it serves above each power of two, and nccl-tests
    asks for the size below (a multiple of 4 floats per rank): the range starts at the latter, so the
    first size a user measures in it runs the file."""
    from collc.verify.select import explain

    topology = load(str(Path(__file__).parents[1] / "lowering" / "fixtures" / "line3.yaml"))
    result = compile_schedule(topology, CompileOptions(coll="allgather"))
    algo, low = result.algorithm, result.byte_range.min_bytes
    nominal = 1 << (low - 1).bit_length()  # the power of two at or above the start
    asked = nccl_tests_bytes("allgather", nominal, 3)
    assert asked < served_size(algo, nominal)  # the two differ on 3 GPUs
    assert low == asked and algo.min_bytes == asked
    call = explain(algo, nranks=3, nbytes=asked, dtype_size=4, inplace=bool(algo.inplace))
    assert call.selected, call
    # nothing simulated below the range that lost is taken
    rows = outlook(result.model, algo, grid(), "msccl-executor", result.predictor, result.proto)
    assert all(row.wins for row in rows if row.selected)


def test_the_users_end_off_the_grid_is_simulated_itself():
    """The file wins at 1.5 MiB and nowhere on the grid from there on (4 MiB up): with ``--min-bytes
    1.5MiB`` the end is probed and the range starts and ends there; without the probe the search saw
    only the grid's losing sizes."""
    rows = [row(4**i * KIB, 150.0 if 4**i * KIB <= MIB else 50.0) for i in range(8)]

    def probe(nbytes: int) -> SizeOutlook:
        return row(nbytes, 150.0 if nbytes <= 3 * MIB // 2 else 50.0)

    start = ByteRange(3 * MIB // 2, 0)
    chosen, seen = predicted_range(rows, "msccl-executor", probe, "min", start)
    assert seen[0].nbytes == 3 * MIB // 2 and all(r.nbytes >= 3 * MIB // 2 for r in seen)
    assert chosen is not None and at_end(chosen, "min", start) == ByteRange(3 * MIB // 2, 3 * MIB // 2)
    assert predicted_range(rows, "msccl-executor", probe, None, ByteRange(0, 0))[0] == ByteRange(KIB, MIB)


def test_a_written_file_wins_at_every_power_of_two_it_takes():
    """The sizes of an nccl-tests sweep with ``-f 2``: on a grid of powers of four the file for this
    flat, degraded fabric took 4 KiB and up, and 2 MiB lost to NCCL's tree (24.3 against 26.8 GB/s)."""
    topology = load(Path(__file__).parent / "fixtures" / "degraded-2x8.yaml")
    result = compile_schedule(topology, CompileOptions())
    sizes = [2**exponent for exponent in range(12, 41)]
    rows = outlook(result.model, result.algorithm, sizes, result.runtime, result.predictor, result.proto)
    taken = [row for row in rows if row.selected]
    assert taken and all(row.wins for row in taken), [row for row in taken if not row.wins]
