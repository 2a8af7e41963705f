"""Solver benchmark (`make bench`): the whole pipeline from preset YAML to a checked forest.

Per topology it prints the time of each phase (load, bound, switch removal, packing, mapping, check),
the max-flow calls per phase, the peak resident memory, the number of trees, and the solver's
targets with PASS/MISS. Each case runs in its own subprocess with a timeout, so one slow case cannot
hang the benchmark (a timeout counts as MISS).

    python scripts/bench_solver.py                 # every case
    python scripts/bench_solver.py --only a100     # cases whose label contains "a100"
    python scripts/bench_solver.py --large         # also 128-GPU mi250 and dgx-a100 (exact packing: ~30 s)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    preset: str
    boxes: int
    k: int | None  # None: auto (smallest exact) k
    target_s: float | None  # the target for the whole pipeline, None: report only
    timeout_s: float

    @property
    def label(self) -> str:
        return f"{self.preset} x{self.boxes} " + ("auto k" if self.k is None else f"k={self.k}")


CASES = [
    Case("dgx-a100", 2, None, 0.2, 60),
    Case("mi250", 2, None, 1.0, 60),
    Case("dgx-a100", 4, None, None, 120),
    Case("mi250", 4, None, None, 300),
    Case("dgx-a100", 8, 1, 5.0, 300),
    Case("dgx-h100-rail", 16, None, 30.0, 600),
    Case("dgx-h100-rail", 32, None, None, 600),
    Case("dgx-h100-rail", 64, None, None, 900),
    Case("dgx-h100-rail", 128, None, None, 1800),
]
LARGE = [Case("mi250", 8, None, None, 1800), Case("dgx-a100", 16, 1, None, 1800)]


def run_case(preset: str, boxes: int, k: int | None) -> dict:
    """Solve one case in this process and return its figures."""
    from collc.solver import solve
    from collc.topology import load

    start = time.perf_counter()
    topology = load(preset, {"boxes": str(boxes)})
    loaded = time.perf_counter() - start
    solution = solve(topology, k=k)
    stats = solution.stats
    return {
        "seconds": {"load": loaded, **stats.seconds},
        "total": time.perf_counter() - start,
        "calls": stats.max_flow_calls,
        "peak_mib": stats.peak_rss_bytes / 2**20,
        "gpus": topology.num_gpus,
        "k": solution.forest.k,
        "trees": len(solution.forest.trees),
        "logical_trees": stats.logical_trees,
        "algbw": float(solution.forest.allgather_algbw),
        "height": max(tree.height() for tree in solution.forest.trees),
        "orbits": stats.packing_orbits,
    }


def report(case: Case, result: dict | None, error: str | None) -> bool:
    """Print one case; return whether it met its target."""
    if result is None:
        print(f"{case.label:28s} MISS  ({error})")
        return False
    verdict = "" if case.target_s is None else ("PASS" if result["total"] <= case.target_s else "MISS")
    target = "report only" if case.target_s is None else f"target <= {case.target_s:g} s"
    print(
        f"{case.label:28s} {verdict:4s}  total {result['total']:.3f} s ({target}); N={result['gpus']} "
        f"k={result['k']} algbw {result['algbw']:.3f} GB/s; {result['trees']} trees "
        f"({result['logical_trees']} logical, grown for {result['orbits']} roots), "
        f"max height {result['height']}; "
        f"peak RSS {result['peak_mib']:.0f} MiB"
    )
    phases = ", ".join(f"{name} {seconds:.3f}" for name, seconds in result["seconds"].items())
    calls = ", ".join(f"{name} {count}" for name, count in result["calls"].items())
    print(f"{'':28s}       phases (s): {phases}")
    print(f"{'':28s}       max-flow calls: {calls}")
    return verdict != "MISS"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the cases whose label contains this text")
    parser.add_argument("--large", action="store_true", help="also run 128-GPU mi250 and dgx-a100")
    parser.add_argument("--case", nargs=3, metavar=("PRESET", "BOXES", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        preset, boxes, k = args.case
        print(json.dumps(run_case(preset, int(boxes), None if k == "auto" else int(k))))
        return 0
    cases = CASES + (LARGE if args.large else [])
    ok = True
    for case in cases:
        if args.only and args.only not in case.label:
            continue
        command = [sys.executable, __file__, "--case", case.preset, str(case.boxes), str(case.k or "auto")]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=case.timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            ok &= report(case, None, f"timed out after {case.timeout_s:g} s")
            continue
        if done.returncode != 0:
            ok &= report(case, None, done.stderr.strip().splitlines()[-1] if done.stderr else "failed")
            continue
        ok &= report(case, json.loads(done.stdout.strip().splitlines()[-1]), None)
    print("all targets met" if ok else "some targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
