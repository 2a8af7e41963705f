"""More hostile and unusual input through the real CLI: hand-written fabrics, third-party schedules.

Each test is one input that collc used to mishandle (a traceback, a misleading figure, an unlocated
message); the fabrics and files are small and written inline so that the suite stays fast.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from collc.cli import main
from ring_schedule import ring_allgather_xml

FOUR_GPUS = """nodes:
  - {name: gpu, kind: gpu, count: 4}
  - {name: sw, kind: switch}
links:
  - {src: "gpu{i}", dst: sw, bandwidth: 100}
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def assert_one_error(result: Result, code: int, *fragments: str) -> None:
    """Exit ``code``, exactly one ``error:`` line, no traceback, and every fragment in the output."""
    output = result.output
    assert result.exit_code == code, output
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    assert sum("error:" in line for line in output.splitlines()) == 1, output
    for fragment in fragments:
        assert fragment in output, output


def write(tmp_path: Path, text: str, name: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- simulate: a file that verify rejects is not predicted --------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "fragments"),
    [
        ('  <gpu id="3"', '  <gpu id="9"', ["s.xml:", "[gpu-id]"]),
        ('cnt="1"', 'cnt="0"', ["s.xml:4:", "[cnt-range]"]),
        ('nchannels="1"', 'nchannels="0"', ["s.xml:1:", "[nchannels]"]),
    ],
)
def test_simulate_refuses_a_file_that_verify_rejects(
    tmp_path: Path, old: str, new: str, fragments: list[str]
) -> None:
    """A schedule the runtime rejects or hangs on has no time to predict: the table it used to print
    (e.g. 13,000 GB/s for a file without <gpu> elements) was a figure of nothing that can run."""
    topology = write(tmp_path, FOUR_GPUS, "four.yaml")
    schedule = write(tmp_path, ring_allgather_xml(4).replace(old, new, 1), "s.xml")
    result = run("simulate", topology, schedule, "--sizes", "1MiB")
    assert_one_error(result, 1, *fragments, "collc verify")
    assert "algbw" not in result.output
    assert run("verify", schedule).exit_code == 1


def test_simulate_says_where_a_schedule_for_other_gpus_is(tmp_path: Path) -> None:
    """A 2-GPU file on a 4-GPU fabric: the message names the file and line and how to fix it."""
    topology = write(tmp_path, FOUR_GPUS, "four.yaml")
    schedule = write(tmp_path, ring_allgather_xml(2), "s.xml")
    result = run("simulate", topology, schedule, "--sizes", "1MiB")
    assert_one_error(result, 2, "s.xml:1: error: the schedule is for 2 GPUs but 'four' has 4", "--gpus")


def test_simulate_still_predicts_a_valid_file(tmp_path: Path) -> None:
    topology = write(tmp_path, FOUR_GPUS, "four.yaml")
    schedule = write(tmp_path, ring_allgather_xml(4), "s.xml")
    result = run("simulate", topology, schedule, "--sizes", "1MiB")
    assert result.exit_code == 0, result.output
    assert "algbw" in result.output


# -- verify: what it cannot check is never "ok" -------------------------------------------------------------
def test_verify_of_an_empty_directory_is_not_a_pass(tmp_path: Path) -> None:
    """An empty MSCCL_ALGO_DIR used to exit 0 with no output: a CI gate passed having checked nothing."""
    folder = tmp_path / "algos"
    folder.mkdir()
    assert_one_error(run("verify", str(folder)), 2, "algos: the directory holds no files to verify")
    assert_one_error(run("verify", "--json", str(folder)), 2, "holds no files")


def test_verify_says_a_utf16_file_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    path.write_bytes(ring_allgather_xml(2).encode("utf-16"))
    result = run("verify", str(path))
    assert_one_error(
        result, 2, "s.xml:1:1: error: the file is not UTF-8 text (byte 0)", "re-save it as UTF-8"
    )
    assert "codec" not in result.output


# -- topo import: dumps as people save them ------------------------------------------------------------------
IMPORT_FIXTURES = Path(__file__).parent / "fixtures" / "import"


