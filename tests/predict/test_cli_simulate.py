import json
import re
from pathlib import Path

from click.testing import CliRunner

from collc.cli import main
from ring_schedule import ring_allgather_xml


def _run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_json_has_the_stable_keys_for_allreduce() -> None:
    result = _run("simulate", "dgx-a100", "--sizes", "1KiB:1GiB:32", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) >= {"rows", "crossover_bytes", "collc_wins"}
    assert [row["bytes"] for row in data["rows"]] == [2**10, 2**15, 2**20, 2**25, 2**30]
    for row in data["rows"]:
        assert set(row) == {"bytes", "collc", "ring", "tree", "bound"}
        for name in ("collc", "ring", "tree", "bound"):
            assert set(row[name]) == {"time_us", "algbw", "busbw"}
    assert data["rows"][-1]["bound"]["algbw"] == round(8 * 300 / 7 / 2, 3)


def test_allgather_has_no_tree_column() -> None:
    result = _run(
        "simulate", "dgx-h100-rail", "--set", "boxes=4", "--coll", "allgather", "--sizes", "1GiB", "--json"
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)["rows"][0]
    assert set(row) == {"bytes", "collc", "ring", "bound"}
    assert row["collc"]["algbw"] > row["ring"]["algbw"]


def test_table_and_plot(tmp_path: Path) -> None:
    picture = tmp_path / "sweep.png"
    result = _run(
        "simulate", "dgx-a100", "--set", "boxes=2", "--sizes", "1KiB:8GiB:8", "--plot", str(picture)
    )
    assert result.exit_code == 0, result.output
    assert "collc = the file `collc compile` writes" in result.output
    assert "collc is predicted at least as fast as the runtime's algorithms at" in result.output
    data = picture.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and 20_000 < len(data) < 2_000_000


def test_plot_as_svg(tmp_path: Path) -> None:
    picture = tmp_path / "sweep.svg"
    result = _run("simulate", "dgx-a100", "--sizes", "1MiB:1GiB:32", "--plot", str(picture))
    assert result.exit_code == 0, result.output
    text = picture.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and len(text) > 10_000


def test_bad_sizes_and_picture_names_exit_2_with_a_hint(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "dgx-a100", "--sizes", "8GiB:1KiB"])
    assert result.exit_code == 2 and "hint:" in result.output
    result = CliRunner().invoke(
        main, ["simulate", "dgx-a100", "--sizes", "1MiB", "--plot", str(tmp_path / "x.gif")]
    )
    assert result.exit_code == 2 and "*.png or *.svg" in result.output


def _ring(tmp_path: Path) -> Path:
    path = tmp_path / "ring_allgather_4.xml"
    path.write_text(ring_allgather_xml(4))
    return path


def test_schedule_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "dgx-a100", str(_ring(tmp_path))])
    assert result.exit_code == 2
    assert "4 GPUs" in result.output


def test_missing_schedule_and_wrong_collective_are_located_input_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "dgx-a100", str(tmp_path / "nope.xml")])
    assert result.exit_code == 2 and "cannot read" in result.output
    schedule = _ring(tmp_path)
    result = CliRunner().invoke(main, ["simulate", "dgx-a100", str(schedule), "--coll", "allreduce"])
    assert result.exit_code == 2 and "--coll allgather" in result.output


