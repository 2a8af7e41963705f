"""Benchmark `collc compile` end to end: load, solve, lower and simulate the k candidates, choose the
size range by simulation, verify, write XML.

Each case runs in a fresh subprocess running the real CLI (`collc compile`), so the figure includes
the Python start-up a user pays, and separately in-process with the phases timed. Targets:
dgx-a100 2 boxes allreduce <= 3 s, mi250 2 boxes allreduce with auto k <= 10 s (the event simulation of
the candidates and of the size grid is most of it).
Usage: .venv/bin/python scripts/bench_compile.py [--only NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from collc.compile import CompileOptions, compile_schedule
from collc.topology import load

CASES = [  # (preset, boxes, collective, runtime or None, target seconds or None)
    ("dgx-a100", 2, "allreduce", None, 3.0),
    ("mi250", 2, "allreduce", None, 10.0),
    ("dgx-a100", 2, "allgather", None, None),
    ("dgx-h100-rail", 4, "allreduce", None, None),
    ("dgx-a100", 4, "allreduce", None, None),
]


def cli_seconds(name: str, boxes: int, coll: str, runtime: str | None) -> float:
    """Wall time of the `collc compile` command in a subprocess (timeout 300 s)."""
    collc = Path(sys.executable).with_name("collc")
    with tempfile.TemporaryDirectory() as directory:
        command = [str(collc), "compile", name, "--set", f"boxes={boxes}", "--coll", coll]
        command += ["-o", str(Path(directory) / "out.xml")] + (["--runtime", runtime] if runtime else [])
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, timeout=300)
        return time.perf_counter() - start


def in_process(name: str, boxes: int, coll: str, runtime: str | None) -> str:
    topology = load(name, {"boxes": str(boxes)})
    start = time.perf_counter()
    result = compile_schedule(topology, CompileOptions(coll=coll, runtime=runtime))
    total = time.perf_counter() - start
    solve = result.solution.stats.total_seconds
    used = result.lowered.usage
    large = result.predicted[-1]
    return (
        f"in-process {total:5.2f} s (solve {solve:.2f} s), k={result.solution.forest.k}, "
        f"{used.total_steps} steps, {used.max_tbs} tbs/GPU, simulated {large.algbw or 0:.1f} GB/s at "
        f"{large.nbytes >> 20} MiB (bound {float(result.bound_algbw):.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only cases of this preset")
    args = parser.parse_args()
    for name, boxes, coll, runtime, target in CASES:
        if args.only and name != args.only:
            continue
        seconds = cli_seconds(name, boxes, coll, runtime)
        verdict = (
            "" if target is None else f"  target <= {target:.0f} s: {'PASS' if seconds <= target else 'MISS'}"
        )
        print(f"{name} x{boxes} {coll:13s} CLI {seconds:5.2f} s{verdict}", flush=True)
        print(f"    {in_process(name, boxes, coll, runtime)}", flush=True)


if __name__ == "__main__":
    main()
