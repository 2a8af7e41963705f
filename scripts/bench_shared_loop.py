"""Benchmark: allreduce on numbers of GPUs that are no power of two, before and after shared loops.

Run: ``.venv/bin/python scripts/bench_shared_loop.py [preset:boxes[:gpus] ...]``. With equal shares a
file's ``nchunksperloop`` is ``N·k``, which divides no power of two when N is not one, so the runtime
never ran the file for a power-of-two count: such calls got its own ring or tree ("before"). Now the
roots share a power-of-two loop unevenly (docs/lowering.md §2) and the file serves them ("after": the
written file where its range takes the size, else the runtime). For each case and each of 1 MiB,
64 MiB and 1 GiB it prints both and their ratio, measured in the same run, the fabric's bound, and,
for reference, the equal-share file (``--align`` with N·1024) at the size nearest to it that it
serves: what a power-of-two count gives up against counts that are multiples of N·k.
"""

from __future__ import annotations

import argparse
import time

from collc.compile import CompileOptions, compile_schedule
from collc.compile.outlook import SizeOutlook
from collc.sizes import format_size
from collc.topology import load
from collc.topology.degrade import Degradation, degrade

#: (preset, boxes, GPU selection or None): three boxes of 8, and parts of one box
CASES = [
    ("dgx-a100", 3, None),
    ("dgx-h100", 3, None),
    ("mi300x", 3, None),
    ("dgx-a100", 1, "0-5"),
    ("mi250", 1, "0-11"),
    ("dgx1", 1, "0-5"),
]
SIZES = (2**20, 2**26, 2**30)


def _case(text: str) -> tuple[str, int, str | None]:
    """``preset:boxes`` or ``preset:boxes:gpus`` as typed."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].isdigit() or int(parts[1]) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not PRESET:BOXES[:GPUS] (e.g. dgx-a100:1:0-5)")
    return parts[0], int(parts[1]), parts[2] if len(parts) == 3 else None


def _delivered(row: SizeOutlook) -> float:
    """What a call of this size gets: the file where its range takes it, else the runtime's best."""
    return row.algbw if row.selected and row.algbw is not None else row.vendor_algbw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", type=_case, metavar="PRESET:BOXES[:GPUS]")
    cases = parser.parse_args().cases or CASES
    print(
        f"{'case':<24} {'size':>6} {'before':>8} {'after':>8} {'ratio':>6} {'bound':>7} "
        f"{'nchunks':>8} {'equal-share file':>24} {'s':>5}"
    )
    for name, boxes, gpus in cases:
        topology = load(name, {"boxes": str(boxes)})
        if gpus is not None:
            topology = degrade(topology, Degradation((), (), gpus))
        label = f"{name} x{boxes}" + (f" gpus {gpus}" if gpus else "") + f" ({topology.num_gpus})"
        start = time.perf_counter()
        shared = compile_schedule(topology, CompileOptions(coll="allreduce", force=True))
        equal = compile_schedule(
            topology, CompileOptions(coll="allreduce", align=topology.num_gpus * 1024, force=True)
        )
        seconds = time.perf_counter() - start
        for nbytes, row, reference in zip(SIZES, shared.predicted, equal.predicted, strict=True):
            assert row.nbytes == nbytes, "a shared loop serves every power of two from its nchunksperloop"
            before, after = row.vendor_algbw, _delivered(row) if not shared.forced else row.vendor_algbw
            aside = f"{reference.algbw:.1f} at {format_size(reference.nbytes)}"
            print(
                f"{label:<24} {format_size(nbytes):>6} {before:>8.1f} {after:>8.1f} {after / before:>6.2f} "
                f"{row.bound_algbw:>7.1f} {shared.algorithm.nchunksperloop:>8} {aside:>24} {seconds:>5.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
