"""Hostile input through the real CLI: one located line (and a hint), exit 2, never a traceback.

Each test is one class of input that used to crash, hang or eat memory; the limits it meets are those
of :mod:`collc.input_limits`, checked before the work they would cause.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from collc.cli import main
from ring_schedule import ring_allgather_xml

TIME_LIMIT_S = 30  # the promise for any input; every case here takes well under a second or two

TWO_GPUS = """nodes:
  - {name: gpu, kind: gpu, count: 2}
links:
  - {src: gpu0, dst: gpu1, bandwidth: BW}
"""


def run(*args: str) -> Result:
    start = time.monotonic()
    result = CliRunner().invoke(main, list(args))
    assert time.monotonic() - start < TIME_LIMIT_S
    return result


def assert_refused(result: Result, *fragments: str, code: int = 2) -> None:
    """Exit ``code``, exactly one ``error:`` line, no traceback, and every fragment in the message."""
    output = result.output
    assert result.exit_code == code, output
    assert "Traceback" not in output and not isinstance(result.exception, AssertionError)
    assert sum("error:" in line for line in output.splitlines()) == 1, output
    for fragment in fragments:
        assert fragment in output, output


def write(tmp_path: Path, text: str, name: str = "t.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _balanced(size: int) -> str:
    """``(i)+(i)`` doubled until it has about ``size`` characters: many nodes, shallow nesting."""
    text = "i"
    while len(text) * 2 + 5 < size:
        text = f"({text})+({text})"
    return text


BALANCED = _balanced(900)


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    names = [f"l{i}" for i in range(levels + 1)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(["x"] * width) + "]"]
    for previous, name in itertools.pairwise(names):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * width) + "]")
    return "\n".join(lines) + "\n"


# -- topology files --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("nodes: []\x00\n", ["t.yaml:1:10", "U+0000 is not allowed"]),
        ("name: a\x07b\n", ["t.yaml:1:8", "U+0007"]),
        ("name: \x1b[31m\n", ["U+001B"]),
        (alias_bomb(), ["expands to more than 1,000,000 values"]),
        ("nodes: " + "[" * 2000 + "]" * 2000 + "\n", ["t.yaml:1:", "nest"]),
        ("nodes: " + "[" * 100 + "]" * 100 + "\n", ["t.yaml:1:", "nested more than 64 deep"]),
        ("".join("  " * i + f"k{i}:\n" for i in range(1200)), ["nest"]),
        ("".join("  " * i + f"k{i}:\n" for i in range(100)), ["t.yaml:65:", "nested more than 64 deep"]),
        ("a: &a [*a]\n", ["contains it"]),
        ("nodes: [{name: g, kind: gpu, count: " + "9" * 5000 + "}]\n", ["t.yaml:1:", "too many digits"]),
        ("nodes: [{name: g, kind: gpu, count: 1" + "0" * 200 + ".5}]\n", ["too many digits"]),
        ("nodes: [{name: g, kind: gpu, count: 1000000}]\n", ["t.yaml:1:", "from 0 to 32768"]),
        (
            "nodes: [{name: gpu, kind: gpu, count: 5000}]\n"
            "links: [{src: 'gpu{i}', dst: 'gpu{j}', bandwidth: 1, where: 'i < j'}]\n",
            ["5,000 GPUs; collc supports at most 4,096"],
        ),
        (
            "nodes: [{name: gpu, kind: gpu, count: 4000}]\n"
            "links: [{src: 'gpu{i}', dst: 'gpu{j}', bandwidth: 1, where: 'i < j'}]\n",
            ["t.yaml:2:", "more than 32,768 links"],
        ),
        (
            "nodes: [{name: gpu, kind: gpu, count: 4000}]\n"
            "links: [{src: 'gpu{i}', dst: 'gpu{j}', bandwidth: 1, where: 'i == j + 3999'}]\n",
            ["t.yaml:2:", "pairs, the most collc supports"],
        ),
        (
            "nodes: [{name: gpu, kind: gpu, count: 300}]\n"
            f"links: [{{src: 'gpu{{i}}', dst: 'gpu{{j}}', bandwidth: 1, where: '{BALANCED} < j'}}]\n",
            ["t.yaml:2:", "more than 2,000,000 evaluation steps"],
        ),
        (
            "nodes: [{name: gpu, kind: gpu, count: 5000}, {name: sw, kind: switch}]\n"
            "links: [{src: 'gpu{i}', dst: sw, bandwidth: 1}]\n",
            ["5,000 GPUs; collc supports at most 4,096"],
        ),
        (
            "templates: {t: {nodes: [{name: g, kind: gpu, count: 8}]}}\n"
            "boxes: [{template: t, count: 30000}]\n",
            ["t.yaml:2:", "more than 16,384 nodes"],
        ),
        (TWO_GPUS.replace("BW", "1e309"), ["t.yaml:4:", "number '1e309' is too large (out of range)"]),
        (TWO_GPUS.replace("BW", "1e-400"), ["t.yaml:4:", "number '1e-400' is too small (out of range"]),
        (TWO_GPUS.replace("BW", "1.0e-400"), ["t.yaml:4:", "bandwidth under 1e-300 GB/s is outside"]),
        (TWO_GPUS.replace("BW", "1.0e+309"), ["t.yaml:4:", "outside the supported range"]),
        (TWO_GPUS.replace("BW", "1e308"), ["outside the supported range"]),
        (TWO_GPUS.replace("BW", "1e-300"), ["outside the supported range"]),
        (TWO_GPUS.replace("BW", "'2 * 1e309 GB/s'"), ["t.yaml:4:", "number '1e309' is too large"]),
        (TWO_GPUS.replace("BW", "'((2**64)**64)**64'"), ["t.yaml:4:", "1024-bit"]),
        (TWO_GPUS.replace("BW", "'" + "(" * 1000 + "1" + ")" * 1000 + "'"), ["longer than the limit"]),
        (TWO_GPUS.replace("BW", "'" + "(" * 300 + "1" + ")" * 300 + "'"), ["cannot parse"]),
        (TWO_GPUS.replace("BW", "'" + "-" * 500 + "1'"), ["nested more than 64 deep"]),
        (TWO_GPUS.replace("BW", "'" + "9" * 900 + "'"), ["1024-bit"]),
        (TWO_GPUS.replace("BW", "10, latency: 1e308"), ["latency must be from 0 to 1000000 us"]),
        # Fraction("1.5e-99999999") computes ten to that power: minutes in one call no signal stops
        (TWO_GPUS.replace("BW", "1.5e-99999999"), ["t.yaml:4:39", "exponent is beyond ±1,000"]),
        (TWO_GPUS.replace("BW", "1.5e+999999999"), ["t.yaml:4:39", "exponent is beyond ±1,000"]),
        (TWO_GPUS.replace("BW", "10, latency: 1.5e-99999999"), ["t.yaml:4:52", "exponent is beyond ±1,000"]),
    ],
)
def test_hostile_topologies_are_one_located_line(tmp_path: Path, text: str, fragments: list[str]) -> None:
    assert_refused(run("topo", "validate", write(tmp_path, text)), *fragments)


@pytest.mark.parametrize("expression", ["max(10)", "min(10)", "max(10, 20) - min(10, 20)"])
def test_min_and_max_take_one_argument_or_more(tmp_path: Path, expression: str) -> None:
    result = run("topo", "show", "--json", write(tmp_path, TWO_GPUS.replace("BW", f"'{expression}'")))
    assert result.exit_code == 0, result.output
    assert '"egress_gbps": 10,' in result.output


def test_the_largest_presets_still_load() -> None:
    result = run("topo", "validate", "dgx-h100-rail", "--set", "boxes=128")
    assert result.exit_code == 0, result.output
    assert "1024 GPUs" in result.output


def test_a_one_gpu_topology_is_refused_by_validate_too(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes: [{name: g, kind: gpu}]\n")
    assert_refused(run("topo", "validate", path), "at least 2 GPUs")
    assert_refused(run("bound", path), "at least 2 GPUs")


def test_an_unlinked_nic_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, TWO_GPUS.replace("BW", "10") + "  - {src: gpu0, dst: sw, bandwidth: 10}\n")
    text = Path(path).read_text().replace("count: 2}", "count: 2}\n  - {name: nic0, kind: nic}")
    text = text.replace("  - {name: nic0", "  - {name: sw, kind: switch}\n  - {name: nic0")
    result = run("topo", "validate", write(tmp_path, text, "nic.yaml"))
    assert result.exit_code == 0, result.output
    assert "nic.yaml:4:" in result.output and "warning: nic 'nic0' has no links" in result.output
    assert "switch 'sw'" not in result.output


def test_a_huge_topology_file_is_refused_before_reading(tmp_path: Path) -> None:
    links = "".join(f"  - {{src: g0, dst: g1, bandwidth: {i % 7 + 1}}}\n" for i in range(150_000))
    path = write(tmp_path, "nodes: [{name: g0, kind: gpu}, {name: g1, kind: gpu}]\nlinks:\n" + links)
    assert_refused(run("topo", "validate", path), "t.yaml: error:", "larger than 4 MiB")


# -- options ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["bound", "trees", "compile"])
@pytest.mark.parametrize("option", ["--k", "--max-k"])
def test_k_is_capped_in_every_command(tmp_path: Path, command: str, option: str) -> None:
    extra = ["-o", str(tmp_path / "x.xml")] if command == "compile" else []
    result = run(command, "dgx-a100", option, "10000000", *extra)
    assert_refused(result, f"{option} must be a number of trees per root from 1 to 1024, got 10000000")
    assert not (tmp_path / "x.xml").exists()


@pytest.mark.parametrize("sizes", [",,,", "", " , "])
def test_simulate_needs_a_size(sizes: str) -> None:
    assert_refused(run("simulate", "dgx-a100", "--sizes", sizes), "lists no size")


@pytest.mark.parametrize(
    ("option", "value"), [("--min-bytes", "99999999999999999999999999"), ("--max-bytes", "10000000TB")]
)
def test_byte_counts_beyond_int64_are_refused(tmp_path: Path, option: str, value: str) -> None:
    result = run("compile", "dgx-a100", "-o", str(tmp_path / "x.xml"), option, value)
    assert_refused(result, "larger than 9223372036854775807 bytes")


@pytest.mark.parametrize("spelling", ["ll128", "LL128", "Ll128"])
def test_simulate_protocol_names_ignore_case(spelling: str) -> None:
    result = run("simulate", "dgx-a100", "--sizes", "1MiB", "--proto", spelling)
    assert result.exit_code == 0, result.output
    assert "protocol LL128" in result.output


def test_an_unknown_protocol_lists_the_choices() -> None:
    result = run("simulate", "dgx-a100", "--sizes", "1MiB", "--proto", "fast")
    assert result.exit_code == 2 and "'fast' is not a protocol; use one of Simple, LL, LL128" in result.output


# -- output paths ----------------------------------------------------------------------------------------
def _writers(out: str) -> list[list[str]]:
    """Every command that writes a file, writing ``out``."""
    return [
        ["trees", "dgx-a100", "-o", out],
        ["topo", "export", "dgx-a100", "-o", out],
        ["simulate", "dgx-a100", "--sizes", "1MiB", "--plot", out],
        ["compile", "dgx-a100", "--k", "1", "-o", out],
    ]


@pytest.mark.parametrize("index", range(4))
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("", "needs a file name"),
        ("missing/dir/out.svg", "directory missing/dir does not exist"),
        ("a-file/dir/out.svg", "-o a-file/dir/out.svg: a-file is not a directory"),
        ("/proc/out.svg", "cannot write /proc/out.svg"),
        ("a-file/", "-o a-file/ ends in a slash, which names a directory"),  # wrote over a-file
        ("new.svg/", "-o new.svg/ ends in a slash"),
    ],
)
def test_bad_output_paths_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: int, target: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x")
    assert_refused(run(*_writers(target)[index]), message.replace("-o", _writers(target)[index][-2]))
    assert (tmp_path / "a-file").read_text() == "x" and not (tmp_path / "new.svg").exists()


@pytest.mark.parametrize("index", range(4))
def test_symlinks_and_pipes_are_not_written_through(tmp_path: Path, index: int) -> None:
    real = tmp_path / "real.svg"
    real.write_text("keep")
    link = tmp_path / "link.svg"
    link.symlink_to(real)
    assert_refused(run(*_writers(str(link))[index]), "symbolic link")
    assert real.read_text() == "keep" and link.is_symlink()
    pipe = tmp_path / "pipe.svg"
    os.mkfifo(pipe)
    assert_refused(run(*_writers(str(pipe))[index]), "not a regular file")


def test_report_directory_must_be_creatable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert_refused(run("report", "dgx-a100", "-o", str(tmp_path / "missing" / "r")), "does not exist")
    assert_refused(run("report", "dgx-a100", "-o", str(tmp_path / "file")), "not a directory")
    inside_a_file = str(tmp_path / "file" / "r")
    assert_refused(run("report", "dgx-a100", "-o", inside_a_file), f"{tmp_path / 'file'} is not a directory")
    assert_refused(run("report", "dgx-a100", "-o", ""), "needs a directory name")


def test_outputs_keep_their_mode(tmp_path: Path) -> None:
    out = tmp_path / "flat.yaml"
    out.write_text("old")
    out.chmod(0o600)
    result = run("topo", "export", "dgx-a100", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.stat().st_mode & 0o777 == 0o600 and "nodes:" in out.read_text()


# -- MSCCL XML schedules ---------------------------------------------------------------------------------
def _schedule(tmp_path: Path, text: str) -> str:
    return write(tmp_path, text, "s.xml")


@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ('ngpus="4"', 'ngpus="2147483647"', ["s.xml:1:", "ngpus", "at most 4,096"]),
        ('nchunksperloop="4"', 'nchunksperloop="99999999999"', ["s.xml:1:", "at most 1,048,576"]),
        ('nchunksperloop="4"', 'nchunksperloop="' + "7" * 5000 + '"', ["64-bit integer range"]),
        ('o_chunks="4"', 'o_chunks="-' + "7" * 30 + '"', ["s.xml:2:", "64-bit integer range"]),
        ("<algo", "<!-- c -->" + "<x>" * 3000 + "</x>" * 3000 + "\n<algo", ["nested more than 64 deep"]),
    ],
)
def test_hostile_schedules_are_one_located_line(tmp_path: Path, old: str, new: str, fragments: list[str]):
    text = ring_allgather_xml(4).replace(old, new, 1)
    assert_refused(run("simulate", "dgx-a100", _schedule(tmp_path, text)), *fragments)


def test_tens_of_thousands_of_threadblocks_on_a_rank_are_linted_in_linear_time(tmp_path: Path) -> None:
    """40,000 one-step threadblocks on rank 0 (6 MB): the lint collected the rank's threadblock ids
    once per threadblock, 74 s here and over 10 minutes for 500,000 (76 MiB, inside the size limit);
    now about 2 s. The verdict names the parser's element limit."""
    nop = (
        '<step s="0" type="nop" srcbuf="i" srcoff="0" dstbuf="o" dstoff="0" cnt="0" depid="-1" deps="-1" '
        'hasdep="0"/>'
    )
    extra = "".join(f'<tb id="{tb}" send="-1" recv="-1" chan="0">{nop}</tb>\n' for tb in range(1, 40_001))
    text = ring_allgather_xml(4).replace("</tb>\n", "</tb>\n" + extra, 1)
    result = run("verify", _schedule(tmp_path, text))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "[parser-node-limit]" in result.output and "[too-many-tbs]" in result.output


