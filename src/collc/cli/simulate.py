"""`collc simulate`: predicted time, algbw and busbw per message size for collc, NCCL and the bound."""

from __future__ import annotations

import json
from pathlib import Path

import click

from collc.cli import main
from collc.cli.common import PROTOCOL, output_path, topology_argument
from collc.errors import InputError
from collc.msccl.program import Algorithm
from collc.predict.model import TopologyModel
from collc.predict.params import COLLECTIVES, protocol
from collc.predict.sweep import Sweep
from collc.sizes import format_size, parse_sizes
from collc.topology.model import Topology


def read_schedule(path: str, topology: Topology) -> Algorithm:
    """Read an MSCCL XML schedule for ``topology`` (errors are located InputErrors)."""
    from collc.msccl.reader import read_xml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(
            f"cannot read {path}: {error.strerror}", hint="give the path of an MSCCL XML file"
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text", hint="give the path of an MSCCL XML file") from None
    return read_xml(text, path, runtime=topology.metadata.runtime or "msccl-executor")


def table(result: Sweep) -> str:
    """The sweep as a fixed-width text table."""
    names = ["collc", *result.rows[0].baselines, "bound"]
    header = f"{'size':>8}" + "".join(f" | {name + ' µs':>11} {'algbw':>7} {'busbw':>7}" for name in names)
    lines = [header, "-" * len(header)]
    for row in result.rows:
        cells = [row.collc, *row.baselines.values(), row.bound]
        lines.append(
            f"{format_size(row.nbytes):>8}"
            + "".join(f" | {cell.time_us:>11.1f} {cell.algbw:>7.1f} {cell.busbw:>7.1f}" for cell in cells)
        )
    return "\n".join(lines)


def crossover_text(result: Sweep) -> str:
    if result.crossover_bytes is None:
        return "collc does not beat NCCL's algorithms at any size up to 1 TiB"
    if result.crossover_bytes == 0:
        return "collc beats NCCL's algorithms at every size"
    size = result.crossover_bytes
    return f"collc beats NCCL's algorithms from {size} bytes ({format_size(size)}) on"


@main.command()
@topology_argument
@click.argument("schedule", required=False, metavar="[SCHEDULE.xml]")
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON (keys: rows, crossover_bytes).")
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
    as_json: bool,
    plot_path: str | None,
) -> None:
    """Predict a schedule on TOPO against NCCL's ring/tree and the bound.

    Without SCHEDULE.xml the forest collc would compile is predicted analytically; with it, the program
    is simulated event by event (threadblocks, steps, shared links). See docs/cost-model.md.
    """
    if plot_path:
        from collc.predict.plot import check_picture_path

        check_picture_path(plot_path)
    program = read_schedule(schedule, topology) if schedule else None
    if program is not None and coll is not None and coll != program.coll:
        raise InputError(
            f"{schedule} is an {program.coll} schedule, not {coll}", hint=f"use --coll {program.coll}"
        )
    collective = coll or (program.coll if program else "allreduce")
    if collective not in COLLECTIVES:
        raise InputError(
            f"cannot predict {collective} schedules", hint=f"collc predicts {', '.join(COLLECTIVES)}"
        )
    chosen = protocol(proto or (program.proto if program else "Simple"))
    model = TopologyModel(topology)
    result = model.sweep(collective, parse_sizes(sizes), chosen, program)
    if plot_path:
        from collc.predict.plot import plot_sweep

        source = f"{Path(schedule).name}" if schedule else "forest model"
        plot_sweep(
            result,
            plot_path,
            f"{collective} on {topology.name} ({topology.num_gpus} GPUs, {chosen.name}, {source})",
        )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(
        f"{collective} on {topology.name} ({topology.num_gpus} GPUs), protocol {chosen.name}; "
        f"collc = {'simulation of ' + schedule if schedule else 'forest model'}; GB/s per nccl-tests"
    )
    click.echo(table(result))
    click.echo(crossover_text(result))
    if plot_path:
        click.echo(f"wrote {plot_path}")
