"""Mutated inputs through the CLI: never a traceback, exit 0/1/2, one error line, within the time bound.

Hypothesis mutates the shipped presets and a small MSCCL XML schedule — single bytes (control
characters, NUL, bytes that are not UTF-8), whole lines (deleted, repeated, swapped, re-indented) and
values (huge, tiny, infinite, deeply nested, over Python's digit limit) — and runs the commands in
process with click's runner. Whatever the input, a command must end with exit 0 (accepted), 1 (an
invalid schedule) or 2 (bad input) and, when it fails, exactly one ``error:`` line, no traceback, and
well within :data:`TIME_LIMIT_S`: the limits of :mod:`collc.input_limits` are what bound the time.
"""

from __future__ import annotations

import re
import time

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.cli import main
from collc.topology.presets import presets_dir
from ring_schedule import ring_allgather_xml

TIME_LIMIT_S = 30
#: the bound is solved only for mutated topologies this small (bigger ones are valid but slow to solve)
SOLVE_UP_TO_GPUS = 64
FUZZ = settings(
    max_examples=75,
    deadline=None,
    derandomize=True,  # the same examples in every run: CI never flakes on a new one
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

PRESETS = sorted(presets_dir().glob("*.yaml"))
HOSTILE_NUMBERS = [
    "0",
    "-1",
    "1e309",
    "1.0e+309",
    "1e308",
    "1e-300",
    "0.000001",
    "1000000",
    "'1/997'",
    "'999999.999999'",
    ".inf",
    ".nan",
    "9" * 5000,
    "1000000",
    "2**64",
    "((2**64)**64)**64",
    "max(1)",
    "min(3)",
    "1/0",
    "(" * 300 + "1" + ")" * 300,
    "-" * 500 + "1",
    "[" * 1500,
    "*a",
    "&a [*a]",
    "'gpu{i}'",
    "''",
    "\x00",
    "\x1b[0m",
]
HOSTILE_ATTRIBUTES = [
    "2147483647",
    "-2147483649",
    "99999999999999999999",
    "1" * 5000,
    "0x10",
    "010",
    "",
    "-1",
    "4096",
    "1048577",
    "nan",
    "Simple\x00",
]


def _mutate_bytes(data: st.DataObject, text: bytes) -> bytes:
    position = data.draw(st.integers(0, max(len(text) - 1, 0)))
    action = data.draw(st.sampled_from(["replace", "delete", "duplicate", "insert"]))
    if action == "replace":
        byte = data.draw(st.sampled_from([0x00, 0x07, 0x1B, 0x7F, 0x80, 0xFF, 0x09, 0x22, 0x3C, 0x5B]))
        return text[:position] + bytes([byte]) + text[position + 1 :]
    length = data.draw(st.integers(1, 200))
    if action == "delete":
        return text[:position] + text[position + length :]
    if action == "duplicate":
        chunk = text[position : position + length]
        return text[:position] + chunk * data.draw(st.integers(2, 50)) + text[position:]
    return text[:position] + data.draw(st.binary(min_size=1, max_size=20)) + text[position:]


def _mutate_lines(data: st.DataObject, text: bytes) -> bytes:
    lines = text.split(b"\n")
    first = data.draw(st.integers(0, len(lines) - 1))
    second = data.draw(st.integers(0, len(lines) - 1))
    action = data.draw(st.sampled_from(["delete", "repeat", "swap", "indent", "dedent"]))
    if action == "delete":
        del lines[first]
    elif action == "repeat":
        lines[first:first] = [lines[first]] * data.draw(st.integers(1, 100))
    elif action == "swap":
        lines[first], lines[second] = lines[second], lines[first]
    elif action == "indent":
        lines[first] = b"  " + lines[first]
    else:
        lines[first] = lines[first][2:]
    return b"\n".join(lines)


def _mutate_values(data: st.DataObject, text: bytes, pattern: bytes, hostile: list[str]) -> bytes:
    spots = list(re.finditer(pattern, text))
    if not spots:
        return text
    spot = data.draw(st.sampled_from(spots))
    value = data.draw(st.sampled_from(hostile)).encode("utf-8")
    return text[: spot.start(1)] + value + text[spot.end(1) :]


def _mutated(data: st.DataObject, text: bytes, pattern: bytes, hostile: list[str]) -> bytes:
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["bytes", "lines", "values", "values"]))
        if kind == "bytes":
            text = _mutate_bytes(data, text)
        elif kind == "lines":
            text = _mutate_lines(data, text)
        else:
            text = _mutate_values(data, text, pattern, hostile)
    return text


def _run(*args: str) -> Result:
    start = time.monotonic()
    result = CliRunner().invoke(main, list(args))
    elapsed = time.monotonic() - start
    assert elapsed < TIME_LIMIT_S, f"{args[:2]} took {elapsed:.1f}s"
    return result


def _check(result: Result, allowed: tuple[int, ...] = (0, 2)) -> None:
    output = result.output
    assert result.exit_code in allowed, output
    assert isinstance(result.exception, SystemExit | None), repr(result.exception)
    assert "Traceback" not in output
    if result.exit_code == 2:
        assert (
            sum(
                line.lstrip().startswith(("error:", "Error:")) or ": error:" in line
                for line in output.splitlines()
            )
            == 1
        ), output


@FUZZ
@given(data=st.data())
def test_mutated_topologies(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    preset = data.draw(st.sampled_from(PRESETS))
    text = _mutated(data, preset.read_bytes(), rb"(?m):\s+([^\s\[{,}\]#][^,}\]\n#]*)", HOSTILE_NUMBERS)
    path = tmp_path_factory.mktemp("fuzz") / "mutated.yaml"
    path.write_bytes(text)
    result = _run("topo", "validate", str(path))
    _check(result)
    gpus = re.search(r"ok: .*?: (\d+) GPUs?,", result.output)
    if gpus and int(gpus.group(1)) <= SOLVE_UP_TO_GPUS:
        _check(_run("bound", str(path)))
        _check(_run("topo", "show", str(path)))


FOUR_GPUS = """nodes:
  - {name: gpu, kind: gpu, count: 4}
  - {name: sw, kind: switch}
links:
  - {src: "gpu{i}", dst: sw, bandwidth: 100}
"""


@FUZZ
@given(data=st.data())
def test_mutated_schedules(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    text = _mutated(data, ring_allgather_xml(4).encode(), rb'="([^"]*)"', HOSTILE_ATTRIBUTES)
    folder = tmp_path_factory.mktemp("fuzz")
    schedule = folder / "mutated.xml"
    schedule.write_bytes(text)
    topology = folder / "four.yaml"
    topology.write_text(FOUR_GPUS)
    _check(_run("verify", str(schedule)), allowed=(0, 1, 2))
    _check(_run("simulate", str(topology), str(schedule), "--sizes", "1MiB"), allowed=(0, 1, 2))