@pytest.mark.parametrize(
    ("fixture", "options"),
    [("pcie-l40s-nccl-topo.xml", []), ("dgx-a100-nvidia-smi-topo.txt", ["--gpu-model", "a100"])],
)
def test_import_reads_a_dump_saved_with_a_byte_order_mark(
    tmp_path: Path, fixture: str, options: list[str]
) -> None:
    """An editor that saves UTF-8 with a BOM used to turn an NCCL dump into 'not a topology dump'."""
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    marked.write_bytes(b"\xef\xbb\xbf" + (IMPORT_FIXTURES / fixture).read_bytes())
    assert run("topo", "import", str(IMPORT_FIXTURES / fixture), *options, "-o", str(plain)).exit_code == 0
    result = run("topo", "import", str(marked), *options, "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code == 0, result.output
    body = (tmp_path / "out.yaml").read_text().split("\n", 1)[1]  # the first line names the input file
    assert body == plain.read_text().split("\n", 1)[1]


# -- verify: an invisible character is named, not printed ----------------------------------------------------
@pytest.mark.parametrize(
    ("prefix", "fragments"),
    [
        ("\ufeff", ["s.xml:1:1:", "a byte-order mark (U+FEFF)", "without a byte-order mark"]),
        ("\x01", ["s.xml:1:1:", "got 'U+0001'"]),
    ],
)
def test_verify_names_an_invisible_stray_character(tmp_path: Path, prefix: str, fragments: list[str]) -> None:
    schedule = write(tmp_path, prefix + ring_allgather_xml(2), "s.xml")
    result = run("verify", schedule)
    assert result.exit_code == 1, result.output
    assert prefix not in result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


# -- inputs that are devices or pipes -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["topo", "import", "/dev/zero"], "/dev/zero: error: the file is a device"),
        (["verify", "/dev/zero"], "/dev/zero: error: the file is a device"),
        (["simulate", "dgx-a100", "/dev/zero", "--sizes", "1MiB"], "/dev/zero: error: the file is a device"),
        (["bound", "dgx-a100", "--gpus", "@/dev/zero"], "/dev/zero: error: the --gpus file is a device"),
    ],
)
def test_an_endless_device_is_refused_before_reading(args: list[str], fragment: str) -> None:
    """/dev/zero used to be read to the end of memory (a MemoryError, or the machine's swap)."""
    assert_one_error(run(*args), 2, fragment, "give the path of a file")


def test_a_pipe_is_read_up_to_the_limit(tmp_path: Path) -> None:
    """A pipe (``--gpus @<(...)``) still works; one that runs past the selection limit is refused."""
    pipe = tmp_path / "gpus"
    for payload, code in ((b"0\n1\n", 0), (b"a" * (2**20 + 10), 2)):
        os.mkfifo(pipe)
        writer = threading.Thread(target=_feed, args=(pipe, payload), daemon=True)
        writer.start()
        result = run("bound", "dgx-a100", "--gpus", f"@{pipe}")
        writer.join(timeout=10)
        pipe.unlink()
        assert result.exit_code == code, result.output
        if code:
            assert "the --gpus file is larger than 1 MiB" in result.output


def _feed(pipe: Path, data: bytes) -> None:
    try:
        with pipe.open("wb") as stream:
            stream.write(data)
    except BrokenPipeError:  # the reader stopped at the limit
        pass


# -- MSCCL++ plans ------------------------------------------------------------------------------------------
def test_a_plan_integer_beyond_pythons_digit_limit_is_one_located_line(tmp_path: Path) -> None:
    """5,000 digits used to end in Python's own 'Exceeds the limit (4300 digits)' advice."""
    plan = write(tmp_path, '{"name": "p", "gpus": [], "num_threads_per_block": ' + "9" * 5000 + "}", "p.json")
    result = run("verify", plan)
    assert result.exit_code == 1, result.output
    assert "p.json:1:52: error: an integer of 5,000 digits" in result.output
    assert "set_int_max_str_digits" not in result.output
    assert_one_error(run("simulate", "dgx-a100", plan, "--sizes", "1MiB"), 2, "5,000 digits")


# -- --gpus -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("selection", ["", " , "])
def test_an_empty_gpu_selection_is_refused_not_read_as_every_gpu(tmp_path: Path, selection: str) -> None:
    """``--gpus "$ALLOC"`` with an empty variable used to schedule for every GPU of the fabric."""
    topology = write(tmp_path, FOUR_GPUS, "four.yaml")
    assert_one_error(run("bound", topology, "--gpus", selection), 2, "selects nothing")


def test_verify_warns_of_an_attribute_given_twice(tmp_path: Path) -> None:
    """The runtime reads the first of two same-named attributes: an appended override never applies."""
    text = ring_allgather_xml(4).replace('ngpus="4"', 'ngpus="4" ngpus="8"', 1)
    text = text.replace('chan="0">', 'chan="0"  chan="1">', 1)  # two spaces: the reader's slow path
    result = run("verify", write(tmp_path, text, "s.xml"))
    assert (
        's.xml:1:1: warning: <algo> gives ngpus twice; the runtime reads the first (ngpus="4")'
        in result.output
    )
    assert "gives chan twice" in result.output, result.output
    assert result.exit_code == 0, result.output


def test_simulate_refuses_a_plan_that_verify_rejects(tmp_path: Path) -> None:
    """An MSCCL++ plan with 0 threads per block used to be predicted like a valid one."""
    plan = '{"name": "p", "collective": "allgather", "protocol": "Simple", "inplace": false, "gpus": [], '
    plan += '"num_threads_per_block": 0, "use_double_scratch_buffer": false, "min_message_size": 0, '
    plan += '"max_message_size": 0, "buffer_alignment": 16, "reuse_resources": false}'
    result = run("simulate", "dgx-a100", write(tmp_path, plan, "p.json"), "--sizes", "1MiB")
    assert_one_error(
        result, 1, "p.json:", "a file collc verify rejects is not simulated", "--runtime mscclpp"
    )


