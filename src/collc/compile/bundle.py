"""Size ranges and deployable bundles.

**Ranges.** NCCL/RCCL pick their own algorithm and protocol per call, so a collc file should only take
the sizes where it is predicted faster than the best of the runtime's ring and tree at their best
protocol. A bundle compiles each collective once per protocol (Simple up to three times: compile's
pick, and the fastest candidates at 1 GiB and at 64 MiB), simulates every file at every power of two
(:data:`PLAN_SIZES`, :mod:`collc.compile.outlook`), and gives each file one run of those sizes where
it wins, the assignment that delivers most (:func:`best_plan`); a file's run becomes its range
(:func:`plan_ranges`), so the ranges of one collective are disjoint and sizes no file takes are left
to the runtime.

**Priority by file name.** The executor reads the directory in sorted path order and uses the *first*
file whose collective, rank count, size range and divisibility rule match. Within one range the
primary file (large ``nchunksperloop``) comes first and a fallback with a small ``nchunksperloop`` after
it, so element counts the primary file does not divide still get a collc schedule instead of the
runtime's, where the fallback too is predicted to win over the whole range.
Names are ``NN-<coll>-<proto>-<role>.xml`` (``simple-1gib``, ``simple-64mib`` for the fastest at a size);
``NN`` is the priority, so sorted order = priority order.

**Layout.** The directory holds only algorithm files (the runtime parses every regular file in it);
``<dir>.deploy.md`` and ``<dir>.manifest.json`` are written next to it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from collc.compile.driver import (
    BUFFER_GAIN,
    REFERENCE_BYTES,
    CompileOptions,
    CompileResult,
    buffer_choices,
    compile_schedule,
    deployed_protocol,
    serving,
    with_range,
)
from collc.compile.outlook import (
    GRID_EXPONENTS,
    CallOutlook,
    DeployedFile,
    SizeOutlook,
    directory_outlook,
    nccl_tests_bytes,
    outlook,
    served_size,
)
from collc.compile.ranges import ByteRange
from collc.errors import InputError, InvariantError
from collc.fileio import atomic_write, is_temporary, refuse_overwrite, remove_stale_temporaries
from collc.lowering.limits import DoesNotFit
from collc.msccl.program import Algorithm
from collc.msccl.writer import to_xml
from collc.predict.model import TopologyModel
from collc.predict.params import DEFAULT_BUFFER_BYTES
from collc.progress import Report, silent
from collc.sizes import format_figure, format_size
from collc.topology.model import Topology
from collc.verify.runtimes import profile

BUNDLE_PROTOCOLS = ("LL", "LL128", "Simple")
#: The sizes a bundle's ranges are planned on: compile's grid (:func:`collc.compile.outlook.grid`,
#: every power of two), so that each size of an nccl-tests sweep (``-f 2``) is decided by a
#: simulation. On powers of four the powers of two between two files' ranges went to the runtime (2x8
#: A100 allreduce: 128 KiB and 8 MiB, where its LL and Simple files win).
PLAN_SIZES = tuple(2**exponent for exponent in GRID_EXPONENTS)
#: The sizes the deploy notes predict, and the nccl-tests arguments that sweep them.
PREDICTED_SIZES = tuple(1 << exponent for exponent in range(20, 31, 2))
PREDICTED_SWEEP = "-b 1M -e 1G -f 4 -g 1"  # nccl-tests' arguments for that sweep
#: A size at which a bundle adds the fastest Simple candidate: a sixteenth of compile's reference, where
#: a call pipelines in few iterations and a shallower forest than the one chosen for 1 GiB can win.
#: 1x16 MI250 allreduce: the 1 GiB file (k = 8) simulates at 164.7 GB/s there and 118.1 at 64 MiB,
#: below RCCL's ring (136.6); the file chosen at 64 MiB (k = 2) simulates at 139.7 there and 158.6 at
#: 1 GiB, so the bundle serves each size with the faster of the two.
MID_BYTES = REFERENCE_BYTES // 16
#: The sizes at which a bundle adds the fastest Simple candidate to compile's own pick, where it is
#: another program. Compile's pick is one file for all sizes: among the candidates within 3 % of the
#: fastest at 1 GiB it prefers one that wins at 64 MiB and 1 MiB too (docs/compile.md §3), while a
#: bundle's other files may serve those sizes. 1x16 MI250 reduce-scatter at 256 KiB: the pick (k = 2,
#: two instances) wins at 1 MiB and loses to RCCL's ring at 1 GiB (314.7 against 316.4 GB/s); the
#: fastest there (k = 8, two instances, free senders paced) wins (324.3). Compile's pick stays: on a
#: 3-GPU line it is the allgather file that wins from 1 to 16 MiB, above what the other two reach.
FASTEST_AT = (REFERENCE_BYTES, MID_BYTES)


class FileKind(NamedTuple):
    """Which of a collective's compiled files a range is for: its protocol, and the call size at which
    it is the fastest candidate (0: compile's own pick, which weighs 1 GiB with 64 MiB and 1 MiB;
    a size of :data:`FASTEST_AT` for the Simple files :func:`compile_bundle` adds)."""

    proto: str
    tuned_for: int = 0


@dataclass(frozen=True)
class SizeRange:
    """One collective's file over ``[min_bytes, max_bytes]`` (inclusive; ``max_bytes = 0``: unbounded):
    its protocol and the call size it is the fastest at, if it was chosen so (:class:`FileKind`)."""

    coll: str
    proto: str
    min_bytes: int
    max_bytes: int
    tuned_for: int = 0
    #: where the range took a gap (:func:`bridged`): the grid points (indices into the plan's grid) on
    #: the gaps' far sides, and the range as its run drew it. A fallback file takes the whole range
    #: only where it also wins at those points, else the drawn one (:meth:`fallback_choices`)
    beyond: tuple[int, ...] = ()
    drawn: ByteRange | None = None

    @property
    def kind(self) -> FileKind:
        return FileKind(self.proto, self.tuned_for)

    def fallback_choices(self) -> list[SizeRange]:
        """The ranges a fallback file may take, widest first: this one, and where it took a gap, the
        one its run drew (a fallback must win at every grid size its range selects it for and at the
        points in :attr:`beyond`, :func:`wins_throughout`)."""
        if self.drawn is None:
            return [self]
        ends = {"min_bytes": self.drawn.min_bytes, "max_bytes": self.drawn.max_bytes}
        return [self, replace(self, **ends, beyond=(), drawn=None)]

    def describe(self) -> str:
        """``coll proto [min, max]``; an end one byte past a round size is shown as that size, open
        (``(1MiB, 8MiB]``: a range that took the gap below it, :func:`bridged`)."""
        bottom = _end(self.min_bytes, lower=True) if self.min_bytes else "[0"
        top = _end(self.max_bytes, lower=False) if self.max_bytes else "∞)"
        tuned = f" (fastest at {format_size(self.tuned_for)})" if self.tuned_for else ""
        return f"{self.coll} {self.proto}{tuned} {bottom}, {top}"


def _end(nbytes: int, lower: bool) -> str:
    """One end of a range with its bracket; where only the size a byte outside is round, that size
    with an open bracket (a range that took the gap beside it ends a byte off its neighbour's)."""
    shown, neighbour = format_size(nbytes), format_size(nbytes - 1 if lower else nbytes + 1)
    if "." in shown and "." not in neighbour:
        return f"({neighbour}" if lower else f"{neighbour})"
    return f"[{shown}" if lower else f"{shown}]"


def uncovered(ranges: Sequence[SizeRange]) -> list[str]:
    """The sizes of one collective that none of its (disjoint) ``ranges`` takes, as intervals: the
    runtime keeps them (below the first range, between two whose grid sizes were not both won, and
    above a bounded last one)."""
    spans, below = [], 0
    for item in sorted(ranges, key=lambda item: item.min_bytes):
        if item.min_bytes > below:
            start = f"[{format_size(below)}" if below == 0 else f"({format_size(below - 1)}"
            spans.append(f"{start}, {format_size(item.min_bytes)})")
        if item.max_bytes == 0:
            return spans
        below = item.max_bytes + 1
    return [*spans, f"({format_size(below - 1)}, ∞)"]


def plan_ranges(
    coll: str,
    outlooks: Mapping[FileKind, Sequence[SizeOutlook]],
    runtime: str,
    nominal: Sequence[int] | None = None,
    nranks: int = 1,
) -> list[SizeRange]:
    """Disjoint ranges of ``coll`` from each file's grid outlook; [] if no file ever wins.

    The outlooks are on one grid (:func:`grid_points`). Each grid point goes to a file that is at
    least as fast as the runtime's best there, or to the runtime, as :func:`best_plan` assigns them:
    each file takes one run of grid points. That run becomes its range, from its first to its last
    size; the run that reaches the top of the grid is unbounded. Where two files' runs meet, the sizes
    between them go to one of the two (:func:`bridged`); where a file's run meets the runtime's, the
    sizes between are the runtime's: nothing was predicted for them.

    A file is simulated at the size it serves nearest above a grid point, and nccl-tests asks for the
    size nearest below it (whole 16-byte units per rank, :func:`collc.compile.outlook.nccl_tests_bytes`);
    on 72 GPUs they differ at every point. Given the grid's ``nominal`` sizes and ``nranks``, a range
    starts where nccl-tests' size of its first point does (less than one unit of either below the
    size simulated), so that the calls a user measures are the ones the file takes.
    """
    points = grid_points(outlooks)
    inclusive = profile(runtime).max_bytes_inclusive
    runs: list[PlannedRun] = []
    position = 0  # grid points passed
    taken = -1  # the largest size the ranges so far take
    plan = best_plan(points).kinds
    for kind, run in itertools.groupby(zip(plan, points, strict=True), key=lambda pair: pair[0]):
        members = [point for _, point in run]
        position += len(members)
        if kind is None:
            continue
        # a size the previous range already takes stays with it (files that serve other sizes than
        # the grid's round a point up by different amounts, so adjacent points can interleave)
        sizes = [point[kind].nbytes for point in members if point[kind].nbytes > taken]
        if not sizes:
            continue
        first = sizes[0]
        if nominal is not None and len(sizes) == len(members):
            asked = nccl_tests_bytes(coll, nominal[position - len(members)], nranks)
            first = max(min(first, asked), taken + 1, 1)
        top = 0 if position == len(points) else sizes[-1] + (0 if inclusive else 1)
        run = SizeRange(coll, kind.proto, first, top, kind.tuned_for)
        runs.append(PlannedRun(run, position - len(members), position - 1))
        taken = top
    ranges = bridged(runs, points, inclusive)
    check_disjoint(ranges, inclusive)
    return ranges


class PlannedRun(NamedTuple):
    """A file's range as :func:`plan_ranges` first draws it, over the grid points of its run."""

    size_range: SizeRange
    first_point: int
    last_point: int


def bridged(
    runs: Sequence[PlannedRun], points: Sequence[Mapping[FileKind, SizeOutlook]], inclusive: bool
) -> list[SizeRange]:
    """The ranges of ``runs`` (in grid order), each gap between two files' runs on adjacent grid points
    given to one of the two files.

    A run ends at its last grid size and the next file's run starts at the next grid size, so a call
    between them (1.5 MiB between runs that end at 1 MiB and start at 2 MiB; frameworks call with any
    size: PyTorch's DDP buckets are 25 MiB) matched no file and went to the runtime, although both
    files beat it at one end of the gap and may at the other. A file takes the gap where it is at
    least as fast as the runtime at *both* grid points around it, simulated at sizes that enclose the
    gap, so that the gap is bracketed by its predicted wins as every size inside a run is; where both
    files are, the one that delivers more at those two points (the sum of log(algbw / the runtime's
    best)), the smaller one on a tie. Where neither is, the gap stays the runtime's (as where a run
    started past its first point, :func:`plan_ranges`). ``inclusive``: whether the runtime's maxBytes
    is.
    """
    ranges = [run.size_range for run in runs]
    for index, (before, after) in enumerate(itertools.pairwise(runs)):
        if after.first_point != before.last_point + 1:
            continue  # the runtime takes the grid points between: its sizes stay its own
        below, above = points[before.last_point], points[after.first_point]
        first, second = ranges[index], ranges[index + 1]
        bottom, top = first.max_bytes + inclusive, second.min_bytes - 1  # the sizes neither takes
        reaches = (above[first.kind].nbytes >= top, below[second.kind].nbytes <= bottom)
        gains = [
            (gain, -side)
            for side, kind in enumerate((first.kind, second.kind))
            if reaches[side] and (gain := _gap_gain(below[kind], above[kind])) is not None
        ]
        if not gains:
            continue
        taker = index - max(gains)[1]  # the earlier file on a tie
        item, run = ranges[taker], runs[taker].size_range
        if taker == index:
            item = replace(
                item, max_bytes=second.min_bytes - inclusive, beyond=(*item.beyond, after.first_point)
            )
        else:
            item = replace(
                item, min_bytes=first.max_bytes + inclusive, beyond=(*item.beyond, before.last_point)
            )
        ranges[taker] = replace(item, drawn=ByteRange(run.min_bytes, run.max_bytes))
    return ranges


def wins_throughout(rows: Sequence[SizeOutlook], beyond: Sequence[int] = ()) -> bool:
    """Whether a file (its grid outlook ``rows``, with its range) is at least as fast as the runtime
    at every grid size its range selects it for and at the grid points ``beyond`` (the far sides of
    the gaps its range took, :attr:`SizeRange.beyond`): what a fallback file must show to join a
    range it was not planned with."""
    return all(row.wins for index, row in enumerate(rows) if row.selected or index in beyond)


def _gap_gain(below: SizeOutlook, above: SizeOutlook) -> float | None:
    """What a file delivers over the runtime at the grid sizes around a gap (the sum of log(algbw /
    the runtime's best)), or None unless it is at least as fast as the runtime at both."""
    if not (below.wins and above.wins and below.algbw and above.algbw):
        return None
    return math.log(below.algbw / below.vendor_algbw) + math.log(above.algbw / above.vendor_algbw)


#: What a file of a bundle must deliver to be in it, as a gain at one grid point (log(1.01)): the runtime
#: connects every file of the directory at communicator creation, whether or not a call selects it. A
#: 3-GPU line's allgather had three Simple files within a hundredth of a per cent of each other, the
#: last two taking 64 GiB and 128 GiB up.
FILE_COST = math.log1p(0.01)


class Plan(NamedTuple):
    """Which file takes each grid point (None: the runtime), and what that delivers over the
    runtime alone: the sum over the points of log(the file's algbw / the runtime's best), 0 where the
    runtime keeps the point, less :data:`FILE_COST` per file used; ``taken``: the points files take."""

    gain: float
    taken: int
    kinds: tuple[FileKind | None, ...]


def best_plan(points: Sequence[Mapping[FileKind, SizeOutlook]]) -> Plan:
    """The plan that delivers most where every file takes one run of grid points, at points where it
    is at least as fast as the runtime (of equal gains, the one whose files take more points), each
    file used costing :data:`FILE_COST`.

    One run per file, as the file ``collc compile -o`` writes holds one range: each further range
    is another copy of the program in the directory, which the runtime connects at communicator
    creation even if no call selects it, and files whose figures cross back and forth (two Simple
    files of one fabric within a per cent of each other) would split the grid into ranges of a size or
    two each. Dynamic programming over the points; the state is the files that have had their run
    and the file whose run is open (at most a few files: every subset is a state)."""
    start: tuple[frozenset[FileKind], FileKind | None] = (frozenset(), None)
    plans = {start: Plan(0.0, 0, ())}
    for point in points:
        following: dict[tuple[frozenset[FileKind], FileKind | None], Plan] = {}
        for (had, open_kind), plan in plans.items():
            choices: list[tuple[FileKind | None, float]] = [(None, 0.0)]
            choices += [
                (kind, math.log(row.algbw / row.vendor_algbw) - (0.0 if kind == open_kind else FILE_COST))
                for kind, row in point.items()
                if row.wins and row.algbw and (kind == open_kind or kind not in had)
            ]
            for kind, gain in choices:
                key = (had | {kind} if kind else had, kind)
                extended = Plan(plan.gain + gain, plan.taken + (kind is not None), (*plan.kinds, kind))
                if key not in following or extended[:2] >= following[key][:2]:
                    following[key] = extended
        plans = following
    return max(plans.values(), key=lambda plan: plan[:2])


def on_grid(algo: Algorithm, rows: Sequence[SizeOutlook], sizes: Sequence[int]) -> list[SizeOutlook]:
    """``algo``'s outlook ``rows`` as one row per size of ``sizes``: the outlook has one per size the
    file serves (:func:`collc.compile.outlook.served_size`), and sizes that round up to the same served
    size share its row (4 KiB and 16 KiB, where a file's smallest call is 16 KiB)."""
    by_size = {row.nbytes: row for row in rows}
    return [by_size[served_size(algo, size)] for size in sizes]


def grid_points(outlooks: Mapping[FileKind, Sequence[SizeOutlook]]) -> list[dict[FileKind, SizeOutlook]]:
    """Each file's row at each point of the grid its outlook was made on (:func:`on_grid`), point
    by point.

    A point is matched by its place on the grid, not by its size: each file is simulated at the
    nearest size it serves, which differs between files whose ``nchunksperloop`` is not a power of
    two (3 GPUs: 4104 and 4128 bytes for the 4 KiB point), and matching sizes split one protocol's
    run into ranges of one size each.
    """
    lengths = {len(rows) for rows in outlooks.values()}
    if len(lengths) > 1:
        raise InvariantError(f"outlooks on different grids ({sorted(lengths)} points)")
    count = lengths.pop() if lengths else 0
    return [{kind: rows[index] for kind, rows in sorted(outlooks.items())} for index in range(count)]


def check_disjoint(ranges: Sequence[SizeRange], inclusive: bool = True) -> None:
    """Ranges of one collective must not overlap (a call takes the first match); a violation is a bug.
    ``inclusive``: whether maxBytes is (else a range may end where the next one begins)."""
    by_coll: dict[str, list[SizeRange]] = {}
    for item in ranges:
        by_coll.setdefault(item.coll, []).append(item)
    for coll, items in by_coll.items():
        ordered = sorted(items, key=lambda r: r.min_bytes)
        for before, after in itertools.pairwise(ordered):
            if before.max_bytes == 0 or before.max_bytes > after.min_bytes - inclusive:
                raise InvariantError(f"overlapping {coll} ranges: {before.describe()} and {after.describe()}")


# compile(size range, fallback?) -> the program for that range (``minBytes``/``maxBytes`` already set), or
# None when there is no such program (no fallback is predicted to win over the whole range).
CompileFn = Callable[[SizeRange, bool], Algorithm | None]


@dataclass(frozen=True)
class BundleFile:
    """One algorithm file of a bundle and what it serves."""

    name: str
    role: str  # "primary" | "fallback"
    size_range: SizeRange
    nchunksperloop: int
    xml: str
    algorithm: Algorithm


def bundle_files(
    ranges: Sequence[SizeRange], compile_fn: CompileFn, render: Callable[[Algorithm], str]
) -> list[BundleFile]:
    """Compile every range: the primary file (the search's k), then a smaller-``nchunksperloop``
    fallback if there is one, over the widest of the range's :meth:`SizeRange.fallback_choices`
    where it wins."""
    compiled: list[tuple[str, SizeRange, Algorithm]] = []
    for item in ranges:
        primary = compile_fn(item, False)
        if primary is None:
            raise InvariantError(f"no program for {item.describe()}, which a program won")
        _check_range(primary, item)
        compiled.append(("primary", item, primary))
        for choice in item.fallback_choices():
            fallback = compile_fn(choice, True)
            if fallback is not None:
                break
        if fallback is not None and fallback.nchunksperloop < primary.nchunksperloop:
            _check_range(fallback, choice)
            compiled.append(("fallback", choice, fallback))
    width = max(2, len(str(len(compiled) - 1)))
    return [
        BundleFile(
            f"{index:0{width}d}-{item.coll}-{_kind_name(item.kind)}-{role}.xml",
            role,
            item,
            algo.nchunksperloop,
            render(algo),
            algo,
        )
        for index, (role, item, algo) in enumerate(compiled)
    ]


def _kind_name(kind: FileKind) -> str:
    """A file kind in a bundle file's name: ``simple``, or ``simple-1gib``/``simple-64mib`` for the
    fastest Simple candidate at that size."""
    tuned = f"-{format_size(kind.tuned_for).lower()}" if kind.tuned_for else ""
    return f"{kind.proto.lower()}{tuned}"


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


def _environment(buffer_bytes: int | None) -> dict[str, list[tuple[str, str, str]]]:
    """:data:`RUNTIME_ENV`, plus ``NCCL_BUFFSIZE`` for every runtime when the files are for another buffer."""
    if buffer_bytes is None:
        return RUNTIME_ENV
    setting = (
        "NCCL_BUFFSIZE",
        str(buffer_bytes),
        "the Simple files are predicted and verified for this buffer; process-wide",
    )
    return {runtime: [*variables, setting] for runtime, variables in RUNTIME_ENV.items()}


def deploy_markdown(
    directory: Path,
    files: Sequence[BundleFile],
    topology_name: str,
    num_gpus: int,
    env: dict[str, list[tuple[str, str, str]]] = RUNTIME_ENV,
    predicted: Mapping[str, Sequence[CallOutlook]] | None = None,
) -> str:
    """How to install and enable the bundle, per runtime, what each file serves, and (``predicted``)
    what nccl-tests should report with it."""
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
    for runtime, variables in env.items():
        lines += [f"## {runtime}", ""]
        for name, value, why in variables:
            shown = value.format(dir=f"/path/to/{directory.name}")
            lines.append(f"- `{name}={shown}` — {why}" if value != "(unset)" else f"- `{name}` unset — {why}")
        lines.append("")
    lines += [
        "Order: msccl-executor scans the files in sorted path order and takes the first match, so the",
        "numeric prefixes are the priority (primary file before its fallback). RCCL scans in `readdir` order",
        "(unsorted): the ranges of the primary files are disjoint, so only a primary/fallback pair can",
        "race, and then a call may get the fallback (correct, somewhat slower). One rank per process is",
        "required by the executor; without it MSCCL is silently disabled.",
        "",
    ]
    return "\n".join(lines + (_predicted_markdown(predicted) if predicted else []))


#: nccl-tests' binary per collective
NCCL_TESTS = {
    "allreduce": "all_reduce_perf",
    "allgather": "all_gather_perf",
    "reducescatter": "reduce_scatter_perf",
}


def _predicted_markdown(predicted: Mapping[str, Sequence[CallOutlook]]) -> list[str]:
    """The deploy notes' prediction: per collective, the nccl-tests command and what it should report
    at each size with the bundle deployed (the file the runtime selects, or its own algorithms)."""
    lines = [
        "## Predicted: check with nccl-tests",
        "",
        "collc's event simulation of the file the runtime selects for each call (docs/cost-model.md), next",
        "to NCCL/RCCL's own ring and tree; algbw and busbw as nccl-tests prints them (float, GB/s). Where no",
        "file takes a size the runtime runs it, so nccl-tests should show about the ring/tree figure.",
        "",
    ]
    for coll, rows in predicted.items():
        lines += [
            f"### {coll}: `{NCCL_TESTS.get(coll, coll)} {PREDICTED_SWEEP}` (one process per GPU)",
            "",
            "| size (bytes) | file | algbw | busbw | ring algbw | tree algbw |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for row in rows:
            collc = (
                "– | –"
                if row.algbw is None
                else f"{format_figure(row.algbw)} | {format_figure(row.busbw or 0)}"
            )
            tree = "–" if row.tree_algbw is None else format_figure(row.tree_algbw)
            ring = format_figure(row.ring_algbw)
            lines.append(f"| {row.nbytes} | {row.file or 'runtime'} | {collc} | {ring} | {tree} |")
        lines.append("")
    return lines


def beside(directory: Path) -> tuple[Path, Path]:
    """The deploy notes and the manifest written next to a bundle directory."""
    return (
        directory.parent / f"{directory.name}.deploy.md",
        directory.parent / f"{directory.name}.manifest.json",
    )


def write_bundle(
    directory: str | Path,
    files: Sequence[BundleFile],
    topology_name: str,
    num_gpus: int,
    *,
    force: bool = False,
    buffer_bytes: int | None = None,
    predicted: Mapping[str, Sequence[CallOutlook]] | None = None,
) -> list[Path]:
    """Write the algorithm files into ``directory`` and the deploy notes and manifest next to it.

    The directory may hold only this bundle's files (the runtime parses every file in it); temporary
    files of killed writers are removed first. The notes and manifest next to it are replaced only
    with ``force``. ``buffer_bytes``: the ``NCCL_BUFFSIZE`` the Simple files are for (None: default).
    """
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{out} exists and is not a directory", hint="give a new or empty directory for --bundle"
        )
    notes, manifest = beside(out)
    refuse_overwrite([notes, manifest], force)
    names = {item.name for item in files}
    if out.is_dir():
        remove_stale_temporaries(out)
        strangers = sorted(p.name for p in out.iterdir() if p.name not in names and not is_temporary(p.name))
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
    env = _environment(buffer_bytes)
    atomic_write(notes, deploy_markdown(out, files, topology_name, num_gpus, env, predicted))
    document = manifest_document(out, files, topology_name, num_gpus, env, predicted)
    atomic_write(manifest, json.dumps(document, indent=2) + "\n")
    return [*written, notes, manifest]


#: the keys of every ``collc compile --bundle DIR --json`` document (docs/compile.md §4): the manifest's,
#: then what the bundle chose and wrote; the outcome keys follow (:mod:`collc.jsondoc`)
BUNDLE_KEYS = (
    "topology",
    "num_gpus",
    "directory",
    "files",
    "env",
    "predicted",
    "buffsize",
    "left_to_runtime",
    "deploy_notes",
    "manifest",
)


def manifest_document(
    directory: Path,
    files: Sequence[BundleFile],
    topology_name: str,
    num_gpus: int,
    env: dict[str, list[tuple[str, str, str]]],
    predicted: Mapping[str, Sequence[CallOutlook]] | None = None,
) -> dict[str, object]:
    """``DIR.manifest.json``: the bundle's files, what each serves, the environment per runtime, and
    (``predicted``) what each collective's calls are predicted to get with it."""
    document: dict[str, object] = {
        "topology": topology_name,
        "num_gpus": num_gpus,
        "directory": directory.name,
        "files": [
            {
                "name": item.name,
                "role": item.role,
                "coll": item.size_range.coll,
                "proto": item.size_range.proto,
                "min_bytes": item.size_range.min_bytes,
                "max_bytes": item.size_range.max_bytes,
                "nchunksperloop": item.nchunksperloop,
                "chosen_at_bytes": item.size_range.tuned_for or REFERENCE_BYTES,
            }
            for item in files
        ],
        "env": {runtime: {name: value for name, value, _ in pairs} for runtime, pairs in env.items()},
    }
    if predicted is not None:
        document["predicted"] = {coll: [row.to_json() for row in rows] for coll, rows in predicted.items()}
    return document


@dataclass(frozen=True)
class BundleResult:
    """What ``collc compile --bundle`` wrote: the files and the notes beside them, the ranges, the
    one Simple buffer, and the collectives no file wins."""

    directory: Path
    written: list[Path]
    files: list[BundleFile]
    ranges: list[SizeRange]
    buffer_bytes: int | None
    left_to_runtime: list[str]
    manifest: dict[str, object]
    num_gpus: int
    align: int | None  # --align: the counts the user calls with (None: powers of two)

    def lines(self) -> list[str]:
        """The report ``collc compile --bundle`` prints."""
        lines = [f"wrote {path}" for path in self.written]
        for coll in dict.fromkeys(item.coll for item in self.ranges):
            ranges = [item for item in self.ranges if item.coll == coll]
            lines += [self._range_line(item) for item in ranges]
            if gaps := uncovered(ranges):
                lines.append(
                    f"{coll} {', '.join(gaps)}: the runtime's own algorithms (no file takes these sizes)"
                )
        if self.buffer_bytes is not None:
            lines.append(
                f"NCCL_BUFFSIZE={self.buffer_bytes}: the Simple files are predicted and verified with a "
                f"{format_size(self.buffer_bytes)} buffer (the deploy notes set it)"
            )
        lines += [
            f"{coll}: collc is never predicted faster than the runtime's own algorithms; left to the runtime"
            for coll in self.left_to_runtime
        ]
        return lines

    def _range_line(self, item: SizeRange) -> str:
        """What a range's files do, with the counts they serve where that is not every count asked
        for (a file whose ``nchunksperloop`` does not divide a count is never selected for it)."""
        line = f"{item.describe()}: collc file predicted at least as fast as the runtime's best"
        finest = min(file.nchunksperloop for file in self.files if file.size_range == item)
        served = serving(finest, item.coll, self.num_gpus, self.align)
        if served.satisfied:
            return line
        return f"{line}, for {served.describe()} -- NOT all {served.policy} (the runtime keeps the others)"

    def to_json(self) -> dict[str, object]:
        """``collc compile --bundle --json``: the manifest, plus the buffer (bytes; null: the
        runtime's default), the collectives left to the runtime and the paths written."""
        notes, manifest = beside(self.directory)
        return {
            **self.manifest,
            "buffsize": self.buffer_bytes,
            "left_to_runtime": self.left_to_runtime,
            "deploy_notes": str(notes),
            "manifest": str(manifest),
        }


def bundle_gain(outlooks: Mapping[FileKind, Sequence[SizeOutlook]]) -> float:
    """What one collective's files deliver over the runtime alone on the grid, as :func:`plan_ranges`
    ranges them (:attr:`Plan.gain`)."""
    return best_plan(grid_points(outlooks)).gain


def compile_bundle(
    topology: Topology,
    options: CompileOptions,
    directory: str | Path,
    collectives: Sequence[str] = ("allreduce", "allgather", "reducescatter"),
    progress: Report = silent,
) -> BundleResult:
    """``collc compile --bundle DIR``: compile every collective per protocol (Simple also as the
    fastest candidates at :data:`FASTEST_AT`), range the files by their simulation, and write the
    bundle.

    ``options`` supplies the runtime, placement, instances and k settings; coll, proto and the size
    range are set per file, and each fallback is compiled with ``k = 1``. ``progress`` hears how many
    compiles are done and each compile's own steps.

    ``NCCL_BUFFSIZE`` is process-wide, so every Simple file of a bundle is for one buffer: the user's
    ``--buffsize``, else of the buffers compile tries (docs/compile.md §3) the one whose files
    deliver most at :data:`PLAN_SIZES` (:func:`_simple_files`; one smaller than the runtime's
    default, which needs no setting, only for :data:`~collc.compile.driver.BUFFER_GAIN`).
    """
    refuse_overwrite(beside(Path(directory)), options.force)  # before the work, and again when writing

    done = 0

    def attempt(chosen: CompileOptions) -> CompileResult | None:
        nonlocal done
        progress("bundle: compiles done", done, None)
        try:
            return compile_schedule(topology, chosen, progress)
        except DoesNotFit:
            return None
        finally:
            done += 1

    def compiled(coll: str, proto: str, fallback: bool, buffsize: int | None) -> CompileResult | None:
        return attempt(
            replace(
                options,
                coll=coll,
                proto=proto,
                min_bytes=0,
                max_bytes=0,
                user_range=True,
                k=1 if fallback else options.k,
                max_k=None if fallback else options.max_k,
                buffsize=buffsize if proto == "Simple" else None,
            )
        )

    def plan_outlook(result: CompileResult) -> list[SizeOutlook]:
        algo, sizes = result.algorithm, PLAN_SIZES
        return on_grid(
            algo, outlook(result.model, algo, sizes, result.runtime, result.predictor, result.proto), sizes
        )

    def fastest_at(coll: str, buffer: int | None, size: int) -> CompileResult | None:
        """The Simple file that is the fastest candidate at ``size`` for the bundle's buffer: with that
        size as the whole range, compile emits it (its range is planned again here)."""
        only = {"min_bytes": size, "max_bytes": size, "user_range": True}
        return attempt(
            replace(options, coll=coll, proto="Simple", buffsize=buffer or DEFAULT_BUFFER_BYTES, **only)
        )

    results: dict[tuple[str, FileKind], CompileResult] = {}
    for coll in collectives:
        for proto in BUNDLE_PROTOCOLS:
            if proto != "Simple" and (result := compiled(coll, proto, False, None)) is not None:
                results[(coll, FileKind(proto))] = result
    choices = buffer_choices(replace(options, proto="Simple"))
    buffer = _simple_files(results, collectives, choices, compiled, plan_outlook)
    for coll in collectives:
        if (simple := results.get((coll, FileKind("Simple")))) is None:
            continue
        kept = [simple]
        for size in FASTEST_AT:
            if size == REFERENCE_BYTES and simple.fastest:
                continue  # compile's pick is the fastest there: that compile would write it again
            fast = fastest_at(coll, buffer, size)
            if fast is not None and all(_differs(fast, other) for other in kept):
                results[(coll, FileKind("Simple", size))] = fast
                kept.append(fast)
    ranges: list[SizeRange] = []
    for coll in collectives:
        outlooks = {kind: plan_outlook(r) for (c, kind), r in results.items() if c == coll}
        runtime = next((r.runtime for (c, _), r in results.items() if c == coll), "msccl-executor")
        ranges += plan_ranges(coll, outlooks, runtime, PLAN_SIZES, topology.num_gpus)

    fallbacks: dict[tuple[str, str], CompileResult | None] = {}

    def compile_range(item: SizeRange, fallback: bool) -> Algorithm | None:
        if fallback:
            if (item.coll, item.proto) not in fallbacks:
                fallbacks[(item.coll, item.proto)] = compiled(
                    item.coll, item.proto, True, buffer or DEFAULT_BUFFER_BYTES
                )
            result = fallbacks[(item.coll, item.proto)]
        else:
            result = results[(item.coll, item.kind)]
        if result is None:
            return None
        chosen = with_range(result, ByteRange(item.min_bytes, item.max_bytes))
        if fallback and not wins_throughout(plan_outlook(chosen), item.beyond):
            return None
        return chosen.algorithm

    if not any(item.proto == "Simple" for item in ranges):
        buffer = None  # no Simple file: nothing to set, and NCCL's own algorithms keep their default
    runtime = next((result.runtime for result in results.values()), None)
    files = bundle_files(ranges, compile_range, lambda algo: to_xml(algo, runtime=runtime))
    predicted = bundle_prediction(TopologyModel(topology), files, collectives, runtime, buffer)
    written = write_bundle(
        directory,
        files,
        topology.name,
        topology.num_gpus,
        force=options.force,
        buffer_bytes=buffer,
        predicted=predicted,
    )
    out = Path(directory)
    return BundleResult(
        directory=out,
        written=written,
        files=files,
        ranges=ranges,
        buffer_bytes=buffer,
        left_to_runtime=[coll for coll in collectives if not any(item.coll == coll for item in ranges)],
        manifest=manifest_document(
            out, files, topology.name, topology.num_gpus, _environment(buffer), predicted
        ),
        num_gpus=topology.num_gpus,
        align=options.align,
    )


def bundle_prediction(
    model: TopologyModel,
    files: Sequence[BundleFile],
    collectives: Sequence[str],
    runtime: str | None,
    buffer: int | None,
) -> dict[str, list[CallOutlook]]:
    """What each collective's calls of :data:`PREDICTED_SIZES` (as nccl-tests issues them) get with the
    bundle deployed: the file the runtime selects and its simulation at the bundle's buffer, or the
    runtime's own algorithms (:func:`collc.compile.outlook.directory_outlook`, as ``collc simulate
    TOPO DIR`` prints it)."""

    deployed = [
        DeployedFile(item.name, item.algorithm, deployed_protocol(item.algorithm.proto, buffer))
        for item in files
    ]
    nranks = model.topology.num_gpus
    return {
        coll: directory_outlook(
            model,
            deployed,
            coll,
            [nccl_tests_bytes(coll, size, nranks) for size in PREDICTED_SIZES],
            runtime or "msccl-executor",
        )
        for coll in collectives
    }


def _differs(one: CompileResult, other: CompileResult) -> bool:
    """Whether two compiles of a collective wrote different programs (their ranges aside)."""
    first, second = (replace(result.algorithm, min_bytes=0, max_bytes=0) for result in (one, other))
    return first != second


def _simple_files(
    results: dict[tuple[str, FileKind], CompileResult],
    collectives: Sequence[str],
    choices: Sequence[int | None],
    compiled: Callable[[str, str, bool, int | None], CompileResult | None],
    plan_outlook: Callable[[CompileResult], list[SizeOutlook]],
) -> int | None:
    """Each collective's Simple file compiled for every buffer of ``choices`` (None: the runtime's
    default, first where it is a choice), and the buffer whose files deliver most beside the other
    protocols' in ``results`` (:func:`bundle_gain`, summed over the collectives). A later choice is
    kept only where it gains :data:`~collc.compile.driver.BUFFER_GAIN` over the best before it, as
    compile deploys a smaller buffer only for that gain (it changes a process-wide setting, and NCCL's
    own algorithms run with it too). Its files are added to ``results``; returns it.

    Compile's own choice between these buffers (docs/compile.md §3) is one collective's and weighs a
    sixteenth of the reference size, where a bundle may serve LL128 instead; the bundle's buffer
    serves all its collectives, so it is chosen again over all of them (1×8 A100: `-o` keeps the
    default, the bundle takes 256 KiB).
    """
    best: tuple[float, int | None, dict[tuple[str, str], CompileResult]] | None = None
    for buffer in choices:
        files = {}
        for coll in collectives:
            result = compiled(coll, "Simple", False, buffer or DEFAULT_BUFFER_BYTES)
            if result is not None:
                files[(coll, FileKind("Simple"))] = result
        ours = {**results, **files}
        gain = sum(
            bundle_gain({kind: plan_outlook(r) for (c, kind), r in ours.items() if c == coll})
            for coll in collectives
        )
        if best is None or gain > best[0] + math.log1p(BUFFER_GAIN):
            best = (gain, buffer, files)
    assert best is not None
    results.update(best[2])
    return best[1]