def test_a_binary_schedule_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    path.write_bytes(b"\xff\xfe<algo")
    assert_refused(run("simulate", "dgx-a100", str(path)), "not UTF-8 text")


# -- failures that are not collc's own errors ------------------------------------------------------------
@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (MemoryError(), "error: out of memory"),
        (RecursionError(), "nested too deeply"),
        (RuntimeError("boom\nsecond line"), "error: unexpected RuntimeError: boom second line"),
    ],
)
def test_any_other_failure_is_one_line_with_a_debug_hint(
    monkeypatch: pytest.MonkeyPatch, error: BaseException, fragment: str
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("collc.cli.topo.export", broken)
    result = run("topo", "export", "dgx-a100")
    assert_refused(result, fragment, "rerun with `collc --debug")
    assert len(result.output.splitlines()) == 2  # the line and its hint
    debug = run("--debug", "topo", "export", "dgx-a100")
    assert debug.exception is error


def test_a_binary_topology_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_bytes(b"nodes: [\xff\xfe]\n")
    assert_refused(run("topo", "validate", str(path)), "t.yaml:1:9: error: the file is not UTF-8 text")
    assert_refused(run("topo", "validate", str(path), "--set", "x"), "not UTF-8 text")


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        (["boxes=1e309"], "from 0 to 32768, got over 1e300"),
        (["boxes=" + "9" * 5000], "must be a number, got '9999"),
        (["boxes=2", "boxes=3"], "--set boxes is given twice"),
        (["boxes=1/0"], "must be a number"),
        (["boxes=1.5e-99999999"], "is out of range (its exponent is beyond ±1,000), got '1.5e-99999999'"),
        (["boxes=1e+999999999"], "is out of range (its exponent is beyond ±1,000)"),
    ],
)
def test_hostile_settings_are_one_short_line(settings: list[str], fragment: str) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = run("topo", "validate", "dgx-a100", *args)
    assert_refused(result, fragment)
    assert max(len(line) for line in result.output.splitlines()) < 200


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--derate", "link:b0.gpu0-b0.nvswitch=1e-99999999%"], "keeps 1e-99999999% of its bandwidth"),
        (["--derate", "link:b0.gpu0-b0.nvswitch=1.5e+99999999%"], "give more than 0 % and at most 100 %"),
    ],
)
def test_a_derating_with_a_huge_exponent_is_refused_at_once(args: list[str], fragment: str) -> None:
    assert_refused(run("topo", "validate", "dgx-a100", *args), fragment)


