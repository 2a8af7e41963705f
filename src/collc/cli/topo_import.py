"""``collc topo import``: a topology file from NCCL/RCCL topology dumps or nvidia-smi/rocm-smi matrices."""

from __future__ import annotations

from fractions import Fraction

import click

from collc.cli.common import output_path
from collc.cli.topo import topo
from collc.errors import InputError, InvariantError
from collc.fileio import atomic_write, check_not_an_input
from collc.input_limits import MAX_BANDWIDTH_GBPS, MIN_BANDWIDTH_GBPS
from collc.numbers import ExponentOutOfRange, fraction
from collc.solver.bound import check_gpu_count
from collc.topology import parse_topology
from collc.topology.expr import ExpressionError
from collc.topology.importers import NETWORKS, FabricOptions, ImportResult, ReadOptions, import_files
from collc.topology.importers.speeds import GPU_MODELS_BY_NAME
from collc.topology.loader import NAME_HOW, name_problem
from collc.topology.units import BANDWIDTH_UNITS, parse_bandwidth


def _bandwidth(ctx: click.Context, param: click.Parameter, value: str | None) -> Fraction | None:
    """click callback: a bandwidth such as ``400 Gb/s`` or ``50`` (GB/s), inside collc's limits."""
    if value is None:
        return None
    flag = "--" + (param.name or "").replace("_", "-")
    try:
        gbps = parse_bandwidth(value, {})
    except ExpressionError as error:
        raise InputError(
            f"{flag} {value!r}: {error}", hint=f"e.g. '400 Gb/s' or 50 (GB/s); {BANDWIDTH_UNITS}"
        ) from None
    if not MIN_BANDWIDTH_GBPS <= gbps <= MAX_BANDWIDTH_GBPS:
        raise InputError(f"{flag} {value!r} is outside 1 kB/s to 1 PB/s", hint="give the port's GB/s or Gb/s")
    return gbps


def _ratio(ctx: click.Context, param: click.Parameter, value: str) -> Fraction:
    try:
        ratio: Fraction | None = fraction(value)
    except ExponentOutOfRange:
        ratio = None  # far outside the range below
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--oversubscription {value!r} is not a number", hint="e.g. 1, 1.5 or 3/2") from None
    if ratio is None or not 1 <= ratio <= 1024:
        raise InputError(f"--oversubscription {value} is outside 1 to 1024", hint="1 is a non-blocking spine")
    return ratio


@topo.command("import")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--boxes", type=click.IntRange(1, 4096), help="Boxes (default: 1, or one per FILE).")
@click.option(
    "--network",
    type=click.Choice(NETWORKS),
    default="rails",
    show_default=True,
    help="rails: port i of each box on rail leaf i; leaf-spine: all ports of a unit on one leaf.",
)
@click.option(
    "--boxes-per-leaf",
    type=click.IntRange(1, 4096),
    default=32,
    show_default=True,
    help="Boxes under one leaf switch (a scalable unit).",
)
@click.option(
    "--oversubscription",
    default="1",
    callback=_ratio,
    show_default=True,
    metavar="RATIO",
    help="Leaf downlink/uplink ratio to the spine (1 = non-blocking).",
)
@click.option(
    "--nic-speed",
    callback=_bandwidth,
    metavar="SPEED",
    help="Every NIC port's speed, e.g. '400 Gb/s' (default: the dump's).",
)
@click.option(
    "--link-speed",
    callback=_bandwidth,
    metavar="SPEED",
    help="GB/s per NVLink or xGMI link (default: the documented figure of the GPU generation).",
)
@click.option(
    "--gpu-model",
    type=click.Choice(sorted(GPU_MODELS_BY_NAME), case_sensitive=False),
    help="The GPU model, for nvidia-smi/rocm-smi texts (they name none).",
)
@click.option("--name", default="imported", show_default=True, help="The topology's name.")
@click.option("-o", "--output", type=click.Path(), callback=output_path, help="Write here, not stdout.")
def import_command(
    files: tuple[str, ...],
    boxes: int | None,
    network: str,
    boxes_per_leaf: int,
    oversubscription: Fraction,
    nic_speed: Fraction | None,
    link_speed: Fraction | None,
    gpu_model: str | None,
    name: str,
    output: str | None,
) -> None:
    """Write a topology from what the machines report.

    FILE is an NCCL/RCCL topology dump (the XML that NCCL_TOPO_DUMP_FILE names) or, as a fallback, the
    output of `nvidia-smi topo -m` or `rocm-smi --showtopo`. One FILE describes every box; several are
    one per box, in box order. The report lists every figure that was not in the input.
    """
    check_not_an_input([output], files)
    problem = name_problem(name)
    if problem:
        raise InputError(f"--name: {problem}", hint=NAME_HOW)
    result = import_files(
        files,
        ReadOptions(nic_speed=nic_speed, link_speed=link_speed, gpu_model=gpu_model),
        FabricOptions(boxes, network, boxes_per_leaf, oversubscription, name),
    )
    shown_as = output or "stdout"
    _check_valid(result, shown_as)
    if output:
        atomic_write(output, result.yaml_text)
    else:
        click.echo(result.yaml_text, nl=False)
    for line in report_lines(result, shown_as):
        click.echo(line, err=output is None)


def _check_valid(result: ImportResult, shown_as: str) -> None:
    """The written file must load and have 2+ GPUs; anything else is a bug in the importer."""
    try:
        topology, _warnings = parse_topology(result.yaml_text, shown_as)
        check_gpu_count(topology.num_gpus, topology.source)
    except InputError as error:
        raise InvariantError(f"the imported topology does not validate: {error}") from error


def report_lines(result: ImportResult, shown_as: str) -> list[str]:
    """What was imported, the assumptions (figures not in the input) and what was left out."""
    lines = [f"imported: {result.boxes} box(es) of {result.gpus_per_box} GPU(s) -> {shown_as} (validates)"]
    if result.assumptions:
        lines.append("assumptions (not in the input):")
        lines += [f"  - {text}" for text in result.assumptions]
    if result.notes:
        lines.append("notes:")
        lines += [f"  - {text}" for text in result.notes]
    return lines
