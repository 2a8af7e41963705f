"""Size ranges and deployable bundles.

**Ranges.** NCCL/RCCL pick their own algorithm and protocol per call, so collc should only take the sizes
where it is predicted faster than the best of NCCL's ring and tree over all protocols. For one file the
range starts at that crossover (:func:`auto_min_bytes`). A bundle covers each collective from its
crossover up with one file per protocol, splitting at the powers of two where the best protocol for collc
changes, so the ranges of one collective are disjoint (:func:`plan_ranges`).

**Priority by file name.** The executor reads the directory in sorted path order and uses the *first*
file whose collective, rank count, size range and divisibility rule match (§1.1). Within one range the
optimal file (large ``nchunksperloop``) comes first and a fallback with a small ``nchunksperloop`` after
it, so element counts the optimal file does not divide still get a collc schedule instead of NCCL's.
Names are ``NN-<coll>-<proto>-<role>.xml``; ``NN`` is the priority, so sorted order = priority order.

**Layout.** The directory holds only algorithm files (the runtime parses every regular file in it,
§1.1); ``<dir>.deploy.md`` and ``<dir>.manifest.json`` are written next to it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from collc.errors import InfeasibleError, InputError, InvariantError
from collc.fileio import atomic_write
from collc.msccl.program import Algorithm
from collc.predict.model import TopologyModel
from collc.predict.params import PROTOCOLS, Protocol
from collc.predict.sweep import Predictor, crossover_bytes
from collc.sizes import format_size

BUNDLE_PROTOCOLS = ("LL", "LL128", "Simple")
_MAX_EXPONENT = 40  # protocol choice is evaluated at 2^0 .. 2^40 bytes


@dataclass(frozen=True)
class BestOf:
    """A predictor that takes, at every size, the fastest of several (predictor, protocol) choices."""

    choices: tuple[tuple[Predictor, Protocol], ...]

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        return min(model.time_us(collective, nbytes, chosen) for model, chosen in self.choices)


def nccl_best(model: TopologyModel, collective: str) -> BestOf:
    """NCCL's own choice: the fastest of its algorithms and protocols at every size."""
    protocols = [PROTOCOLS[name] for name in BUNDLE_PROTOCOLS]
    return BestOf(
        tuple((baseline, p) for baseline in model.baselines(collective).values() for p in protocols)
    )


def auto_min_bytes(model: TopologyModel, collective: str, proto: Protocol) -> int | None:
    """``minBytes`` for one collc file: where it starts to beat NCCL's best (None: it never does)."""
    mine = BestOf(((model.forest_cost, proto),))
    return crossover_bytes(mine, {"nccl": nccl_best(model, collective)}, collective, proto)


@dataclass(frozen=True)
class SizeRange:
    """One collective's protocol over ``[min_bytes, max_bytes]`` (inclusive; ``max_bytes = 0``: unbounded)."""

    coll: str
    proto: str
    min_bytes: int
    max_bytes: int

    def describe(self) -> str:
        top = "∞" if self.max_bytes == 0 else format_size(self.max_bytes + 1)
        return f"{self.coll} {self.proto} [{format_size(self.min_bytes) if self.min_bytes else '0'}, {top})"


def _best_protocol(model: TopologyModel, collective: str, nbytes: int, protocols: Sequence[str]) -> str:
    return min(
        protocols, key=lambda name: (model.forest_cost.time_us(collective, nbytes, PROTOCOLS[name]), name)
    )


def plan_ranges(
    model: TopologyModel, collective: str, protocols: Sequence[str] = BUNDLE_PROTOCOLS
) -> list[SizeRange]:
    """Disjoint ranges, one per protocol run, from the crossover up; [] if collc never wins."""
    mine = BestOf(tuple((model.forest_cost, PROTOCOLS[name]) for name in protocols))
    start = crossover_bytes(mine, {"nccl": nccl_best(model, collective)}, collective, PROTOCOLS["Simple"])
    if start is None:
        return []
    ranges: list[SizeRange] = []
    current = _best_protocol(model, collective, max(start, 1), protocols)
    low = start
    for exponent in range(_MAX_EXPONENT + 1):
        size = 2**exponent
        if size <= start:
            continue
        best = _best_protocol(model, collective, size, protocols)
        if best != current:
            ranges.append(SizeRange(collective, current, low, size - 1))
            current, low = best, size
    ranges.append(SizeRange(collective, current, low, 0))
    check_disjoint(ranges)
    return ranges