# -- the topology's name goes into every compiled file ------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "fragments"),
    [
        ("'a\"b<c>&d'", ["t.yaml:1:7:", 'contains " & < >']),
        ('"a\\nb"', ["t.yaml:1:7:", "contains U+000A"]),
        ('"a\\u202eb"', ["contains U+202E"]),
        ('"' + "日" * 50 + '"', ["t.yaml:1:7:", "150 bytes long; collc takes at most 128"]),
    ],
)
def test_a_topology_name_a_compiled_file_cannot_carry_is_refused(
    tmp_path: Path, name: str, fragments: list[str]
) -> None:
    """Such a name used to reach the XML writer and end compile with exit 3 ('a bug in collc'), or
    (UTF-8 over 255 bytes) to be written into a file whose name overflows the runtime's buffer."""
    topology = write(tmp_path, f"name: {name}\n" + FOUR_GPUS, "t.yaml")
    assert_one_error(run("topo", "validate", topology), 2, *fragments, "give a top-level 'name:'")


def test_import_refuses_such_a_name_up_front() -> None:
    dump = str(IMPORT_FIXTURES / "pcie-l40s-nccl-topo.xml")
    assert_one_error(run("topo", "import", dump, "--name", 'a"b'), 2, "--name: the topology name 'a\"b'")


def test_verify_counts_a_names_bytes_not_its_characters(tmp_path: Path) -> None:
    """100 CJK characters are 300 bytes: more than the runtime's 255-byte buffer."""
    text = ring_allgather_xml(2).replace('name="ring', 'name="' + "日" * 100, 1)
    assert "longer than 255 bytes" in run("verify", write(tmp_path, text, "s.xml")).output


@pytest.mark.parametrize("command", [["compile", "-o", "x.xml"], ["bound"], ["simulate"]])
def test_a_one_gpu_fabric_is_refused_naming_its_file(tmp_path, command):
    fabric = tmp_path / "one.yaml"
    fabric.write_text("nodes: [{name: g0, kind: gpu}]\nlinks: []\n")
    args = [command[0], str(fabric), *[str(tmp_path / a) if a.endswith(".xml") else a for a in command[1:]]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{fabric}: error: a collective needs at least 2 GPUs"), result.output


def test_topo_show_escapes_bidi_and_control_characters_of_a_description(tmp_path):
    """A right-to-left override in a file's free text would reorder the rest of the line."""
    fabric = tmp_path / "bidi.yaml"
    fabric.write_text(
        'name: bidi\ndescription: "safe \\u202e txet \\u0007"\n'
        "nodes: [{name: g, kind: gpu, count: 2}]\nlinks: [{src: g0, dst: g1, bandwidth: 10}]\n"
    )
    result = CliRunner().invoke(main, ["topo", "show", str(fabric)])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first == "bidi: safe \\u202e txet \\u0007", first


def test_a_reader_that_closes_stdout_early_ends_the_command_quietly():
    """`collc topo export dgx-a100 | head -1`: the pipe is closed before collc writes, which used to
    print "error: unexpected BrokenPipeError" and exit 2. Now nothing goes to stderr and the exit code
    is that of a process killed by SIGPIPE (a shell's pipefail still sees it)."""
    import subprocess
    import sys

    collc = [sys.executable, "-c", "from collc.cli import main; main()"]
    process = subprocess.Popen(
        [*collc, "topo", "export", "dgx-a100", "--set", "boxes=4", "--format", "flat"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    _, stderr = process.communicate(timeout=120)
    assert stderr == b""
    assert process.returncode == 128 + 13


def test_a_duplicate_threadblock_id_is_reported_not_crashed_on(tmp_path):
    """A rank with two threadblocks of one id (a mutated file: tb headers swapped between ranks) made
    the dependency check read one threadblock's folded steps for the other and crash with an
    IndexError. The duplicate is an error of its own; the checks keyed by threadblock id skip that rank."""
    lines = ring_allgather_xml(4).splitlines()
    start = lines.index('    <tb id="0" send="1" recv="3" chan="0">')
    shorter = [*lines[start : start + 3], "    </tb>"]  # the header and two steps: fewer than the original
    schedule = write(tmp_path, "\n".join([*lines[:start], *shorter, *lines[start:]]) + "\n", "s.xml")
    topology = write(tmp_path, FOUR_GPUS, "four.yaml")
    for args in (["verify", schedule], ["simulate", topology, schedule, "--sizes", "1MiB"]):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert "duplicate thread block id 0 on rank 0" in result.output
        assert "unexpected" not in result.output
