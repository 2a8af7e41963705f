"""Benchmark `collc compile --bundle`: what a deployed bundle serves at each size, next to the runtime.

Run: ``.venv/bin/python scripts/bench_bundle.py [preset:boxes ...] [--baseline REV]``. For every preset
up to 32 GPUs (or the ones named) it compiles a bundle through the CLI (every collective, every
protocol) and, for each collective at 1 MiB, 64 MiB and 1 GiB, prints the file the runtime would
select there (its protocol, and the NCCL_BUFFSIZE its name records), that file's simulated algbw, the
runtime's best ring/tree, and their ratio ("-": no file takes the size, the runtime serves it).
With ``--baseline REV`` the bundle of revision REV (its src/ extracted with `git archive`) is compiled
too, and its selected file and the ratio of what the two bundles deliver at each size (the runtime's
figure where a bundle has no file) are printed. Both bundles are simulated by this revision's model,
so only the files differ. The closing lines count, over two nccl-tests sweeps (``-f 2``), the calls
each bundle's files take and the geometric mean of what the calls get (the file's algbw, else the
runtime's) over the runtime's best: the powers of two from 4 KiB to 4 GiB, the sizes bundles are
planned on, and the sizes half-way between (``-b 6K -e 3G``: 6 KiB, 12 KiB, ... 3 GiB), as a framework
calls with any size.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_compile import baseline_tree
from collc.cli.simulate import deployed_files
from collc.compile.outlook import CallOutlook, directory_outlook
from collc.msccl.program import recorded_buffer
from collc.predict.model import TopologyModel
from collc.sizes import format_size
from collc.topology import load

CASES = ["dgx-a100:1", "dgx-a100:2", "dgx-a100:4", "mi250:1", "mi250:2", "dgx-h100:2", "mi300x:4", "dgx1:1"]
SIZES = (1 << 20, 1 << 26, 1 << 30)
#: the sizes the closing lines count: nccl-tests sweeps with -f 2 over the powers of two from 4 KiB to
#: 4 GiB, and over the sizes half-way between them from 6 KiB to 3 GiB
SWEEPS = {
    "4KiB-4GiB": tuple(1 << exponent for exponent in range(12, 33)),
    "6KiB-3GiB": tuple(3 << exponent for exponent in range(11, 31)),
}
#: every size simulated: the table's and both sweeps'
SIMULATED = sorted({*SIZES, *(size for sizes in SWEEPS.values() for size in sizes)})
COLLECTIVES = ("allreduce", "allgather", "reducescatter")


def compile_bundle(spec: str, directory: Path, src: Path | None) -> float:
    """Run `collc compile PRESET --set boxes=N --bundle DIR` (REV's CLI with ``src``); its wall time."""
    preset, _, boxes = spec.partition(":")
    command = [sys.executable, "-c", "from collc.cli import main; main()", "compile", preset]
    command += ["--set", f"boxes={boxes or 1}", "--bundle", str(directory)]
    env = {**os.environ, **({"PYTHONPATH": str(src)} if src else {})}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def served(spec: str, directory: Path) -> tuple[dict[tuple[str, int], CallOutlook], dict[str, str]]:
    """Per collective and size: the bundle's file the runtime selects (`collc simulate TOPO DIR`); and
    each file's label, its protocol with the NCCL_BUFFSIZE a Simple file's name records."""
    preset, _, boxes = spec.partition(":")
    topology = load(preset, {"boxes": boxes or "1"})
    files = deployed_files(str(directory), topology, None)
    runtime = topology.metadata.runtime or "msccl-executor"
    model = TopologyModel(topology)
    rows = {
        (coll, row.nbytes): row
        for coll in COLLECTIVES
        for row in directory_outlook(model, files, coll, SIMULATED, runtime)
    }
    labels = {
        item.name: item.algo.proto
        + (f"@{format_size(buffer)}" if (buffer := recorded_buffer(item.algo.name)) else "")
        for item in files
    }
    return rows, labels


def delivered(row: CallOutlook) -> float:
    """What the call gets: the file's algbw where a file takes it, else the runtime's best."""
    return row.algbw if row.algbw is not None else row.vendor_algbw


def cell(row: CallOutlook, files: dict[str, str]) -> str:
    """The file (as protocol and buffer) and its algbw, or dashes where the runtime serves the call."""
    if row.file is None or row.algbw is None:
        return f"{'-':>12} {'-':>7}"
    return f"{files[row.file]:>12} {row.algbw:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", default=CASES, help="preset:boxes")
    parser.add_argument("--baseline", metavar="REV", help="also compile REV's bundle and print the ratio")
    args = parser.parse_args()
    header = f"{'preset':16} {'coll':14} {'size':>6} {'file':>12} {'collc':>7} {'vendor':>7} {'c/vendor':>8}"
    if args.baseline:
        header += f" | {args.baseline + ' file':>12} {'collc':>7} {'new/old':>7}"
    print(header)
    counts = {(side, sweep): 0 for side in ("new", "old") for sweep in SWEEPS}
    logs: dict[tuple[str, str], list[float]] = {key: [] for key in counts}
    with tempfile.TemporaryDirectory() as scratch:
        src = baseline_tree(args.baseline, Path(scratch)) if args.baseline else None
        for spec in args.cases:
            new_dir, old_dir = Path(scratch) / f"{spec}-new", Path(scratch) / f"{spec}-old"
            seconds = compile_bundle(spec, new_dir, None)
            now, now_files = served(spec, new_dir)
            if src is not None:
                old_seconds = compile_bundle(spec, old_dir, src)
                before, before_files = served(spec, old_dir)
            for coll in COLLECTIVES:
                for size in SIZES:
                    row = now[(coll, size)]
                    ratio = f"{row.algbw / row.vendor_algbw:8.3f}" if row.algbw is not None else f"{'-':>8}"
                    line = f"{spec:16} {coll:14} {format_size(size):>6} {cell(row, now_files)}"
                    line += f" {row.vendor_algbw:7.1f} {ratio}"
                    if src is not None:
                        old = before[(coll, size)]
                        line += f" | {cell(old, before_files)} {delivered(row) / delivered(old):7.3f}"
                    print(line, flush=True)
            for side, table in (("new", now), ("old", before if src is not None else {})):
                for (_, size), row in table.items():
                    for sweep, sizes in SWEEPS.items():
                        if size in sizes:
                            counts[(side, sweep)] += row.file is not None
                            logs[(side, sweep)].append(math.log(delivered(row) / row.vendor_algbw))
            timing = f"{spec}: bundle compiled in {seconds:.0f} s"
            if src is not None:
                timing += f" ({args.baseline}: {old_seconds:.0f} s)"
            print(timing, flush=True)
    for sweep in SWEEPS:
        for side in ("new", "old") if args.baseline else ("new",):
            name = "this revision" if side == "new" else args.baseline
            taken, calls = counts[(side, sweep)], logs[(side, sweep)]
            print(
                f"{name}: of the calls of a {sweep} sweep (-f 2, every preset and collective), a bundle "
                f"file takes {taken} of {len(calls)}; delivered / runtime's best, geometric mean "
                f"{math.exp(sum(calls) / len(calls)):.3f}"
            )


if __name__ == "__main__":
    main()