def check_disjoint(ranges: Sequence[SizeRange]) -> None:
    """Ranges of one collective must not overlap (msccl-xml.md §1.3); a violation is a bug here."""
    by_coll: dict[str, list[SizeRange]] = {}
    for item in ranges:
        by_coll.setdefault(item.coll, []).append(item)
    for coll, items in by_coll.items():
        ordered = sorted(items, key=lambda r: r.min_bytes)
        for before, after in itertools.pairwise(ordered):
            if before.max_bytes == 0 or before.max_bytes >= after.min_bytes:
                raise InvariantError(f"overlapping {coll} ranges: {before.describe()} and {after.describe()}")


# compile(size range, fallback?) -> the program for that range (``minBytes``/``maxBytes`` already set).
CompileFn = Callable[[SizeRange, bool], Algorithm]


@dataclass(frozen=True)
class BundleFile:
    """One algorithm file of a bundle and what it serves."""

    name: str
    role: str  # "optimal" | "fallback"
    size_range: SizeRange
    nchunksperloop: int
    xml: str


def bundle_files(
    ranges: Sequence[SizeRange], compile_fn: CompileFn, to_xml: Callable[[Algorithm], str]
) -> list[BundleFile]:
    """Compile every range: the optimal file, then a smaller-``nchunksperloop`` fallback if it differs."""
    compiled: list[tuple[str, SizeRange, Algorithm]] = []
    for item in ranges:
        optimal = compile_fn(item, False)
        _check_range(optimal, item)
        compiled.append(("optimal", item, optimal))
        fallback = compile_fn(item, True)
        _check_range(fallback, item)
        if fallback.nchunksperloop < optimal.nchunksperloop:
            compiled.append(("fallback", item, fallback))
    width = max(2, len(str(len(compiled) - 1)))
    return [
        BundleFile(
            f"{index:0{width}d}-{item.coll}-{item.proto.lower()}-{role}.xml",
            role,
            item,
            algo.nchunksperloop,
            to_xml(algo),
        )
        for index, (role, item, algo) in enumerate(compiled)
    ]


def _check_range(algo: Algorithm, item: SizeRange) -> None:
    if (algo.coll, algo.proto, algo.min_bytes, algo.max_bytes) != (
        item.coll,
        item.proto,
        item.min_bytes,
        item.max_bytes,
    ):
        raise InvariantError(
            f"the program compiled for {item.describe()} says {algo.coll} {algo.proto} "
            f"[{algo.min_bytes}, {algo.max_bytes}]"
        )


RUNTIME_ENV = {
    "msccl-executor": [
        ("MSCCL_ALGO_DIR", "{dir}", "the only directory searched once set (no fallback paths)"),
        ("NCCL_MSCCL_ENABLE", "1", "the default; 0 switches MSCCL off"),
        ("MSCCL_SCHEDULER", "(unset)", "an external scheduler library would bypass the first-match rule"),
    ],
    "rccl": [
        ("MSCCL_ALGO_DIR", "{dir}", "the only directory searched once set"),
        ("RCCL_MSCCL_ENABLE", "1", "master switch"),
        ("RCCL_MSCCL_FORCE_ENABLE", "1", "needed unless the platform model enables MSCCL itself"),
        ("MSCCL_SCHEDULER", "(unset)", "an external scheduler library would bypass the first-match rule"),
    ],
}


def deploy_markdown(directory: Path, files: Sequence[BundleFile], topology_name: str, num_gpus: int) -> str:
    """How to install and enable the bundle, per runtime, and what each file serves."""
    lines = [
        f"# Deploying {directory.name} ({topology_name}, {num_gpus} GPUs)",
        "",
        f"Copy the directory `{directory.name}/` unchanged to the same path on every node. Put nothing else",
        "in it: the runtime parses every regular file there as an algorithm, and every file for this rank",
        "count is connected at communicator creation even if it is never selected.",
        "",
        "| file | collective | protocol | sizes (bytes, inclusive) | nchunksperloop | role |",
        "|---|---|---|---|---:|---|",
    ]
    for item in files:
        top = "unbounded" if item.size_range.max_bytes == 0 else str(item.size_range.max_bytes)
        lines.append(
            f"| {item.name} | {item.size_range.coll} | {item.size_range.proto} | "
            f"{item.size_range.min_bytes} – {top} | {item.nchunksperloop} | {item.role} |"
        )
    lines += [
        "",
        "Calls below a collective's first range fall back to NCCL/RCCL's own algorithms: collc is predicted",
        "to be slower there (docs/cost-model.md). A call is only taken by a file whose `nchunksperloop`",
        "divides its element count (× ranks for allgather/reduce-scatter); the fallback files have a small",
        "`nchunksperloop` so that most counts still get a collc schedule.",
        "",
    ]
    for runtime, variables in RUNTIME_ENV.items():
        lines += [f"## {runtime}", ""]
        for name, value, why in variables:
            shown = value.format(dir=f"/path/to/{directory.name}")
            lines.append(f"- `{name}={shown}` — {why}" if value != "(unset)" else f"- `{name}` unset — {why}")
        lines.append("")
    lines += [
        "Order: msccl-executor scans the files in sorted path order and takes the first match, so the",
        "numeric prefixes are the priority (optimal file before its fallback). RCCL scans in `readdir` order",
        "(unsorted): the ranges of different protocols are disjoint, so only the optimal/fallback pair can",
        "race, and then a call may get the fallback (correct, somewhat slower). One rank per process is",
        "required by the executor; without it MSCCL is silently disabled.",
        "",
    ]
    return "\n".join(lines)


