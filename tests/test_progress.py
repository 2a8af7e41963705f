"""Progress: drawn on a terminal only; the stages report through the callback they are given."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from collc.compile import CompileOptions, compile_schedule
from collc.predict.model import TopologyModel
from collc.predict.params import PROTOCOLS
from collc.progress import silent, terminal_progress
from collc.topology import load
from collc.verify import verify


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def recorder() -> tuple[list[tuple[str, int, int | None]], object]:
    calls: list[tuple[str, int, int | None]] = []
    return calls, lambda stage, done, total: calls.append((stage, done, total))


def test_a_terminal_gets_bars_naming_the_stage():
    stream = Terminal()
    with terminal_progress(stream=stream) as report:
        assert report is not silent
        report("verify: one call", 3, 10)
    assert "verify: one call" in stream.getvalue()


def test_json_and_pipes_get_no_progress():
    for as_json, stream in ((True, Terminal()), (False, io.StringIO())):
        with terminal_progress(as_json, stream=stream) as report:
            assert report is silent
            report("compile: lower", 1, None)
        assert stream.getvalue() == ""


def test_compile_reports_its_steps_and_verify_its_threadblocks():
    calls, report = recorder()
    result = compile_schedule(load("dgx-h100", {}), CompileOptions(coll="allgather", k=1), report)
    stages = [stage for stage, _, _ in calls]
    assert stages[0] == "compile: bound" and stages[-1] == "compile: verify"
    assert {"compile: forest", "compile: lower", "compile: choose", "compile: range"} <= set(stages)
    assert [done for _, done, _ in calls] == list(range(len(calls)))  # steps done so far
    calls.clear()
    verify(result.algorithm, topology=result.topology, progress=report)
    threadblocks = sum(len(gpu.tbs) for gpu in result.algorithm.gpus)
    stages = {stage for stage, _, _ in calls}
    assert stages and all(stage.startswith("verify: ") for stage in stages)
    races = {stage for stage in stages if stage.startswith("verify: race checks")}
    assert races  # the race checks are decided after the run, group of ranks by group
    for stage in stages:
        reports = [(done, total) for name, done, total in calls if name == stage]
        if stage in races:  # a report per group decided, the last when all are
            assert [done for done, _ in reports] == list(range(1, len(reports) + 1))
            assert reports[-1][0] == reports[-1][1]
        else:  # each simulated case starts at none finished and ends with all of them
            assert reports[0] == (0, threadblocks) and reports[-1] == (threadblocks, threadblocks)


def test_a_sweep_reports_each_size():
    calls, report = recorder()
    model = TopologyModel(load("dgx-h100", {}))
    model.sweep("allgather", [2**20, 2**30], PROTOCOLS["Simple"], progress=report)
    assert calls == [("simulate: sizes", 0, 2), ("simulate: sizes", 1, 2), ("simulate: sizes", 2, 2)]


def test_piped_commands_print_no_progress(tmp_path: Path):
    output = tmp_path / "allgather.xml"
    collc = [sys.executable, "-c", "from collc.cli import main; main()"]
    compiled = subprocess.run(
        [*collc, "compile", "dgx-h100", "--coll", "allgather", "--k", "1", "-o", str(output)],
        capture_output=True,
        text=True,
        check=True,
    )
    verified = subprocess.run([*collc, "verify", str(output)], capture_output=True, text=True, check=True)
    simulated = subprocess.run(
        [*collc, "simulate", "dgx-h100", str(output), "--sizes", "1MiB,1GiB"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert compiled.stderr == verified.stderr == simulated.stderr == ""
    outputs = compiled.stdout + verified.stdout + simulated.stdout
    assert "\x1b" not in outputs  # no terminal control sequences
