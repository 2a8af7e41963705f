"""`collc report`: a markdown bring-up summary of a cluster with pictures."""

from __future__ import annotations

import shlex
import sys

import click

from collc.cli import main
from collc.cli.common import output_directory, topology_argument
from collc.compile import CompileOptions, compile_schedule
from collc.predict.model import TopologyModel
from collc.predict.params import COLLECTIVES
from collc.progress import terminal_progress
from collc.topology.model import Topology


@main.command()
@topology_argument
@click.option(
    "-o",
    "--output",
    "directory",
    type=click.Path(),
    callback=output_directory,
    default="collc-report",
    show_default=True,
    help="Directory for report.md, topology.png/.svg and simulate.png.",
)
def report(topology: Topology, directory: str) -> None:
    """Summarise TOPO for a bring-up ticket: bound and bottleneck cut, forest, link utilisation,
    predicted busbw against NCCL's ring/tree, and pictures."""
    command = (
        "collc " + " ".join(shlex.quote(arg) for arg in sys.argv[1:]) if sys.argv[1:] else "collc report"
    )
    from collc.predict.report import write_report  # matplotlib: loaded only by commands that draw

    programs, protocols, written = {}, {}, {}
    with terminal_progress() as progress:  # on a terminal only
        for coll in COLLECTIVES:

            def named(stage: str, done: int, total: int | None, coll: str = coll) -> None:
                progress(f"{coll}: {stage}", done, total)

            result = compile_schedule(topology, CompileOptions(coll=coll, force=True), named)
            programs[coll] = result.algorithm
            protocols[coll] = result.proto  # as deployed: the NCCL_BUFFSIZE compile chose included
            written[coll] = not result.forced
        model = TopologyModel(topology)
        files = write_report(model, directory, command, programs, protocols, written, progress)
    click.echo(f"wrote {files.markdown}")
    for picture in files.pictures:
        click.echo(f"wrote {picture}")
