"""`collc simulate`: predicted time, algbw and busbw per message size for collc, NCCL and the bound."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click

from collc.cli import main
from collc.cli.common import PROTOCOL, directory_files, output_path, read_schedule_text, topology_argument
from collc.cli.jsonout import json_option
from collc.compile.driver import deployed_protocol
from collc.compile.flags import buffer_size
from collc.compile.outlook import CallOutlook, DeployedFile, directory_outlook, nccl_tests_bytes, selects
from collc.errors import CollcError, InputError, Location, location_in
from collc.jsondoc import json_document
from collc.msccl.program import Algorithm
from collc.predict.model import TopologyModel
from collc.predict.network import Network
from collc.predict.params import COLLECTIVES, DEFAULT_BUFFER_BYTES, Protocol, protocol, simple
from collc.predict.sweep import Predictor, Sweep
from collc.progress import Report, silent, terminal_progress
from collc.sizes import format_figure, format_size, parse_sizes
from collc.topology.model import Topology
from collc.verify import deployed_buffer
from collc.verify.report import Problem

if TYPE_CHECKING:
    from collc.mscclpp.reader import Plan


class Schedule(NamedTuple):
    """A schedule file read for the simulation: its program, and for an MSCCL++ plan the predictor of
    the plan's own timing and the plan itself (whose call rule differs from MSCCL XML's)."""

    program: Algorithm
    plan_cost: Predictor | None = None
    plan: Plan | None = None

    def takes(self, nbytes: int, runtime: str) -> bool:
        """Whether the runtime runs this file for a call of ``nbytes`` (in-place or out-of-place)."""
        if self.plan is not None:
            from collc.mscclpp.verify import takes_call

            return takes_call(self.plan, nbytes)
        return selects(self.program, nbytes, runtime)


def read_schedule(path: str, topology: Topology) -> Schedule:
    """Read an MSCCL XML schedule or an MSCCL++ plan for ``topology`` (errors are located InputErrors)."""
    from collc.msccl.reader import read_xml
    from collc.mscclpp.lower_sim import plan_schedule
    from collc.mscclpp.reader import looks_like_plan

    text = read_schedule_text(path)
    if looks_like_plan(text):
        from collc.mscclpp.reader import read_plan
        from collc.mscclpp.verify import lint_plan

        plan = read_plan(text, path)
        refuse_invalid(lint_plan(plan), path, "mscclpp")
        check_gpu_count(len(plan.gpus), topology, plan.locate(("gpus",)) or location_in(path))
        return Schedule(*plan_schedule(text, path, Network.of(topology)), plan)
    runtime = topology.metadata.runtime or "msccl-executor"
    algo = read_xml(text, path, runtime=runtime)
    refuse_invalid(_lint_xml(algo, path, runtime), path, runtime)
    return Schedule(algo)


def _lint_xml(algo: Algorithm, path: str, runtime: str) -> list[Problem]:
    """The problems ``collc verify`` finds in ``algo`` without simulating it (linear in the steps)."""
    from collc.verify.fold import fold_threadblock
    from collc.verify.lint import lint
    from collc.verify.runtimes import profile

    folded = {(gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs}
    return lint(algo, profile(runtime), folded, filename=path)


def check_gpu_count(ngpus: int, topology: Topology, location: Location) -> None:
    """A schedule runs on as many GPUs as it names: one for another count is refused (before a plan's
    timing model, which maps every rank to a GPU of the fabric, is built)."""
    if ngpus != topology.num_gpus:
        raise InputError(
            f"the schedule is for {ngpus} GPUs but {topology.name!r} has {topology.num_gpus}",
            location=location,
            hint="simulate it on the fabric it was written for, or select its GPUs with --gpus",
        )


def check_plan_options(proto: str | None, buffsize: str | None) -> None:
    """An MSCCL++ plan runs the Simple protocol and moves data in its own units (docs/mscclpp.md): a
    ``--proto`` other than Simple or a ``--buffsize`` would be a prediction of something that never runs."""
    if proto is not None and protocol(proto).name != "Simple":
        raise InputError(
            f"an MSCCL++ plan runs the Simple protocol, not {protocol(proto).name}",
            hint="drop --proto (collc's plans write straight into the peer's buffers)",
        )
    if buffsize is not None:
        raise InputError(
            "--buffsize sets NCCL's and RCCL's pipelining grain; an MSCCL++ plan has none",
            hint="drop --buffsize for a plan",
        )


def refuse_invalid(problems: list[Problem], path: str, runtime: str) -> None:
    """Refuse (exit 1, like ``collc verify``) a file with an error among ``problems`` (its static checks):
    the runtime rejects it or hangs on it, so a predicted time for it would be a figure of nothing that
    can run. The data simulation stays with ``collc verify``."""
    errors = [problem for problem in problems if problem.severity == "error"]
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CollcError(
            f"{first.message} [{first.rule}]{more}; a file collc verify rejects is not simulated",
            location=first.location or location_in(path),
            hint=f"`collc verify {path} --runtime {runtime}` lists every problem and how to fix it",
        )


def table(result: Sweep) -> str:
    """The sweep as a fixed-width text table."""
    names = ["collc", *result.rows[0].baselines, "bound"]
    header = f"{'size':>8}" + "".join(f" | {name + ' µs':>11} {'algbw':>7} {'busbw':>7}" for name in names)
    lines = [header, "-" * len(header)]
    for row in result.rows:
        cells = [row.collc, *row.baselines.values(), row.bound]
        lines.append(
            f"{format_size(row.nbytes):>8}"
            + "".join(
                f" | {format_figure(cell.time_us):>11} {format_figure(cell.algbw):>7} "
                f"{format_figure(cell.busbw):>7}"
                for cell in cells
            )
        )
    return "\n".join(lines)


def _buffer_clause(proto: str, buffer: int | None, recorded: int | None) -> str:
    """Which NCCL_BUFFSIZE a Simple file is simulated with: the one given, the one the file's name
    records (:func:`collc.verify.deployed_buffer`: collc writes it where compile deploys a
    smaller buffer), or the runtime's default."""
    if proto != "Simple":
        return ""
    if buffer is not None:
        source = ", which its name records" if recorded is not None else ""
        return f" at NCCL_BUFFSIZE={format_size(buffer)}{source}"
    return f" at the runtime's default NCCL_BUFFSIZE={format_size(DEFAULT_BUFFER_BYTES)}"