def test_an_oversubscription_with_a_huge_exponent_is_refused_at_once() -> None:
    nccl_xml = str(Path(__file__).parent / "fixtures" / "import" / "dgx-a100-nccl-topo.xml")
    result = run("topo", "import", nccl_xml, "--boxes", "2", "--oversubscription", "1e-99999999")
    assert_refused(result, "--oversubscription 1e-99999999 is outside 1 to 1024")


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (["bound"], []),
        (["simulate"], []),
        (["topo", "show"], []),
        (["compile"], ["-o", "x.xml"]),
        (["diff"], ["dgx1"]),
    ],
)
def test_a_topology_argument_that_is_a_directory_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: list[str], after: list[str]
) -> None:
    """A directory named like a topology file was "neither a topology file nor a preset"."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fabric.yaml").mkdir()
    (tmp_path / "a-file").write_text("x")
    assert_refused(run(*before, "fabric.yaml", *after), "'fabric.yaml' is a directory, not a topology file")
    assert_refused(run(*before, "a-file/t.yaml", *after), "'a-file/t.yaml': a-file is not a directory")
    assert_refused(run(*before, "", *after), "the topology is an empty name")  # was "'' is a directory"


def test_no_command_writes_over_a_file_it_reads(tmp_path: Path) -> None:
    """``-o`` naming the input (by any path to the same file) is refused before any work, and the
    input is left as it was: compile, topo export, simulate --plot, topo import."""
    fabric = tmp_path / "fabric.yaml"
    fabric.write_text(TWO_GPUS.replace("BW", "100"))
    schedule = tmp_path / "ring.xml"
    schedule.write_text(ring_allgather_xml(2))
    dump = tmp_path / "dump.xml"
    dump.write_text("<system version='1'></system>")
    (tmp_path / "alias.yaml").symlink_to(fabric)
    commands = [
        ("compile", str(fabric), "-o", str(fabric)),
        ("compile", str(tmp_path / "alias.yaml"), "-o", str(fabric)),
        ("topo", "export", str(fabric), "-o", str(fabric)),
        ("simulate", str(fabric), str(schedule), "--plot", str(schedule)),
        ("topo", "import", str(dump), "-o", str(dump)),
    ]
    for command in commands:
        before = {path: path.read_text() for path in (fabric, schedule, dump)}
        assert_refused(run(*command), "is also this command's input", "write to another file")
        assert {path: path.read_text() for path in before} == before


def test_a_second_gpu_selection_is_refused_not_silently_taken() -> None:
    assert_refused(run("bound", "dgx-a100", "--gpus", "0-3", "--gpus", "4-7"), "--gpus is given 2 times")


@pytest.mark.parametrize(
    ("size", "fragment"),
    [("1.5", "not a whole number of bytes"), ("1.0005KB", "not a whole number of bytes")],
)
def test_a_size_that_is_no_whole_number_of_bytes_is_refused(size: str, fragment: str) -> None:
    assert_refused(run("simulate", "dgx-a100", "--sizes", size), fragment)
