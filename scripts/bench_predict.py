"""Benchmark: does the file ``collc compile`` writes beat NCCL/RCCL's own algorithms, and by how much?

Run: ``.venv/bin/python scripts/bench_predict.py [preset:boxes ...]``. For every preset up to 32 GPUs
(or the ones named), every collective and the sizes 1 MiB, 64 MiB and 1 GiB it prints the event
simulation of the written file (Simple, as compiled), the runtime's ring and tree at their best
protocol, the optimal bound, collc/bound and collc/vendor, and whether the file's size range makes the
runtime select it at that size ("no file": compile wrote none, since it wins nowhere; its figures are
those of the file ``--force`` would write). The last line counts the cases where a selected collc
file is predicted slower than the vendor's best: the target is 0. The figures are the ones
`collc compile` reports.
"""

from __future__ import annotations

import sys
import time

from collc.compile import CompileOptions, compile_schedule
from collc.predict.model import TopologyModel
from collc.predict.params import COLLECTIVES, PROTOCOLS
from collc.topology import load

CASES = [
    ("dgx-a100", 1),
    ("dgx-a100", 2),
    ("dgx-a100", 4),
    ("mi250", 1),
    ("mi250", 2),
    ("dgx-h100-rail", 2),
    ("dgx-h100-rail", 4),
    ("dgx-h100", 2),
    ("dgx-h100", 4),
    ("dgx-h200", 4),
    ("mi300x", 1),
    ("mi300x", 4),
    ("dgx1", 1),
    ("dgx1", 4),
]
SIZES = (2**20, 2**26, 2**30)
VENDOR_PROTOCOLS = ("LL", "LL128", "Simple")


def _label(nbytes: int) -> str:
    return f"{nbytes >> 30}GiB" if nbytes >= 2**30 else f"{nbytes >> 20}MiB"


def _cases(argv: list[str]) -> list[tuple[str, int]]:
    if not argv:
        return CASES
    return [(name, int(boxes)) for name, boxes in (arg.rsplit(":", 1) for arg in argv)]


def _best_algbw(predictor, collective: str, nbytes: int) -> float:
    """The baseline's algbw at its fastest protocol (the runtime tunes the protocol per size)."""
    time_us = min(predictor.time_us(collective, nbytes, PROTOCOLS[name]) for name in VENDOR_PROTOCOLS)
    return nbytes / time_us / 1000


def main() -> None:
    print(
        f"{'preset':<17} {'coll':<13} {'size':>6} {'collc':>8} {'ring':>8} {'tree':>8} {'bound':>8} "
        f"{'c/bound':>7} {'c/vendor':>8} {'selected':>8} {'s':>5}"
    )
    losses = cases = 0
    for name, boxes in _cases(sys.argv[1:]):
        model = TopologyModel(load(name, {"boxes": str(boxes)}))
        for collective in COLLECTIVES:
            start = time.perf_counter()
            # force: where compile would write no file (it wins nowhere) the figures are those of the
            # file --force writes, and it counts as not used
            result = compile_schedule(model.topology, CompileOptions(coll=collective, force=True))
            written = not result.forced
            algo = result.algorithm
            cost = model.collc(algo)
            proto = PROTOCOLS[algo.proto]
            bound = float(model.bound_algbw(collective))
            for nbytes in SIZES:
                collc = nbytes / cost.time_us(collective, nbytes, proto) / 1000
                baselines = model.baselines(collective)
                ring = _best_algbw(baselines["ring"], collective, nbytes)
                tree = _best_algbw(baselines["tree"], collective, nbytes) if "tree" in baselines else 0.0
                vendor = max(ring, tree)
                selected = written and result.byte_range.holds(nbytes)
                cases += 1
                losses += selected and collc < vendor
                print(
                    f"{name + ' x' + str(boxes):<17} {collective:<13} {_label(nbytes):>6} {collc:>8.1f} "
                    f"{ring:>8.1f} {(f'{tree:.1f}' if tree else '-'):>8} {bound:>8.1f} "
                    f"{collc / bound:>7.3f} {collc / vendor:>8.3f} "
                    f"{('yes' if selected else 'no') if written else 'no file':>8} "
                    f"{time.perf_counter() - start:>5.1f}",
                    flush=True,
                )
    print(f"{losses} of {cases} cases: a selected collc file is predicted slower than the vendor's best")


if __name__ == "__main__":
    main()