def above_bound(result: Sweep) -> str | None:
    """The note for an allreduce simulated above the bound column: that column is reduce-scatter then
    allgather, which overlapped halves beat; it names the ceiling no allreduce exceeds
    (:mod:`collc.solver.ceiling`). None where collc stays at or below the column."""
    above = [row for row in result.rows if row.collc.algbw > row.bound.algbw * (1 + 1e-9)]
    if result.collective != "allreduce" or not above or result.ceiling_algbw is None:
        return None
    return (
        f"note: collc is above the bound column at {format_size(above[0].nbytes)} and up to "
        f"{format_figure(max(row.collc.algbw for row in above))} GB/s algbw: that column is "
        "reduce-scatter then allgather, and the file overlaps the halves on opposite directions of the "
        "busiest links; no "
        f"allreduce exceeds {format_figure(result.ceiling_algbw)} GB/s algbw on this fabric"
    )


def summary(result: Sweep, taken: Collection[int] | None = None) -> str:
    """Where collc wins, read off the table itself (so the sentence cannot contradict it). ``taken``:
    the sizes of the table the file's range takes (None: every size); at the others the runtime runs
    its own algorithm whatever the table's collc row says, so they are no win, and the sentence says so."""
    sizes = [row.nbytes for row in result.rows]
    taken = set(sizes if taken is None else taken)
    if not taken:
        return (
            "the file takes no size of the table (its size range: an XML file's minBytes/maxBytes, a "
            "plan's min/max_message_size): the runtime runs its own "
            "algorithms at every one; the collc row shows the file as if it took them"
        )
    wins = set(result.winning_sizes()) & taken
    claim = "collc is predicted at least as fast as the runtime's algorithms at"
    if len(taken) < len(sizes):
        if wins == taken:
            return f"{claim} every size the file takes ({_spans(sizes, taken)} of the table)"
        some = f"{claim} {_spans(sizes, wins)}" if wins else "collc is not predicted faster at any"
        return f"{some} of the sizes the file takes ({_spans(sizes, taken)} of the table)"
    if not wins:
        return "collc is not predicted faster than the runtime's algorithms at any size of the table"
    if len(wins) == len(sizes):
        return f"{claim} every size of the table"
    return f"{claim} {_spans(sizes, wins)} (sizes of the table)"


