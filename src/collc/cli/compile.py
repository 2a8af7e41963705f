"""``collc compile TOPO -o FILE``: a verified MSCCL XML schedule for a topology.

The command is a thin layer over :func:`collc.compile.compile_schedule`: parse options, compile,
write the file atomically (only a verified program is ever written), print the report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from collc.cli import main
from collc.cli.common import PROTOCOL, output_directory, output_path, topology_argument
from collc.cli.diff import healthy_bound
from collc.cli.jsonout import json_option, record_json_facts
from collc.compile.bundle import BUNDLE_KEYS, compile_bundle
from collc.compile.driver import LANE_CHOICES, NoWin
from collc.compile.flags import CompileFlags
from collc.compile.report import REPORT_KEYS, failure_facts, report_json, report_lines, unwritten_lines
from collc.errors import CollcError, InputError
from collc.fileio import atomic_write
from collc.jsondoc import json_document
from collc.lowering.limits import RUNTIMES
from collc.lowering.plan import COLLECTIVES
from collc.mscclpp.compile import compile_output, wants_plan
from collc.progress import terminal_progress
from collc.topology.model import Topology

#: flags that choose what one file is for; a bundle compiles every protocol and ranges each file itself
_NOT_FOR_BUNDLES = {"proto": "--proto", "min_bytes": "--min-bytes", "max_bytes": "--max-bytes"}


def _given(name: str) -> bool:
    """Whether the user set the current command's parameter ``name`` (not left to its default)."""
    source = click.get_current_context().get_parameter_source(name)
    return source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def _bundled_collectives(coll: str) -> tuple[str, ...]:
    """The collectives ``--bundle`` compiles: ``--coll``'s where given, else all three. The flags of
    :data:`_NOT_FOR_BUNDLES` are refused: a bundle would silently ignore them."""
    for name, flag in _NOT_FOR_BUNDLES.items():
        if _given(name):
            raise InputError(
                f"{flag} does not apply to --bundle: a bundle compiles every protocol and chooses each "
                "file's size range from its simulation",
                hint=f"drop {flag}, or write one file with -o FILE",
            )
    return (coll,) if _given("coll") else COLLECTIVES