def write_bundle(
    directory: str | Path, files: Sequence[BundleFile], topology_name: str, num_gpus: int
) -> list[Path]:
    """Write the algorithm files into ``directory`` and the deploy notes and manifest next to it."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{out} exists and is not a directory", hint="give a new or empty directory for --bundle"
        )
    names = {item.name for item in files}
    if out.is_dir():
        strangers = sorted(p.name for p in out.iterdir() if p.name not in names)
        if strangers:
            raise InputError(
                f"{out} already holds {', '.join(strangers[:5])}",
                hint="the runtime would parse every file in it: use an empty directory",
            )
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for item in files:
        atomic_write(out / item.name, item.xml)
        written.append(out / item.name)
    notes = out.parent / f"{out.name}.deploy.md"
    manifest = out.parent / f"{out.name}.manifest.json"
    atomic_write(notes, deploy_markdown(out, files, topology_name, num_gpus))
    atomic_write(
        manifest,
        json.dumps(
            {
                "topology": topology_name,
                "num_gpus": num_gpus,
                "directory": out.name,
                "files": [
                    {
                        "name": item.name,
                        "role": item.role,
                        "coll": item.size_range.coll,
                        "proto": item.size_range.proto,
                        "min_bytes": item.size_range.min_bytes,
                        "max_bytes": item.size_range.max_bytes,
                        "nchunksperloop": item.nchunksperloop,
                    }
                    for item in files
                ],
                "env": {
                    runtime: {name: value for name, value, _ in env} for runtime, env in RUNTIME_ENV.items()
                },
            },
            indent=2,
        )
        + "\n",
    )
    return [*written, notes, manifest]


def auto_range_options(topology, options):  # (Topology, CompileOptions) -> CompileOptions
    """``collc compile --auto-range``: the options with ``minBytes`` at the predicted crossover."""
    from dataclasses import replace as with_changes

    if options.min_bytes:
        raise InputError(
            "--auto-range and --min-bytes both set the smallest size", hint="give only one of them"
        )
    start = auto_min_bytes(TopologyModel(topology), options.coll, PROTOCOLS[options.proto])
    if start is None:
        raise InfeasibleError(
            f"collc is not predicted to beat NCCL's {options.coll} at any size on {topology.name} "
            f"with {options.proto}",
            hint="leave NCCL's own algorithm in place, or compile without --auto-range to measure",
        )
    if options.max_bytes and start > options.max_bytes:
        raise InfeasibleError(
            f"the predicted crossover ({start} bytes) lies above --max-bytes {options.max_bytes}",
            hint="raise --max-bytes or drop --auto-range",
        )
    return with_changes(options, min_bytes=start)


def compile_bundle(
    topology,
    options,
    directory: str | Path,
    collectives: Sequence[str] = ("allreduce", "allgather", "reducescatter"),
) -> list[str]:
    """``collc compile --bundle DIR``: compile every collective's ranges and write the bundle.

    ``options`` supplies the runtime, placement, instances and k settings; coll, proto and the size
    range are set per file, and each fallback is compiled with ``k = 1``. Returns report lines.
    """
    from dataclasses import replace as with_changes

    from collc.compile.driver import compile_schedule
    from collc.msccl.writer import to_xml

    model = TopologyModel(topology)
    ranges = [item for coll in collectives for item in plan_ranges(model, coll)]

    def compile_range(item: SizeRange, fallback: bool) -> Algorithm:
        chosen = with_changes(
            options,
            coll=item.coll,
            proto=item.proto,
            min_bytes=item.min_bytes,
            max_bytes=item.max_bytes,
            k=1 if fallback else options.k,
            max_k=None if fallback else options.max_k,
        )
        return compile_schedule(topology, chosen).algorithm

    files = bundle_files(ranges, compile_range, to_xml)
    written = write_bundle(directory, files, topology.name, topology.num_gpus)
    skipped = [coll for coll in collectives if not any(item.coll == coll for item in ranges)]
    lines = [f"wrote {path}" for path in written]
    lines += [f"{coll}: collc is never predicted faster than NCCL here; left to NCCL" for coll in skipped]
    return lines