def _spans(sizes: list[int], chosen: set[int]) -> str:
    """The runs of consecutive ``sizes`` (in table order) that are in ``chosen``, as "1MiB-1GiB, 8GiB"."""
    runs: list[list[int]] = []
    previous = False
    for size in sizes:
        inside = size in chosen
        if inside and previous:
            runs[-1].append(size)
        elif inside:
            runs.append([size])
        previous = inside
    return ", ".join(
        format_size(run[0]) if len(run) == 1 else f"{format_size(run[0])}-{format_size(run[-1])}"
        for run in runs
    )


def compiled_program(
    topology: Topology, collective: str, proto: str, buffsize: int | None, progress: Report = silent
) -> tuple[Algorithm, Protocol, str]:
    """The file ``collc compile`` would write (forced where it wins nowhere), the model of its protocol
    as deployed (with the buffer compile chose), and how it was chosen."""
    from collc.compile import CompileOptions, compile_schedule

    options = CompileOptions(coll=collective, proto=proto, force=True, buffsize=buffsize)
    result = compile_schedule(topology, options, progress)
    algo = result.algorithm
    low, high = result.byte_range.min_bytes, result.byte_range.max_bytes
    span = f"{format_size(low) if low else '0'}..{format_size(high) if high else 'unbounded'}"
    buffer = f", NCCL_BUFFSIZE={format_size(result.buffer_bytes)}" if result.buffer_bytes else ""
    return (
        algo,
        result.proto,
        f"the file `collc compile` writes (k = {result.solution.forest.k}, takes calls of {span}{buffer})",
    )


def deployed_files(directory: str, topology: Topology, buffer: int | None) -> list[DeployedFile]:
    """Every file of ``directory`` in the runtime's order (:func:`~collc.cli.common.directory_files`),
    read and linted as :func:`read_schedule` does, each Simple file at ``buffer`` or else the
    NCCL_BUFFSIZE its name records. An MSCCL++ plan is refused: the runtimes that scan a directory
    load MSCCL XML."""
    files = []
    for path in directory_files(directory, "simulate"):
        algo, plan_cost, _ = read_schedule(str(path), topology)
        if plan_cost is not None:
            raise InputError(
                f"{path} is an MSCCL++ plan; a directory of algorithm files (MSCCL_ALGO_DIR) holds MSCCL XML",
                hint=f"simulate the plan on its own: collc simulate TOPO {path}",
            )
        files.append(
            DeployedFile(path.name, algo, deployed_protocol(algo.proto, deployed_buffer(algo, buffer)))
        )
    return files


def refuse_for_directory(directory: str, **given: str | None) -> None:
    """Refuse ``collc simulate`` flags (``given``: flag name -> value) that do not apply to a directory."""
    for name, value in given.items():
        if value is not None:
            flag = "--" + name
            raise InputError(
                f"{flag} does not apply to a directory: each file runs at its own protocol",
                hint=f"drop {flag}, or simulate one file of {directory}",
            )


def simulate_directory(
    topology: Topology, directory: str, coll: str | None, sizes: str, buffsize: str | None, as_json: bool
) -> None:
    """``collc simulate TOPO DIR``: what a deployed directory (a bundle, or any MSCCL_ALGO_DIR) does
    for each call, per collective: the file the runtime selects and its simulation, or the runtime's
    own algorithms where no file takes the call (:func:`~collc.compile.outlook.directory_outlook`)."""
    buffer = None if buffsize is None else buffer_size(buffsize, "Simple")
    files = deployed_files(directory, topology, buffer)
    runtime = topology.metadata.runtime or "msccl-executor"
    ours = [item for item in files if item.algo.ngpus == topology.num_gpus]  # the others never run here
    collectives = [coll] if coll else [c for c in COLLECTIVES if any(i.algo.coll == c for i in ours)]
    if not collectives:
        raise InputError(
            f"no file in {directory} is for {topology.num_gpus} GPUs ({topology.name!r})",
            hint="simulate the directory on the fabric its files were written for",
        )
    model = TopologyModel(topology)
    requested = parse_sizes(sizes)
    results = {}
    with terminal_progress(as_json) as progress:  # on a terminal only, never with --json
        for done, collective in enumerate(collectives):
            progress("simulate: collectives", done, len(collectives))
            calls = _calls(collective, requested, topology)
            results[collective] = directory_outlook(model, files, collective, calls, runtime)
    if as_json:
        values = {
            "directory": directory,
            "runtime": runtime,
            "files": [item.name for item in files],
            "collectives": {c: [row.to_json() for row in rows] for c, rows in results.items()},
        }
        click.echo(json.dumps(json_document(DIRECTORY_KEYS, values), indent=2))
        return
    click.echo(
        f"{directory} on {topology.name} ({topology.num_gpus} GPUs): {len(files)} file(s), the first that "
        f"takes a call runs it ({runtime}'s rule, sorted file order); GB/s per nccl-tests"
    )
    for collective, rows in results.items():
        click.echo("")
        click.echo(directory_table(collective, rows))
        click.echo(directory_summary(rows))
        if all(row.file is None for row in rows):
            counts = ", ".join(
                map(str, sorted({i.algo.nchunksperloop for i in ours if i.algo.coll == collective}))
            )
            click.echo(
                f"note: a file takes only calls whose element count its nchunksperloop ({counts}) divides, "
                "and only in its size range; give such sizes with --sizes"
            )
        shared = [row.nbytes for row in rows if row.takers > 1]
        if shared and runtime == "rccl":
            click.echo(
                f"note: {len(shared)} size(s) ({format_size(shared[0])}…) are taken by more than one file; "
                "RCCL scans the directory unsorted, so it may run another of them"
            )