def compile_flag_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: the flags that choose the schedule (:class:`CompileFlags`), shared with ``collc submit``."""
    for option in reversed(_FLAG_OPTIONS):
        command = option(command)
    return command


_FLAG_OPTIONS = [
    click.option("--coll", type=click.Choice(COLLECTIVES), default="allreduce", show_default=True),
    click.option(
        "--runtime", type=click.Choice(RUNTIMES), default=None, help="Default: the topology's runtime."
    ),
    click.option("--proto", type=PROTOCOL, default="Simple", show_default=True, help="Simple, LL or LL128."),
    click.option("--inplace", "only_inplace", is_flag=True, help="Only for in-place calls (default: both)."),
    click.option("--outofplace", "only_outofplace", is_flag=True, help="Only for out-of-place calls."),
    click.option(
        "--min-bytes",
        default=None,
        metavar="SIZE",
        help="Smallest call size the file takes, e.g. 1MiB "
        "[default: where it is predicted to beat the runtime].",
    ),
    click.option(
        "--max-bytes",
        default=None,
        metavar="SIZE",
        help="Largest call size, 0 = unbounded [default: where it is predicted to beat the runtime].",
    ),
    click.option(
        "--instances",
        type=int,
        default=None,
        help="Copies of the schedule [default: 1; 2 for a reduce-scatter whose NIC-feeding pairs would carry "
        "one transfer each].",
    ),
    click.option("--k", "k", type=int, default=None, help="Exactly K trees per root (no search)."),
    click.option("--max-k", type=int, default=None, help="At most MAX_K trees per root."),
    click.option(
        "--align",
        type=int,
        default=None,
        help="Serve every count that is a multiple of ALIGN elements (default: every power of two).",
    ),
    click.option(
        "--buffsize",
        default=None,
        metavar="SIZE",
        help="NCCL_BUFFSIZE the Simple file is deployed with, e.g. 4MiB (the runtime's default) "
        "[default: 4MiB, or 128KiB, 256KiB or 512KiB where the simulation gains 2 %; "
        "deploy says what to set].",
    ),
    click.option(
        "--lanes",
        type=click.Choice(LANE_CHOICES),
        default="auto",
        show_default=True,
        help="How transfers are spread over threadblocks: 'rate' sizes each GPU pair's lanes by its "
        "traffic, 'split' gives every transfer its own lane as far as the threadblocks allow, 'auto' "
        "simulates both where the program is small enough and keeps the faster.",
    ),
    click.option(
        "--force",
        is_flag=True,
        help="Write the file even if it is predicted slower than the runtime's own algorithms at every size; "
        "with --bundle, also replace DIR.deploy.md and DIR.manifest.json.",
    ),
]


@main.command("compile")
@topology_argument
@click.option(
    "-o",
    "--output",
    default=None,
    type=click.Path(),
    callback=output_path,
    help="XML file to write (or --bundle).",
)
@compile_flag_options
@json_option(
    lambda params: BUNDLE_KEYS if params.get("bundle_dir") else REPORT_KEYS,
    help="Print the report as JSON: one document with the same keys whatever the outcome.",
)
@click.option("--auto-range", is_flag=True, hidden=True, help="The default now; accepted for old scripts.")
@click.option(
    "--bundle",
    "bundle_dir",
    default=None,
    type=click.Path(),
    callback=output_directory,
    help="Instead of -o: a deployable directory for every collective (only --coll's where given) and "
    "protocol over disjoint size ranges, with DIR.deploy.md and DIR.manifest.json next to it.",
)
def compile_command(
    topology: Topology,
    output: str | None,
    coll: str,
    runtime: str | None,
    proto: str,
    only_inplace: bool,
    only_outofplace: bool,
    min_bytes: str | None,
    max_bytes: str | None,
    instances: int | None,
    k: int | None,
    max_k: int | None,
    align: int | None,
    force: bool,
    buffsize: str | None,
    lanes: str,
    as_json: bool,
    auto_range: bool,
    bundle_dir: str | None,
) -> None:
    """Compile TOPO's fastest spanning-tree schedule into a verified MSCCL XML algorithm file.

    k is chosen so that the runtime selects the file for the counts you call with (see --align) and
    the program fits the runtime's limits, by simulating the candidates. The file's size range covers
    only the sizes where it is predicted to beat the runtime's own ring and tree, and the report
    shows the simulated algbw of the written file next to them and the bound.
    """
    if (output is None) == (bundle_dir is None):
        raise InputError(
            "give either -o FILE (one algorithm) or --bundle DIR (a deployable directory)",
            hint="e.g. collc compile dgx-a100 -o allreduce.xml, or collc compile dgx-a100 --bundle algos",
        )
    target = Path(output or bundle_dir)
    options = CompileFlags(
        coll=coll,
        runtime=runtime,
        proto=proto,
        only_inplace=only_inplace,
        only_outofplace=only_outofplace,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        instances=instances,
        k=k,
        max_k=max_k,
        align=align,
        force=force,
        buffsize=buffsize,
        lanes=lanes,
    ).options()
    if bundle_dir is not None and wants_plan(topology, options):
        raise InputError("--bundle writes MSCCL XML files", hint="write an MSCCL++ plan with -o PLAN.json")
    if bundle_dir is not None:
        with terminal_progress(as_json) as progress:
            bundle = compile_bundle(topology, options, bundle_dir, _bundled_collectives(coll), progress)
        if as_json:
            click.echo(json.dumps(json_document(BUNDLE_KEYS, bundle.to_json()), indent=2))
        else:
            click.echo("\n".join(bundle.lines()))
        return
    try:
        with terminal_progress(as_json) as progress:  # on a terminal only, never with --json
            result, text = compile_output(topology, options, progress)  # XML, or an MSCCL++ plan
    except CollcError as error:
        record_json_facts(failure_facts(error, topology, options))  # for the --json failure document
        if isinstance(error, NoWin) and not as_json:
            click.echo("\n".join(unwritten_lines(error)))
        raise
    atomic_write(target, text)
    healthy = healthy_bound(coll)
    if as_json:
        click.echo(json.dumps(report_json(result, output, healthy), indent=2))
    else:
        click.echo("\n".join(report_lines(result, output, healthy)))