def test_the_summary_is_read_off_the_table() -> None:
    """A file that wins at 1 MiB only must not be summarised as winning nowhere (or everywhere)."""
    from fractions import Fraction

    from collc.cli.simulate import summary
    from collc.predict.sweep import Prediction, Row, Sweep

    def row(nbytes: int, collc_us: float) -> Row:
        return Row(nbytes, Prediction(collc_us, 1, 1), {"ring": Prediction(10.0, 1, 1)}, Prediction(1, 1, 1))

    times = {2**10: 20.0, 2**20: 5.0, 2**21: 10.0, 2**25: 30.0, 2**30: 9.0}
    sweep = Sweep("allreduce", "Simple", 8, tuple(row(n, t) for n, t in times.items()), None, Fraction(1))
    assert sweep.winning_sizes() == [2**20, 2**21, 2**30]
    assert summary(sweep).endswith("at 1MiB-2MiB, 1GiB (sizes of the table)")
    lost = Sweep("allreduce", "Simple", 8, (row(2**10, 20.0),), None, Fraction(1))
    assert "not predicted faster" in summary(lost)
    # a file whose range takes some sizes only: the others are the runtime's, whatever its row says
    taken = summary(sweep, [2**21, 2**25, 2**30])
    assert taken.endswith("at 2MiB, 1GiB of the sizes the file takes (2MiB-1GiB of the table)")
    assert summary(sweep, [2**20, 2**21]).endswith("every size the file takes (1MiB-2MiB of the table)")
    assert summary(sweep, [2**25]).startswith("collc is not predicted faster at any of the sizes")
    assert summary(sweep, []).startswith("the file takes no size of the table")


LINE3 = str(Path(__file__).parents[1] / "lowering" / "fixtures" / "line3.yaml")


def _bundle(directory: Path) -> list[Path]:
    """A bundle of line3's allgather: LL, LL128 and Simple files over disjoint ranges, with fallbacks."""
    result = _run("compile", LINE3, "--coll", "allgather", "--bundle", str(directory))
    assert result.exit_code == 0, result.output
    return sorted(directory.iterdir())


def _first_taker(files: list[Path], nbytes: int) -> str | None:
    """The oracle: the runtime's own rule, file by file in sorted order."""
    from collc.msccl.reader import read_xml
    from collc.verify.select import explain

    for path in files:
        algo = read_xml(path.read_text(), path.name)
        call = explain(algo, nranks=3, nbytes=nbytes, dtype_size=4, inplace=bool(algo.inplace))
        if call.selected:
            return path.name
    return None