#: the file column where no file takes the call
RUNTIME_LABEL = "(runtime's own)"

#: the keys of every ``collc simulate --json`` document of one schedule, then the outcome keys
SWEEP_KEYS = (
    "collective",
    "proto",
    "num_gpus",
    "bound_algbw",
    "ceiling_algbw",
    "rows",
    "collc_wins",
    "crossover_bytes",
)
#: the keys of every ``collc simulate TOPO DIR --json`` document, then the outcome keys
DIRECTORY_KEYS = ("directory", "runtime", "files", "collectives")


def _is_directory(schedule: str | None) -> bool:
    """Whether SCHEDULE names a directory (a bundle, an MSCCL_ALGO_DIR) rather than one file."""
    return schedule is not None and Path(schedule).is_dir()


def _calls(coll: str, requested: list[int], topology: Topology) -> list[int]:
    """The call sizes nccl-tests issues for the sizes asked for (:func:`nccl_tests_bytes`)."""
    return sorted(
        {size for wanted in requested if (size := nccl_tests_bytes(coll, wanted, topology.num_gpus))}
    )


def directory_table(collective: str, rows: list[CallOutlook]) -> str:
    """One collective's calls on a directory as a fixed-width text table."""
    width = max(len(RUNTIME_LABEL), *(len(row.file or "") for row in rows))
    header = (
        f"{collective + ' size':>18}  {'file':<{width}} {'algbw':>7} {'busbw':>7}  "
        f"{'ring':>7} {'tree':>7} {'bound':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        collc = f"{'-':>7} {'-':>7}"
        if row.algbw is not None and row.busbw is not None:
            collc = f"{format_figure(row.algbw):>7} {format_figure(row.busbw):>7}"
        tree = f"{format_figure(row.tree_algbw) if row.tree_algbw is not None else '-':>7}"
        lines.append(
            f"{format_size(row.nbytes):>18}  {row.file or RUNTIME_LABEL:<{width}} {collc}  "
            f"{format_figure(row.ring_algbw):>7} {tree} {format_figure(row.bound_algbw):>7}"
        )
    return "\n".join(lines)


def directory_summary(rows: list[CallOutlook]) -> str:
    """Which sizes the files take and whether each is predicted at least as fast as the runtime
    there, read off the table itself."""
    taken = [row for row in rows if row.file is not None]
    if not taken:
        return "no file takes any size of the table: the runtime's own algorithms run every call"
    losing = [row for row in taken if row.loses]
    spans = _spans([row.nbytes for row in rows], {row.nbytes for row in taken})
    if not losing:
        return f"files take {spans} (sizes of the table), each predicted at least as fast as the runtime"
    slower = _spans([row.nbytes for row in rows], {row.nbytes for row in losing})
    return (
        f"files take {spans} (sizes of the table); at {slower} the file taken is predicted slower than "
        "the runtime's own algorithms"
    )


@main.command()
@topology_argument
@click.argument("schedule", required=False, metavar="[SCHEDULE.xml|DIR]")
@click.option(
    "--coll",
    type=click.Choice(COLLECTIVES),
    default=None,
    help="Collective (default: the schedule's, else allreduce).",
)
@click.option(
    "--sizes", default="1KiB:8GiB", show_default=True, help="START:END[:FACTOR] or a comma-separated list."
)
@click.option("--proto", type=PROTOCOL, default=None, help="Protocol (default: the schedule's, else Simple).")
@click.option(
    "--buffsize",
    default=None,
    metavar="SIZE",
    help="NCCL_BUFFSIZE the Simple file runs with [default: the runtime's 4MiB for a file; without one, "
    "what compile chooses].",
)
@json_option(
    lambda params: DIRECTORY_KEYS if _is_directory(params.get("schedule")) else SWEEP_KEYS,
    help="Print JSON (keys: rows, crossover_bytes).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(),
    callback=output_path,
    default=None,
    help="Write the algbw plot (PNG/SVG).",
)
def simulate(
    topology: Topology,
    schedule: str | None,
    coll: str | None,
    sizes: str,
    proto: str | None,
    buffsize: str | None,
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Predict a schedule on TOPO against NCCL's ring/tree and the bound.

    The program is simulated event by event (threadblocks, steps, shared links): SCHEDULE.xml, or
    without it the file `collc compile` would write. A file with an error that `collc verify` finds
    without simulating it is not predicted (exit 1). A DIR (a bundle, an MSCCL_ALGO_DIR) shows, per
    call size, the file the runtime selects and its prediction. See docs/cost-model.md.
    """
    if _is_directory(schedule):
        refuse_for_directory(schedule, proto=proto, plot=plot_path)
        simulate_directory(topology, schedule, coll, sizes, buffsize, as_json)
        return
    if plot_path:
        from collc.predict.plot import check_picture_path

        check_picture_path(plot_path)
    read = read_schedule(schedule, topology) if schedule else None
    program, plan_cost = (read.program, read.plan_cost) if read else (None, None)
    if program is not None and coll is not None and coll != program.coll:
        raise InputError(
            f"{schedule} is an {program.coll} schedule, not {coll}", hint=f"use --coll {program.coll}"
        )
    if program is not None:
        check_gpu_count(program.ngpus, topology, location_in(schedule, program.line))
    if plan_cost is not None:
        check_plan_options(proto, buffsize)
    collective = coll or (program.coll if program else "allreduce")
    if collective not in COLLECTIVES:
        raise InputError(
            f"cannot predict {collective} schedules", hint=f"collc predicts {', '.join(COLLECTIVES)}"
        )
    chosen = protocol(proto or (program.proto if program else "Simple"))
    buffer = None if buffsize is None else buffer_size(buffsize, chosen.name)
    recorded = None  # the buffer the file's name records, used where none is given
    if program is not None and buffer is None and chosen.name == program.proto:
        buffer = recorded = deployed_buffer(program, None)
    if buffer is not None:
        chosen = simple(buffer)
    requested = parse_sizes(sizes)
    from collc.compile.outlook import served_size

    with terminal_progress(as_json) as progress:  # on a terminal only, never with --json
        if program is None:
            program, chosen, source = compiled_program(topology, collective, chosen.name, buffer, progress)
        else:
            source = f"simulation of {schedule}" + (
                " (an MSCCL++ plan)" if plan_cost else _buffer_clause(chosen.name, buffer, recorded)
            )
        served = sorted({served_size(program, size) for size in requested})
        moved = [size for size in requested if served_size(program, size) != size]
        model = TopologyModel(topology)
        result = model.sweep(collective, served, chosen, program, plan_cost, progress)
    if plot_path:
        from collc.predict.plot import plot_sweep

        plot_sweep(
            result,
            plot_path,
            f"{collective} on {topology.name} ({topology.num_gpus} GPUs, {chosen.name})",
        )
    if as_json:
        click.echo(json.dumps(json_document(SWEEP_KEYS, result.to_json()), indent=2))
        return
    click.echo(
        f"{collective} on {topology.name} ({topology.num_gpus} GPUs), protocol {chosen.name}; "
        f"collc = {source}; ring/tree: the runtime's, at their best protocol; GB/s per nccl-tests"
    )
    click.echo(table(result))
    if moved:
        click.echo(
            f"note: the file serves only counts divisible by nchunksperloop = {program.nchunksperloop}; "
            f"{len(moved)} size(s) moved to the nearest size it serves ({format_size(moved[0])} -> "
            f"{format_size(served_size(program, moved[0]))}…)"
        )
    above = above_bound(result)
    if above:
        click.echo(above)
    runtime = topology.metadata.runtime or "msccl-executor"  # as read_schedule reads the file
    taken = None if read is None else [row.nbytes for row in result.rows if read.takes(row.nbytes, runtime)]
    click.echo(summary(result, taken))
    if plot_path:
        click.echo(f"wrote {plot_path}")
