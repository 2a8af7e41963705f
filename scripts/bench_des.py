"""Benchmark the event simulation (``collc.predict.des``): one call of 1 GiB, Simple, of the file that
`collc compile` writes, for programs of 8 to 128 GPUs.

Targets: a 32-GPU program simulates in at most 5 s, so that candidates (k, instances, buffer sizes) can
be compared by simulation; a 128-GPU program in at most 30 s (issue "compile at 1,024 GPUs"). Every
program is compiled here, written to a file, and simulated in a child process that reads it back
(the harness of both sides of a comparison is the same): the child loads the compiled loop with one
small call first, then times the 1 GiB call. Wall time depends on the machine's load; the child's CPU
time is printed too, and the targets are checked against it.

With ``--baseline REV`` each file is also simulated by revision REV (its src/ extracted with `git
archive`, same virtualenv) in the same run: its CPU time, the ratio now / then, and whether the two
predicted the same time to the last bit.
Usage: .venv/bin/python scripts/bench_des.py [preset:boxes:collective ...] [--baseline REV]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_compile import baseline_tree
from collc.compile import CompileOptions, compile_schedule
from collc.msccl.reader import read_xml
from collc.msccl.writer import to_xml
from collc.predict.des import ProgramCost
from collc.predict.network import Network
from collc.predict.params import PROTOCOLS
from collc.topology import load

CASES = [
    ("dgx-a100", 1, "allreduce"),
    ("dgx-a100", 2, "allreduce"),
    ("mi250", 1, "allreduce"),
    ("dgx-a100", 4, "allgather"),
    ("dgx-a100", 4, "reducescatter"),
    ("dgx-a100", 4, "allreduce"),
    ("dgx-h100-rail", 4, "allreduce"),
    ("mi250", 2, "allreduce"),
    ("dgx-h100-rail", 16, "allreduce"),
]
TARGETS_S = {32: 5.0, 128: 30.0}  # GPUs -> CPU seconds of the 1 GiB call
NBYTES = 2**30


def _cases(names: list[str]) -> list[tuple[str, int, str]]:
    if not names:
        return CASES
    return [(name, int(boxes), coll) for name, boxes, coll in (arg.split(":") for arg in names)]


def child(preset: str, boxes: int, path: str) -> None:
    """Simulate the file at ``path`` on the preset at 1 GiB; print its wall, CPU and predicted time."""
    algo = read_xml(Path(path).read_text())
    cost = ProgramCost(Network.of(load(preset, {"boxes": str(boxes)})), algo)
    proto = PROTOCOLS["Simple"]
    cost.time_us(algo.coll, 2**10, proto)  # loads the compiled loop (compiles it on a first run)
    wall, cpu = time.perf_counter(), time.process_time()
    predicted = cost.time_us(algo.coll, NBYTES, proto)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    iterations = cost.iterations(NBYTES, proto)[0]
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "time_us": repr(predicted), "iterations": iterations}))


def simulated(preset: str, boxes: int, path: Path, src: Path | None) -> dict[str, object]:
    """:func:`child` run in a fresh process, with REV's sources (``src``) or this revision's."""
    env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {})}
    command = [sys.executable, __file__, "--child", preset, str(boxes), str(path)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", metavar="preset:boxes:collective")
    parser.add_argument("--baseline", metavar="REV", help="also simulate with REV and print the ratio")
    parser.add_argument("--child", nargs=3, metavar=("PRESET", "BOXES", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    header = f"{'program':<34} {'GPUs':>4} {'tbs':>5} {'steps':>6} {'iters':>5} {'wall s':>7} {'cpu s':>6}"
    if args.baseline:
        header += f" {args.baseline + ' cpu s':>14} {'now/then':>8} {'same':>4}"
    print(header + "  target", flush=True)
    worst: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        src = baseline_tree(args.baseline, Path(scratch)) if args.baseline else None
        for name, boxes, collective in _cases(args.cases):
            topology = load(name, {"boxes": str(boxes)})
            algo = compile_schedule(topology, CompileOptions(coll=collective)).algorithm
            path = Path(scratch) / f"{name}-{boxes}-{collective}.xml"
            path.write_text(to_xml(algo))
            now = simulated(name, boxes, path, None)
            steps = sum(len(tb.steps) for gpu in algo.gpus for tb in gpu.tbs)
            tbs = sum(len(gpu.tbs) for gpu in algo.gpus)
            label = f"{name} x{boxes} {collective}"
            line = f"{label:<34} {algo.ngpus:>4} {tbs:>5} {steps:>6} {now['iterations']:>5} "
            line += f"{now['wall_s']:>7.2f} {now['cpu_s']:>6.2f}"
            if src is not None:
                then = simulated(name, boxes, path, src)
                same = "yes" if then["time_us"] == now["time_us"] else "NO"
                line += f" {then['cpu_s']:>14.2f} {now['cpu_s'] / then['cpu_s']:>8.2f} {same:>4}"
            target = TARGETS_S.get(algo.ngpus)
            if target is not None:
                worst[algo.ngpus] = max(worst.get(algo.ngpus, 0.0), float(now["cpu_s"]))
                line += f"  <= {target:.0f} s"
            print(line, flush=True)
    for gpus, seconds in sorted(worst.items()):
        target = TARGETS_S[gpus]
        verdict = "met" if seconds <= target else "NOT met"
        print(f"slowest {gpus}-GPU program: {seconds:.2f} s of CPU time; target {target:.0f} s {verdict}")


if __name__ == "__main__":
    main()