def test_simulate_a_directory_runs_each_call_on_the_file_the_runtime_selects(tmp_path: Path) -> None:
    files = _bundle(tmp_path / "algos")
    manifest = json.loads((tmp_path / "algos.manifest.json").read_text())["files"]
    # whole elements per rank on 3 GPUs, and where each range starts and ends (an optimal file and
    # its fallback both take the sizes the optimal one serves: the first in sorted order runs them)
    ends = {entry[key] for entry in manifest for key in ("min_bytes", "max_bytes")} - {0}
    sizes = sorted({3 * 2**e for e in range(10, 31, 2)} | ends)
    listed = ",".join(str(size) for size in sizes)
    result = _run("simulate", LINE3, str(tmp_path / "algos"), "--sizes", listed, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)["collectives"]["allgather"]
    # as nccl-tests issues them: a multiple of 4 floats per rank
    calls = sorted({size // 4 // 3 // 4 * 4 * 3 * 4 for size in sizes})
    assert [row["bytes"] for row in rows] == calls
    assert [row["file"] for row in rows] == [_first_taker(files, size) for size in calls]
    assert any(row["takers"] > 1 for row in rows)
    taken = [row for row in rows if row["file"]]
    assert taken and any(row["file"] is None for row in rows)  # some sizes are left to the runtime
    assert all(row["algbw"] is None for row in rows if not row["file"])
    # each figure is the file's own simulation at that size (at the buffer its name records)
    row = taken[-1]
    alone = _run(
        "simulate", LINE3, str(tmp_path / "algos" / row["file"]), "--sizes", str(row["bytes"]), "--json"
    )
    assert json.loads(alone.output)["rows"][0]["collc"]["algbw"] == row["algbw"]


def test_simulate_a_directory_says_where_a_file_it_takes_is_slower(tmp_path: Path) -> None:
    """A planted defect: the LL file's range opened to every size takes large calls, where LL is
    far slower than the runtime's ring."""
    files = _bundle(tmp_path / "algos")
    first = files[0]
    assert "-ll-" in first.name
    first.write_text(re.sub(r'maxBytes="\d+"', 'maxBytes="0"', first.read_text(), count=1))
    result = _run("simulate", LINE3, str(tmp_path / "algos"), "--sizes", "48KiB,3GiB")
    assert result.exit_code == 0, result.output
    assert first.name in result.output.splitlines()[-2]  # 3 GiB: the LL file
    assert "at 3GiB the file taken is predicted slower than the runtime's own algorithms" in result.output


def test_simulate_a_directory_refuses_what_does_not_apply(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["simulate", LINE3, str(tmp_path / "empty")])
    assert result.exit_code == 2 and "holds no files to simulate" in result.output
    files = _bundle(tmp_path / "algos")
    for flag in (["--proto", "LL"], ["--plot", str(tmp_path / "p.png")]):
        result = CliRunner().invoke(main, ["simulate", LINE3, str(tmp_path / "algos"), *flag])
        assert result.exit_code == 2 and f"{flag[0]} does not apply to a directory" in result.output
    result = CliRunner().invoke(main, ["simulate", "dgx-a100", str(tmp_path / "algos")])
    assert result.exit_code == 2 and "no file in" in result.output and "is for 8 GPUs" in result.output
    assert files


def test_the_table_keeps_the_digits_of_a_slow_fabrics_figures() -> None:
    """Figures of 1e-06 GB/s printed as 0.0 in every column and as 0.0 in JSON."""
    from fractions import Fraction

    from collc.cli.simulate import table
    from collc.predict.sweep import Prediction, Row, Sweep

    slow = Prediction(8e11, 1.31e-06, 9.8e-07)
    sweep = Sweep(
        "allgather", "Simple", 4, (Row(2**20, slow, {"ring": slow}, slow),), None, Fraction(4, 3 * 10**6)
    )
    assert table(sweep).splitlines()[-1].split() == [
        "1MiB",
        *["|", "800000000000.0", "1.3e-06", "9.8e-07"] * 3,
    ]
    document = sweep.to_json()
    assert document["bound_algbw"] == 1.33e-06
    assert document["rows"][0]["collc"] == {"time_us": 8e11, "algbw": 1.31e-06, "busbw": 9.8e-07}


def test_a_files_sentence_counts_only_the_sizes_its_range_takes(tmp_path: Path) -> None:
    """A file compiled for 64KiB-1MiB only: simulate's table still shows it at every size, and its
    closing sentence names the sizes the runtime would give it; swapped bounds take none."""
    out = tmp_path / "ag.xml"
    compiled = _run(
        "compile", LINE3, "--coll", "allgather", "--min-bytes", "64KiB", "--max-bytes", "1MiB", "-o", str(out)
    )
    assert compiled.exit_code == 0, compiled.output
    result = _run("simulate", LINE3, str(out), "--sizes", "4KiB:16MiB:4")
    assert result.exit_code == 0, result.output
    last = result.output.splitlines()[-1]  # the table's sizes, moved to counts the file serves
    assert "the file takes (64.01KiB-256.01KiB of the table)" in last, last
    out.write_text(out.read_text().replace('minBytes="65536"', 'minBytes="2097152"'))
    result = _run("simulate", LINE3, str(out), "--sizes", "4KiB:16MiB:4")
    assert result.output.splitlines()[-1].startswith("the file takes no size of the table")


def test_the_runtimes_columns_are_at_their_best_protocol_as_in_compile(tmp_path: Path) -> None:
    """At 64 KiB on 8 A100s NCCL's ring runs LL, which is faster there than Simple: simulate's ring
    column for a Simple file is that figure, the one compile compares with (it had been the ring at
    the file's protocol, a weaker baseline than compile's)."""
    from collc.compile.outlook import vendor_algbw
    from collc.predict.params import PROTOCOLS
    from predict.models import model

    schedule = tmp_path / "ring.xml"
    schedule.write_text(ring_allgather_xml(8))
    nbytes = 64 * 1024
    result = CliRunner().invoke(main, ["simulate", "dgx-a100", str(schedule), "--sizes", "64KiB", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["rows"]
    a100 = model("dgx-a100", 1)
    best = vendor_algbw(a100, "allgather", nbytes)["ring"]
    simple = nbytes / a100.ring.time_us("allgather", nbytes, PROTOCOLS["Simple"]) / 1000
    assert best > 1.2 * simple
    assert abs(row["ring"]["algbw"] - best) < 1e-3 * best
