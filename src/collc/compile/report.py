"""What ``collc compile`` tells the user about the file it wrote: text for people, JSON for machines.

Every collc figure is the event simulation of the written file (:mod:`collc.compile.outlook`); bounds
are labelled as bounds. The JSON keys are stable: scripts and CI jobs read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from collc.compile.bundle import MID_BYTES, RUNTIME_ENV
from collc.compile.driver import CompileOptions, CompileResult, NoWin
from collc.compile.outlook import SizeOutlook
from collc.errors import CollcError
from collc.jsondoc import json_document
from collc.mscclpp.compile import deploy_lines as plan_deploy_lines
from collc.predict.des import ArcLoad, ProgramCost
from collc.runtimes.libinfo import loaded_by
from collc.sizes import format_figure, format_size, json_figure, plural
from collc.solver.balance import unbalanced_switches
from collc.topology.model import Topology

PLACEMENT = {(1, 1): "in-place and out-of-place", (1, 0): "in-place", (0, 1): "out-of-place"}


def _gbps(value: Fraction | float) -> str:
    return f"{format_figure(value)} GB/s"


def deploy_lines(runtime: str, filename: str, buffer_bytes: int | None = None) -> list[str]:
    """How to make the runtime load the file.

    The executor and RCCL read every regular file of ``MSCCL_ALGO_DIR`` as an algorithm, so the
    directory holds only algorithm files and has the same content on every node. RCCL loads MSCCL
    files only when enabled (RCCL 2.27 and earlier; RCCL 2.28.3 removed MSCCL); the executor needs
    one GPU per process. ``buffer_bytes``: the ``NCCL_BUFFSIZE`` a Simple file was chosen, predicted
    and verified for (None: the runtime's default, nothing to set).
    """
    if runtime == "mscclpp":
        return plan_deploy_lines(filename)
    lines = [
        f"  mkdir -p msccl-algorithms && cp {filename} msccl-algorithms/   # only algorithm files in it",
        "  export MSCCL_ALGO_DIR=$PWD/msccl-algorithms                   # same content on every node",
    ]
    if runtime == "rccl":
        lines.append("  export RCCL_MSCCL_ENABLE=1 RCCL_MSCCL_FORCE_ENABLE=1           # RCCL 2.18-2.27")
    else:
        lines.append(
            "  export NCCL_MSCCL_ENABLE=1            # default; one GPU per process (msccl-executor-nccl)"
        )
    if buffer_bytes is not None:
        lines.append(
            f"  export NCCL_BUFFSIZE={buffer_bytes}          # the pipelining grain the file is tuned for; "
            "process-wide: NCCL's own algorithms run with it too"
        )
    return lines


def buffer_text(result: CompileResult) -> str:
    """The connection buffer the file is predicted and verified with."""
    if result.buffer_bytes is None:
        return f"the runtime's default for {result.algorithm.proto} (nothing to set)"
    return (
        f"NCCL_BUFFSIZE={format_size(result.buffer_bytes)} (predicted and verified with it; deploy sets it)"
    )


def range_text(result: CompileResult) -> str:
    """The file's size range in words, with why it is that range."""
    low, high = result.byte_range.min_bytes, result.byte_range.max_bytes
    span = f"{format_size(low) if low else '0'} .. {format_size(high) if high else 'unbounded'}"
    if result.options.user_range:
        return f"{span} (as set by --min-bytes/--max-bytes)"
    if result.options.user_end and not result.forced:
        given = f"--{result.options.user_end}-bytes"
        return f"{span} ({given} as set, the other end where the file is predicted at least as fast)"
    if result.forced:
        return f"{span} (forced: predicted to win at no size)"
    return f"{span} (where the file is predicted at least as fast as the runtime's best ring/tree)"


def _range_source(result: CompileResult) -> str:
    """Where the file's range came from (``--json``'s ``range_source``): ``user`` (both ends as set),
    ``user-min`` or ``user-max`` (that end as set, the other predicted), ``forced`` (the file wins
    nowhere and ``--force`` wrote it) or ``predicted``."""
    if result.options.user_range:
        return "user"
    if result.forced:
        return "forced"
    return f"user-{result.options.user_end}" if result.options.user_end else "predicted"


def _outlook_lines(which: str, rows: Sequence[SizeOutlook]) -> list[str]:
    """The report's table of ``which`` file's simulated figures beside the runtime's and the bound."""
    return [
        f"  predicted        event simulation of {which}; ring/tree: the runtime's, at their best protocol",
        f"    {'size':>8} {'collc':>10} {'busbw':>8} {'ring':>8} {'tree':>8} {'bound':>8} {'vs best':>8}  "
        "file used",
        *map(_outlook_line, rows),
    ]


def unwritten_lines(error: NoWin) -> list[str]:
    """What ``collc compile`` prints of the file it did not write because it wins at no size: its
    figures and how it was chosen (the error line that follows says why nothing was written)."""
    unwritten = error.unwritten
    if unwritten is None:
        return []
    return [
        f"not written: k = {unwritten.k}, {unwritten.instances} instance(s), nchunksperloop = "
        f"{unwritten.nchunksperloop}, for {unwritten.runtime}",
        *_outlook_lines("the file it would write", unwritten.predicted),
        f"  serves           {unwritten.serves}",
        *(f"  note: {note}" for note in unwritten.notes),
    ]


def _outlook_line(row: SizeOutlook) -> str:
    collc = "not served" if row.algbw is None else format_figure(row.algbw)
    busbw = "" if row.busbw is None else format_figure(row.busbw)
    tree = "-" if row.tree_algbw is None else format_figure(row.tree_algbw)
    ratio = "" if row.algbw is None else f"{row.algbw / row.vendor_algbw:6.2f}x"
    used = "yes" if row.selected else "no (runtime's own)"
    ring, bound = format_figure(row.ring_algbw), format_figure(row.bound_algbw)
    return (
        f"    {format_size(row.nbytes):>8} {collc:>10} {busbw:>8} {ring:>8} {tree:>8} {bound:>8} "
        f"{ratio:>8}  {used}"
    )


class Healthy(NamedTuple):
    """The same job's bound (GB/s algbw) on the fabric before a degradation, its GPUs there, and its
    ceiling there (what no schedule of the collective exceeds: the bound, or for an allreduce the
    least cut, :mod:`collc.solver.ceiling`)."""

    algbw: Fraction
    num_gpus: int
    ceiling: Fraction


def healthy_line(result: CompileResult, healthy: Healthy) -> str:
    """On a degraded fabric: the same job's bound on the healthy fabric against this one's, and for an
    allreduce its ceiling too (the least cut: the bound is reduce-scatter then allgather with every GPU
    rooting an equal share, so a slowed GPU forwards in both halves and the bound can fall further than
    any allreduce must; 2x8 A100 with one GPU's switch link at 50 %: bound -46.2 %, ceiling -12.5 %,
    docs/solver.md §1.9). Where the parts taken out took GPUs with them, the two are collectives over
    different GPU counts (an allreduce over fewer GPUs may have the higher algbw): the line gives both
    counts and no change."""
    this, before = _gbps(result.bound_algbw), _gbps(healthy.algbw)
    ngpus = result.algorithm.ngpus
    if healthy.num_gpus != ngpus:
        return (
            f"  healthy fabric   bound {before} over {plural(healthy.num_gpus, 'GPU')}, this one {this} over "
            f"{ngpus} (fewer GPUs: a different collective, so no change is given)"
        )
    change = float(result.bound_algbw / healthy.algbw - 1) * 100
    line = f"  healthy fabric   bound {before}, this one {this} ({change:+.1f} %)"
    if result.algorithm.coll != "allreduce":
        return line
    ceiling = result.model.ceiling_algbw("allreduce")
    fell = float(ceiling / healthy.ceiling - 1) * 100
    return f"{line}; allreduce ceiling {_gbps(healthy.ceiling)} -> {_gbps(ceiling)} ({fell:+.1f} %)"


class ArcLimit(NamedTuple):
    """The most a file's busiest arc lets it deliver (GB/s algbw), and that arc."""

    algbw: float
    arc: ArcLoad


def arc_limit(result: CompileResult) -> ArcLimit | None:
    """What the written file's busiest arc allows on the runtime's paths, in wire bytes (a protocol
    with flags delivers its efficiency's share of it; the forest's bound is in the same units), or
    None for a predictor that is not the event simulation of an MSCCL file, or a file that sends
    nothing."""
    cost = getattr(result.predictor, "inner", result.predictor)
    if not isinstance(cost, ProgramCost) or cost.busiest_arc is None:
        return None
    return ArcLimit(float(cost.busiest_arc_algbw()), cost.busiest_arc)


def arc_limit_line(limit: ArcLimit, file_bound: Fraction, nchunksperloop: int) -> str | None:
    """The report's line on a file whose busiest arc on the runtime's paths allows less than its
    forest's bound: the forest routed some of that arc's traffic elsewhere (a path the runtime does
    not take), so the file cannot reach its k's bound; None when the arc allows the bound."""
    if limit.algbw >= float(file_bound) * (1 - 1e-9):
        return None
    (src, dst), chunks, bandwidth = limit.arc
    return (
        f"  busiest arc      {format_figure(limit.algbw)} GB/s algbw at most: on the runtime's paths "
        f"{src} -> {dst} carries {chunks:g} chunk sends per iteration of {nchunksperloop} chunks at "
        f"{bandwidth:g} GB/s, more than the forest routed over it"
    )


def _bound_label(coll: str, cut_only: bool) -> str:
    """What the bound is: optimal for allgather and reduce-scatter; for allreduce the figure of
    reduce-scatter then allgather, which a file whose reduce and broadcast run on opposite link
    directions can beat (a line of GPUs), so it is not called optimal. ``cut_only``: the fabric has
    switches that take in and send out different amounts, where a schedule may need a switch to copy
    data to reach the cut bound (:mod:`collc.solver.balance`), so it is not called optimal either."""
    if coll == "allreduce":
        return "reduce-scatter + allgather bound of allreduce"
    return f"cut bound of {coll}" if cut_only else f"optimal bound of {coll}"


def _unbalanced_names(result: CompileResult) -> list[str]:
    """The fabric's switches whose ingress and egress differ (the same either way round)."""
    graph = result.model.capacity
    return [graph.names[w] for w in unbalanced_switches(graph)]


def _balanced_notes(result: CompileResult) -> list[str]:
    """Why the file's trees may stay below the cut bound: they were packed on the fabric with its
    unbalanced switches balanced (:mod:`collc.solver.balance`), which may or may not lower it."""
    forests = [result.solution.forest, result.reduce_forest]
    if not any(forest is not None and forest.balanced for forest in forests):
        return []
    names = _unbalanced_names(result)
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return [
        f"switches {shown} take in and send out different amounts and a switch cannot copy data, so this "
        "file's trees were packed on the fabric with those switches balanced (docs/solver.md §3): tree "
        "schedules reach the cut bound only where none of them has to copy"
    ]


def _gap_text(gap: float) -> str:
    """How the file's trees' bound compares with the fabric's (``gap``: per cent below it). Above it
    only for an allreduce whose trees carry both halves at once (:attr:`collc.solver.forest.Forest.
    allreduce_U`), which reduce-scatter then allgather does not count."""
    if gap == 0:
        return " (equals the bound above)"
    if gap > 0:
        return f" ({gap:.2f} % below the bound above)"
    return (
        f" ({-gap:.2f} % over the bound above: these trees carry both halves at once on the runtime's paths)"
    )


def _arc_lines(result: CompileResult) -> list[str]:
    limit = arc_limit(result)
    line = limit and arc_limit_line(limit, result.file_bound_algbw, result.algorithm.nchunksperloop)
    return [line] if line else []


def report_lines(result: CompileResult, filename: str, healthy: Healthy | None = None) -> list[str]:
    """The human report ``collc compile`` prints (``healthy``: the bound before a degradation)."""
    algo, usage, limits = result.algorithm, result.lowered.usage, result.limits
    forest = result.solution.forest
    gap = float(1 - result.file_bound_algbw / result.bound_algbw) * 100
    lines = [
        f"wrote {filename}: {algo.coll} on {result.topology.name} ({algo.ngpus} GPUs) for {result.runtime}, "
        f"{algo.proto}, {PLACEMENT[(algo.inplace, algo.outofplace)]}",
        f"  bound            {_gbps(result.bound_algbw)} algbw "
        f"({_bound_label(algo.coll, bool(_unbalanced_names(result)))} on this fabric)",
        *([healthy_line(result, healthy)] if healthy is not None else []),
        f"  this file's k    {_gbps(result.file_bound_algbw)} algbw bound at k = {forest.k}"
        + _shares_text(result.loop_shares)
        + _gap_text(gap),
        *_arc_lines(result),
        *_outlook_lines("this file", result.predicted),
    ]
    lines += [
        f"  size range       {range_text(result)}",
        f"  trees            {len(forest.trees)} (k = {forest.k} per root, {result.instances} instance(s)"
        + (f", {forest.layout}: docs/solver.md §9" if forest.blocks else "")
        + f"), nchunksperloop = {algo.nchunksperloop}",
        f"  serves           {result.serving.describe()}"
        + ("" if result.serving.satisfied else f" -- NOT all {result.serving.policy}"),
        f"  threadblocks     {usage.max_tbs} per GPU (limit {limits.max_tbs}), "
        f"{result.lowered.merged_tbs} send+receive merged"
        + (
            f", {plural(joined, 'tree depth')} joined to a nearer one's lanes"
            if (joined := result.lowered.joined_stages)
            else ""
        ),
        f"  channels         {usage.nchannels} (limit {limits.max_channels})",
        f"  steps            {usage.max_steps_per_tb} per threadblock at most "
        f"(limit {limits.max_steps_per_tb}), {plural(usage.max_elements_per_rank, 'XML element')} per rank "
        f"(limit {limits.max_elements_per_rank})",
        f"  buffer           {buffer_text(result)}",
        f"  verified         no errors, {len(result.verification.problems)} warning(s) (collc verify)",
        f"  loads on         {loaded_by(result.runtime)} (`collc runtime` checks an installation)",
    ]
    lines += [f"  note: {note}" for note in _notes(result)]
    lines.append("deploy:")
    lines += deploy_lines(result.runtime, filename, result.buffer_bytes)
    return lines


def _notes(result: CompileResult) -> list[str]:
    """The compile's notes, then what the predicted figures call for."""
    return [
        *result.notes,
        *_slower_notes(result),
        *_above_bound_notes(result),
        *_balanced_notes(result),
        *_bundle_notes(result),
    ]


def _bundle_notes(result: CompileResult) -> list[str]:
    """Where the file loses to the runtime at 64 MiB and wins above it, what serves those sizes: one
    file holds one range, and a bundle adds a Simple file chosen at 64 MiB (docs/compile.md §4; 1x16
    MI250 allreduce: 139.7 GB/s there against RCCL's 136.6, where this file gets 118.1)."""
    if result.proto != "Simple" or result.runtime not in RUNTIME_ENV:
        return []
    mid = next((row for row in result.predicted if row.nbytes == MID_BYTES), None)
    if (
        mid is None
        or mid.wins
        or not any(row.selected and row.nbytes > MID_BYTES for row in result.predicted)
    ):
        return []
    size = format_size(MID_BYTES)
    return [
        f"at {size} the runtime's own algorithms are predicted faster than this file; `--bundle DIR` "
        f"also compiles a Simple file chosen at {size} and gives each size to the faster file"
    ]


def _shares_text(shares: tuple[int, ...] | None) -> str:
    """How an allreduce loop shared unevenly is shared (:mod:`collc.lowering.layout`), for the report's
    bound line: its heavier roots' traffic is what that bound counts."""
    if shares is None:
        return ""
    counts = sorted(set(shares))
    return (
        f", {sum(shares)} chunks per loop shared {' or '.join(map(str, counts))} per root "
        f"(power-of-two counts on {len(shares)} GPUs)"
    )


def _above_bound_notes(result: CompileResult) -> list[str]:
    """Why an allreduce file is predicted above the bound line, or above its own trees' line: those are
    reduce-scatter then allgather, which a file overlapping the halves on opposite link directions
    beats (with a loop shared unevenly, the heavier roots load other arcs in each half); or why its
    trees' line is above the bound (trees packed for both halves at once). The ceiling that no
    allreduce exceeds (:mod:`collc.solver.ceiling`) is named, so the report never shows a figure
    above the only limit it states."""
    if result.algorithm.coll != "allreduce":  # the bound is optimal: only float noise goes above it
        return []
    bound, own = float(result.bound_algbw), float(result.file_bound_algbw)
    above = [row for row in result.predicted if row.algbw is not None and row.algbw > own * (1 + 1e-9)]
    ceiling = result.model.ceiling_algbw(result.algorithm.coll)
    limit = (
        f"no allreduce exceeds {_gbps(ceiling)} algbw on this fabric (the least bandwidth across a cut "
        "between GPUs, crossed by a whole buffer each way)"
    )
    if not above:
        if own <= bound * (1 + 1e-9):
            return []
        return [
            f"this file's trees carry its reduce-scatter and allgather halves at once on the runtime's "
            f"paths ({_gbps(own)} algbw at most), above the reduce-scatter + allgather bound; {limit}"
        ]
    sizes = ", ".join(f"{format_size(row.nbytes)} {format_figure(row.algbw)}" for row in above)
    passed = (
        "the reduce-scatter + allgather bound"
        if any(row.algbw > bound * (1 + 1e-9) for row in above)
        else "the reduce-scatter + allgather figure of this file's trees"
    )
    return [
        f"predicted above {passed} ({sizes} GB/s): the file overlaps its reduce-scatter and allgather "
        "halves on opposite directions of the busiest links, which that figure counts one after the "
        f"other; {limit}"
    ]


def _slower_notes(result: CompileResult) -> list[str]:
    slower = result.slower_in_range()
    if not slower:
        return []
    sizes = ", ".join(format_size(row.nbytes) for row in slower[:6]) + (" …" if len(slower) > 6 else "")
    return [f"the file takes sizes where it is predicted slower than the runtime's best: {sizes}"]


#: the keys of every ``collc compile -o FILE --json`` document (docs/compile.md), then the outcome keys
REPORT_KEYS = (
    "file",
    "coll",
    "runtime",
    "proto",
    "topology",
    "ngpus",
    "k",
    "layout",
    "instances",
    "nchunksperloop",
    "buffsize",
    "min_bytes",
    "max_bytes",
    "range_source",
    "bound_algbw",
    "ceiling_algbw",
    "file_bound_algbw",
    "arc_limit_algbw",
    "healthy_bound_algbw",
    "healthy_ngpus",
    "healthy_ceiling_algbw",
    "predicted",
    "threadblocks_per_gpu",
    "merged_threadblocks",
    "joined_stages",
    "lanes",
    "unsplit_groups",
    "paced_senders",
    "channels",
    "warnings",
    "loaded_by",
    "notes",
)


def report_json(result: CompileResult, filename: str, healthy: Healthy | None = None) -> dict[str, object]:
    """``collc compile --json``: the report with stable keys (figures in GB/s, sizes in bytes)."""
    algo, usage = result.algorithm, result.lowered.usage
    values = {
        "file": filename,
        "coll": algo.coll,
        "runtime": result.runtime,
        "proto": algo.proto,
        "topology": result.topology.name,
        "ngpus": algo.ngpus,
        "k": result.solution.forest.k,
        "layout": result.solution.forest.layout,
        "instances": result.instances,
        "nchunksperloop": algo.nchunksperloop,
        "buffsize": result.buffer_bytes,
        "min_bytes": algo.min_bytes,
        "max_bytes": algo.max_bytes,
        "range_source": _range_source(result),
        "bound_algbw": json_figure(result.bound_algbw),
        "ceiling_algbw": json_figure(result.model.ceiling_algbw(algo.coll)),
        "file_bound_algbw": json_figure(result.file_bound_algbw),
        "arc_limit_algbw": None if (limit := arc_limit(result)) is None else json_figure(limit.algbw),
        "healthy_bound_algbw": None if healthy is None else json_figure(healthy.algbw),
        "healthy_ngpus": None if healthy is None else healthy.num_gpus,
        "healthy_ceiling_algbw": None if healthy is None else json_figure(healthy.ceiling),
        "predicted": [row.to_json() for row in result.predicted],
        "threadblocks_per_gpu": usage.max_tbs,
        "merged_threadblocks": result.lowered.merged_tbs,
        "joined_stages": result.lowered.joined_stages,
        "lanes": "split" if result.lowered.split_lanes else "rate",
        "unsplit_groups": result.lowered.unsplit_groups,
        "paced_senders": result.lowered.paced,
        "channels": usage.nchannels,
        "warnings": len(result.verification.problems),
        "loaded_by": loaded_by(result.runtime),
        "notes": _notes(result),
    }
    return json_document(REPORT_KEYS, values)


def failure_facts(error: CollcError, topology: Topology, options: CompileOptions) -> dict[str, object]:
    """What ``collc compile --json`` knows when it writes nothing (its document's other keys are null):
    the request, and where a file was compiled but wins at no size, the keys of :func:`report_json`
    that describe it, with its simulated figures (none of them selected)."""
    unwritten = error.unwritten if isinstance(error, NoWin) else None
    facts: dict[str, object] = {
        "coll": options.coll,
        "runtime": unwritten.runtime if unwritten else options.runtime,
        "proto": options.proto,
        "topology": topology.name,
        "ngpus": topology.num_gpus,
        "predicted": [],
    }
    if unwritten is not None:
        facts.update(
            k=unwritten.k,
            layout=unwritten.layout,
            instances=unwritten.instances,
            nchunksperloop=unwritten.nchunksperloop,
            buffsize=unwritten.buffer_bytes,
            bound_algbw=json_figure(unwritten.bound_algbw),
            ceiling_algbw=json_figure(unwritten.ceiling_algbw),
            predicted=[row.to_json() for row in unwritten.predicted],
            notes=list(unwritten.notes),
        )
    return facts
