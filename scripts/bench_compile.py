"""Benchmark `collc compile` from 16 to 1,024 GPUs: time and peak memory per stage, and how they grow.

Every case runs in a fresh child process (so its peak RSS is its own) that drives the compile stage by
stage (`collc.compile.driver.begin` / `advance`: bound, forest, lower, simulate, choose, range, verify;
the steps of a stage that runs in several are summed) and prints, per stage, the CPU seconds spent in
it and the process's peak RSS when it ended. A case that
ends with a collc error (e.g. exit 2: the fabric is beyond one file's reach) is reported with its
message and time; a case over --timeout or --memory is stopped and reported as such. The fitted
exponent is the least-squares slope of log(CPU time) over log(GPUs) of the cases that wrote a file
(CPU, not wall time: on a shared machine the wall time measures the other jobs too).
With --baseline REV, every case is also run through the CLI of revision REV (its src/ extracted with
`git archive`, same virtualenv) and through this revision's CLI, the best of --repeat runs each, and
the ratio of the two wall times is shown (both CLIs, so that the harness is the same on both sides).

Targets (issue "compile at 1,024 GPUs"): 128 GPUs <= 5 s; 1,024 GPUs <= 60 s and <= 4 GiB.
Usage: .venv/bin/python scripts/bench_compile.py [--only dgx-h100-rail] [--max-gpus 256]
           [--coll allreduce] [--timeout 600] [--memory 6GiB] [--baseline HEAD~5 [--repeat 2]]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {"dgx-h100-rail": 8, "dgx-a100": 8}  # GPUs per box
BOXES = (2, 4, 8, 16, 32, 64, 128)  # 16 .. 1,024 GPUs


@dataclass(frozen=True)
class Case:
    preset: str
    boxes: int
    coll: str

    @property
    def gpus(self) -> int:
        return self.boxes * PRESETS[self.preset]

    def argv(self) -> list[str]:
        return [self.preset, "--set", f"boxes={self.boxes}", "--coll", self.coll]


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(preset: str, boxes: int, coll: str) -> None:
    """Run one compile stage by stage; print a JSON line (the stages so far) after each stage and a
    last one with the result or the error."""
    from collc.compile.driver import CompileOptions, advance, begin, next_step
    from collc.errors import CollcError
    from collc.topology import load

    stages: list[dict[str, object]] = []
    record: dict[str, object] = {"stages": stages}

    def timed(name: str, work) -> object:
        start = time.process_time()
        value = work()
        stages.append({"stage": name, "cpu_s": time.process_time() - start, "peak_mib": peak_rss_mib()})
        print(json.dumps(record), flush=True)  # the stages so far, should the case be stopped
        return value

    try:
        topology = timed("load", lambda: load(preset, {"boxes": str(boxes)}))
        state = timed("begin", lambda: begin(topology, CompileOptions(coll=coll)))
        while state.result is None:
            name = next_step(state)
            timed(name, lambda: advance(state))
        result = state.result
        usage = result.lowered.usage
        record["result"] = (
            f"k={result.solution.forest.k}, {usage.total_steps} steps, {usage.max_tbs} tbs/GPU, "
            f"{usage.max_elements_per_rank} elements/rank, XML {len(result.xml) / 2**20:.1f} MiB"
        )
    except CollcError as error:
        record["error"] = f"exit {error.exit_code}: {error.message}"
    print(json.dumps(record), flush=True)


def limit_memory(limit: int):
    """A preexec function capping the child's address space (it fails with MemoryError, not the host)."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_case(case: Case, timeout: float, memory: int) -> dict[str, object]:
    """The child's record plus its wall time, or why it was stopped."""
    command = [sys.executable, __file__, "--child", case.preset, str(case.boxes), case.coll]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, preexec_fn=limit_memory(memory)
        )
    except subprocess.TimeoutExpired as stopped:
        output = stopped.stdout.decode() if isinstance(stopped.stdout, bytes) else stopped.stdout or ""
        lines = [line for line in output.splitlines() if line.startswith("{")]
        so_far = json.loads(lines[-1]) if lines else {}
        return {**so_far, "stopped": f"over {timeout:.0f} s", "wall_s": time.perf_counter() - start}
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"stopped": f"exit {done.returncode}: {tail[:120]}", "wall_s": wall}
    return {**json.loads(lines[-1]), "wall_s": wall}


