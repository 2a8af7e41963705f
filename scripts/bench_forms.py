"""Benchmark: one fabric written three ways gets schedules of the same speed.

Run: ``.venv/bin/python scripts/bench_forms.py [preset:boxes ...] [--coll C ...]``. Each case is
compiled as shipped, then from its flat export with every ``box``/``role`` deleted and every node
renamed to an opaque name (what a hand-written or imported file looks like: boxes and roles are
inferred from the graph), then from that flat file with its ranks going round the boxes (rank r in
box r mod B, a launcher's cyclic distribution, given as a ``ranks:`` list). For each collective and
each of 1 MiB, 64 MiB and 1 GiB it prints the written file's simulated algbw in each form, measured
in the same run, and the smallest ratio of a rewritten form to the shipped one. An allreduce gets
the same schedule in every form (renumbered for cyclic ranks, docs/compile.md §3); an allgather's and
a reduce-scatter's blocks follow the ranks, so their cyclic column may differ.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from collc.compile import CompileOptions, compile_schedule
from collc.msccl.program import SCHEDULED_COLLECTIVES
from collc.topology import Topology, load
from collc.topology.export import to_flat_yaml

#: (preset, boxes): the multi-box cases of scripts/bench_predict.py
CASES = [("dgx-a100", 2), ("dgx-a100", 4), ("mi250", 2), ("dgx-h100-rail", 2), ("dgx1", 4)]
SIZES = (2**20, 2**26, 2**30)


def _case(text: str) -> tuple[str, int]:
    """``preset:boxes`` as typed."""
    name, _, boxes = text.partition(":")
    if not name or not boxes.isdigit() or int(boxes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not PRESET:BOXES (e.g. dgx-a100:2)")
    return name, int(boxes)


def flat_renamed(topology: Topology) -> dict:
    """The flat document of ``topology`` with no ``box``/``role`` and opaque node names."""
    document = yaml.safe_load(to_flat_yaml(topology))
    names = {node["name"]: f"n{index}" for index, node in enumerate(document["nodes"])}
    for node in document["nodes"]:
        node.pop("box", None)
        node.pop("role", None)
        node["name"] = names[node["name"]]
    for link in document["links"]:
        link["src"], link["dst"] = names[link["src"]], names[link["dst"]]
    if "ranks" in document:
        document["ranks"] = [names[name] for name in document["ranks"]]
    document["name"] = "handwritten"
    return document


def cyclic(document: dict, topology: Topology, boxes: int) -> dict:
    """``document`` (of :func:`flat_renamed`) with rank r in box r mod ``boxes``."""
    pairs = zip(topology.nodes, document["nodes"], strict=True)  # the export keeps node order
    renamed = {node.name: entry["name"] for node, entry in pairs}
    rank_names = [renamed[gpu] for gpu in topology.ranks]
    per_box = len(rank_names) // boxes
    order = [(rank % boxes) * per_box + rank // boxes for rank in range(len(rank_names))]
    return {**document, "ranks": [rank_names[index] for index in order]}


def _speeds(topology: Topology, coll: str) -> list[float]:
    """The written file's simulated algbw at :data:`SIZES` (forced: a file is written either way)."""
    result = compile_schedule(topology, CompileOptions(coll=coll, force=True))
    by_size = {row.nbytes: row.algbw for row in result.predicted}
    return [by_size[min(by_size, key=lambda nbytes: abs(nbytes - size))] or 0.0 for size in SIZES]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", type=_case, metavar="PRESET:BOXES")
    parser.add_argument("--coll", action="append", choices=SCHEDULED_COLLECTIVES)
    arguments = parser.parse_args()
    cases, colls = arguments.cases or CASES, arguments.coll or list(SCHEDULED_COLLECTIVES)
    header = " ".join(f"{form:>8}" for form in ("shipped", "flat", "cyclic"))
    print(f"{'case':<20} {'coll':<14} {'size':>6} {header} {'worst':>6} {'s':>6}")
    with tempfile.TemporaryDirectory() as folder:
        for name, boxes in cases:
            shipped = load(name, {"boxes": str(boxes)})
            flat = flat_renamed(shipped)
            forms = [shipped]
            for form, document in (("flat", flat), ("cyclic", cyclic(flat, shipped, boxes))):
                path = Path(folder) / f"{name}-{boxes}-{form}.yaml"
                path.write_text(yaml.safe_dump(document, sort_keys=False))
                forms.append(load(path))
            for coll in colls:
                start = time.perf_counter()
                speeds = [_speeds(topology, coll) for topology in forms]
                seconds = time.perf_counter() - start
                for index, size in enumerate(SIZES):
                    base, *others = (row[index] for row in speeds)
                    worst = min(other / base for other in others) if base else float("nan")
                    print(
                        f"{f'{name} x{boxes}':<20} {coll:<14} {size >> 20:>5}M {base:>8.1f} "
                        f"{others[0]:>8.1f} {others[1]:>8.1f} {worst:>6.3f} {seconds:>6.1f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
