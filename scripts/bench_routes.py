"""Benchmark: forests on the runtime's paths against the exact forests, on dual-socket PCIe servers.

Run: ``.venv/bin/python scripts/bench_routes.py [--boxes B ...] [--coll C ...]``. Each box is a
dual-socket PCIe server written flat, as a user would write it: per socket a PCIe switch with 4 GPUs
(32 GB/s each) and a NIC (32 GB/s to the switch, 12.5 GB/s to the top-of-rack switch), the sockets
joined by a 40 GB/s CPU link. The runtime sends a GPU's traffic to another box through its own
socket's NIC, which the exact forest's routes do not follow (docs/solver.md §10). Each case is
compiled twice in the same run: with the search's forests on the runtime's paths turned off (the
exact forests only) and as shipped. For each of 1 MiB, 64 MiB and 1 GiB it prints the written file's
simulated algbw both ways, the runtime's best (ring or tree), the bound and the ratio shipped/exact,
each compile's seconds, and the longest step of the shipped compile (``collc.compile.driver.advance``:
where ``collc serve`` can stop a compile to run another, docs/serve.md).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import yaml

from collc.compile import CompileOptions, CompileResult, driver
from collc.lowering.collector import collector_paused
from collc.msccl.program import SCHEDULED_COLLECTIVES
from collc.topology import load

BOXES = (2, 4)
SIZES = (2**20, 2**26, 2**30)


def dual_socket(boxes: int) -> dict:
    """The flat topology document of ``boxes`` dual-socket PCIe servers on one switch."""
    nodes: list[dict] = [{"name": f"b{b}g{g}", "kind": "gpu"} for b in range(boxes) for g in range(8)]
    links: list[dict] = []
    for b in range(boxes):
        for s in range(2):
            plx, cpu, nic = f"b{b}plx{s}", f"b{b}cpu{s}", f"b{b}nic{s}"
            nodes += [{"name": plx, "kind": "switch"}, {"name": cpu, "kind": "switch"}]
            nodes.append({"name": nic, "kind": "nic"})
            links += [{"src": f"b{b}g{4 * s + g}", "dst": plx, "bandwidth": 32} for g in range(4)]
            links += [{"src": plx, "dst": cpu, "bandwidth": 32}, {"src": nic, "dst": plx, "bandwidth": 32}]
            links.append({"src": nic, "dst": "tor", "bandwidth": 12.5})
        links.append({"src": f"b{b}cpu0", "dst": f"b{b}cpu1", "bandwidth": 40})
    nodes.append({"name": "tor", "kind": "switch"})
    return {"name": f"pcie-2socket-x{boxes}", "nodes": nodes, "links": links}


class Compiled(NamedTuple):
    """One compile of the benchmark and what it took."""

    result: CompileResult
    seconds: float
    longest_step: float  # seconds of the compile's longest step


def compiled(path: Path, coll: str, routed: bool) -> Compiled:
    """The compile of ``path`` for ``coll`` (forced: every size is simulated), with or without the
    forests on the runtime's paths, run step by step as a service runs it."""
    limit = driver.ROUTED_MAX_GPUS
    driver.ROUTED_MAX_GPUS = limit if routed else 0
    try:
        start = time.perf_counter()
        state, longest = driver.begin(load(path), CompileOptions(coll=coll, force=True)), 0.0
        with collector_paused():
            while state.result is None:
                step = time.perf_counter()
                driver.advance(state)
                longest = max(longest, time.perf_counter() - step)
        return Compiled(state.result, time.perf_counter() - start, longest)
    finally:
        driver.ROUTED_MAX_GPUS = limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, action="append", help="servers (repeatable; default 2 and 4)")
    parser.add_argument("--coll", action="append", choices=SCHEDULED_COLLECTIVES, help="default: all three")
    args = parser.parse_args()
    colls = args.coll or list(SCHEDULED_COLLECTIVES)
    header = f"{'fabric':18s} {'coll':14s} {'size':>6s} {'exact':>7s} {'routed':>7s} {'vendor':>7s}"
    header += f" {'bound':>7s} {'ratio':>6s} {'layout':30s} {'s exact':>8s} {'s routed':>8s}"
    print(f"{header} {'step':>5s}")
    with tempfile.TemporaryDirectory() as folder:
        for boxes in args.boxes or BOXES:
            path = Path(folder) / f"pcie-2socket-x{boxes}.yaml"
            path.write_text(yaml.safe_dump(dual_socket(boxes), sort_keys=False))
            for coll in colls:
                exact = compiled(path, coll, routed=False)
                shipped = compiled(path, coll, routed=True)
                before = {row.nbytes: row for row in exact.result.predicted}
                routed = shipped.result
                for row in routed.predicted:
                    if row.nbytes not in SIZES:
                        continue
                    old = before[row.nbytes]
                    vendor = max(row.ring_algbw, row.tree_algbw or 0.0)
                    print(
                        f"{routed.topology.name:18s} {coll:14s} {row.nbytes >> 20:>5d}M {old.algbw:7.1f} "
                        f"{row.algbw:7.1f} {vendor:7.1f} {row.bound_algbw:7.1f} {row.algbw / old.algbw:6.3f} "
                        f"{routed.solution.forest.layout:30s} {exact.seconds:8.1f} {shipped.seconds:8.1f} "
                        f"{shipped.longest_step:5.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