def baseline_tree(revision: str, directory: Path) -> Path:
    """``src/`` of ``revision`` extracted under ``directory`` (for PYTHONPATH), with the presets beside it
    (``topologies/``, where an uninstalled checkout finds them)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "src", "topologies"], check=True, capture_output=True
    ).stdout
    path = directory / "archive.tar"
    path.write_bytes(archive)
    with tarfile.open(path) as tar:
        tar.extractall(directory, filter="data")
    return directory / "src"


def cli_seconds(argv: list[str], src: Path | None, timeout: float, memory: int) -> float | None:
    """Wall time of `collc compile ARGV` (REV's CLI with ``src``, else this revision's), None if it
    failed or was stopped. Exit 1 (compiled, but predicted to win at no size, so no file) is the
    same work as a written file and is timed too."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-c", "from collc.cli import main; main()", "compile", *argv]
        command += ["-o", str(Path(out) / "out.xml")]
        env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {})}
        start = time.perf_counter()
        try:
            done = subprocess.run(
                command, capture_output=True, env=env, timeout=timeout, preexec_fn=limit_memory(memory)
            )
        except subprocess.TimeoutExpired:
            return None
        return time.perf_counter() - start if done.returncode in (0, 1) else None


def best_cli_seconds(
    argv: list[str], src: Path | None, timeout: float, memory: int, repeat: int
) -> float | None:
    """The shortest of ``repeat`` wall times of :func:`cli_seconds` (a shared machine's run-to-run
    noise is 10-15 % at 128 GPUs), None if any run failed."""
    times = [cli_seconds(argv, src, timeout, memory) for _ in range(repeat)]
    return None if None in times else min(times)


def _seconds(value: float | None) -> str:
    return "did not finish" if value is None else f"{value:.1f} s"


def warm_up(src: Path | None, memory: int) -> None:
    """One small compile, not timed, so that numba's cache (``cache=True``, written beside the sources)
    holds the compiled functions: a first run compiles them, about 15 s that would go to the first
    case (of the extracted baseline, or of this revision on a fresh clone)."""
    cli_seconds(["dgx-a100", "--coll", "allgather"], src, 600.0, memory)


def exponent(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(value) over log(GPUs): value ~ GPUs^slope."""
    if len(points) < 2:
        return None
    xs = [math.log(gpus) for gpus, _ in points]
    ys = [math.log(value) for _, value in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def cpu_seconds(record: dict[str, object]) -> float:
    """The child's CPU time over all its stages."""
    return sum(float(stage["cpu_s"]) for stage in record.get("stages", []))


def describe(case: Case, record: dict[str, object], ratio: str) -> list[str]:
    head = (
        f"{case.preset} {case.gpus:5d} GPUs {case.coll:13s} cpu {cpu_seconds(record):7.1f} s "
        f"wall {record['wall_s']:7.1f} s{ratio}"
    )
    stages: dict[str, list[float]] = {}
    for stage in record["stages"]:
        cpu_peak = stages.setdefault(str(stage["stage"]), [0.0, 0.0])
        cpu_peak[0] += float(stage["cpu_s"])
        cpu_peak[1] = max(cpu_peak[1], float(stage["peak_mib"]))
    per_stage = ", ".join(f"{name} {cpu:.1f} s/{peak:.0f} MiB" for name, (cpu, peak) in stages.items())
    outcome = record.get("result") or record.get("error") or f"STOPPED: {record['stopped']}"
    return [f"{head}  {outcome}", f"    cpu/peak RSS per stage: {per_stage or 'none finished'}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, metavar=("PRESET", "BOXES", "COLL"), help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=sorted(PRESETS), help="run only this preset")
    parser.add_argument("--coll", default="allreduce")
    parser.add_argument("--min-gpus", type=int, default=16)
    parser.add_argument("--max-gpus", type=int, default=1024)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    parser.add_argument("--memory", type=float, default=6.0, help="GiB of address space per case")
    parser.add_argument(
        "--baseline", metavar="REV", help="also time REV's CLI and this revision's and print the ratio"
    )
    parser.add_argument("--repeat", type=int, default=1, help="CLI runs per revision, the best one counts")
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    memory = int(args.memory * 2**30)
    with tempfile.TemporaryDirectory() as scratch:
        src = baseline_tree(args.baseline, Path(scratch)) if args.baseline else None
        for tree in (None, src) if src else (None,):
            warm_up(tree, memory)
        for preset in [args.only] if args.only else sorted(PRESETS):
            written: list[tuple[int, float]] = []
            for boxes in BOXES:
                case = Case(preset, boxes, args.coll)
                if not args.min_gpus <= case.gpus <= args.max_gpus:
                    continue
                record = run_case(case, args.timeout, memory)
                ratio = ""
                if src is not None:
                    now, before = (
                        best_cli_seconds(case.argv(), tree, args.timeout, memory, args.repeat)
                        for tree in (None, src)
                    )
                    ratio = f" (CLI {_seconds(now)}, {args.baseline}'s CLI {_seconds(before)}" + (
                        ")" if now is None or before is None else f", ratio {now / before:.2f})"
                    )
                print("\n".join(describe(case, record, ratio)), flush=True)
                if "result" in record:
                    written.append((case.gpus, cpu_seconds(record)))
            slope = exponent(written)
            if slope is not None:
                print(f"{preset}: CPU time ~ GPUs^{slope:.2f} over {[gpus for gpus, _ in written]} GPUs")


if __name__ == "__main__":
    main()
