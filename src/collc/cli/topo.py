"""``collc topo``: list, show, validate and export topologies."""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import click

from collc.cli import main
from collc.cli.common import current_topology_source, output_path, topology_argument
from collc.cli.jsonout import json_option
from collc.fileio import atomic_write
from collc.jsondoc import json_document
from collc.numbers import fraction
from collc.sizes import plural
from collc.solver.bound import check_gpu_count
from collc.topology import Topology, list_presets
from collc.topology.export import EXPORT_FORMATS, exact_number, export
from collc.topology.presets import declared_parameters
from collc.topology.summary import Summary, format_gbps, summarize, value_range


def printable_text(text: str) -> str:
    """``text`` for a terminal: characters that are not printable (controls, bidi overrides that would
    reorder what follows) as ``\\uXXXX``, so a file's free text cannot disguise the output."""
    return "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in text)


@main.group()
def topo() -> None:
    """Inspect, check and convert topologies (files or shipped presets)."""


@topo.command("list")
def list_command() -> None:
    """List the shipped presets with a one-line description."""
    presets = list_presets()
    width = max(len(name) for name, _description in presets)
    for name, description in presets:
        click.echo(f"{name.ljust(width)}  {printable_text(description)}")


@topo.command()
@topology_argument
def validate(topology: Topology) -> None:
    """Check a topology; exit 0 when valid, 2 with a located message when not."""
    check_gpu_count(topology.num_gpus, topology.source)
    sizes = ", ".join(
        [
            plural(topology.num_gpus, "GPU"),
            plural(len(topology.nodes), "node"),
            plural(len(topology.links), "link"),
        ]
    )
    click.echo(f"ok: {topology.name}: {sizes}")


@topo.command("export")
@topology_argument
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="flat", show_default=True)
@click.option("-o", "--output", type=click.Path(), callback=output_path, help="Write here, not stdout.")
def export_command(topology: Topology, fmt: str, output: str | None) -> None:
    """Write the topology as flat YAML (reads back to the same graph), JSON or Graphviz DOT."""
    text = export(topology, fmt)
    if output:
        atomic_write(output, text)
    else:
        click.echo(text, nl=False)


#: the keys of every ``collc topo show --json`` document, then the outcome keys
SHOW_KEYS = (
    "name",
    "description",
    "source",
    "parameters",
    "metadata",
    "nodes",
    "links",
    "link_classes",
    "per_gpu_egress_gbps",
    "per_gpu_ingress_gbps",
    "ranks",
)


@topo.command()
@topology_argument
@json_option(SHOW_KEYS, help="Print the figures as JSON.")
def show(topology: Topology, as_json: bool) -> None:
    """Nodes by kind, link classes, per-GPU ingress/egress bandwidth and the rank map."""
    summary = summarize(topology)
    parameters = _parameters()
    if as_json:
        document = json_document(SHOW_KEYS, _show_document(topology, summary, parameters))
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo("\n".join(_show_lines(topology, summary, parameters)))


def _parameters() -> dict[str, dict[str, Any]]:
    """Declared parameters of the shown topology with their values (after ``--set``)."""
    source, settings = current_topology_source()
    declared = declared_parameters(source)
    result: dict[str, dict[str, Any]] = {}
    for name, parameter in declared.items():
        value = fraction(settings[name]) if name in settings else parameter.default
        result[name] = {
            "value": exact_number(value),
            "default": exact_number(parameter.default),
            "description": parameter.description,
        }
    return result


def _range_text(values: dict[str, Fraction]) -> str:
    low, high = value_range(values)
    if low == high:
        return f"{format_gbps(low)} GB/s"
    return f"{format_gbps(low)}-{format_gbps(high)} GB/s (min-max)"


def _show_lines(topology: Topology, summary: Summary, parameters: dict[str, dict[str, Any]]) -> list[str]:
    description = printable_text(topology.description) if topology.description else ""
    lines = [f"{topology.name}: {description}" if description else topology.name]
    lines.append(f"source: {topology.source}")
    if parameters:
        shown = ", ".join(f"{name}={p['value']} (default {p['default']})" for name, p in parameters.items())
        lines.append(f"parameters: {shown}")
    meta = topology.metadata
    facts = [
        f"GPU model {meta.gpu_model}" if meta.gpu_model else None,
        f"{meta.sms_per_gpu} SMs/CUs per GPU" if meta.sms_per_gpu else None,
        f"runtime {meta.runtime}" if meta.runtime else None,
    ]
    if any(facts):
        lines.append("metadata: " + ", ".join(fact for fact in facts if fact))
    counts = summary.counts
    lines.append(f"nodes: {counts['gpu']} GPU(s), {counts['switch']} switch(es), {counts['nic']} NIC(s)")
    lines.append(f"links: {len(topology.links)}")
    for entry in summary.link_classes:
        each = ", ".join(format_gbps(value) for value in entry.bandwidths)
        total = format_gbps(entry.total)
        lines.append(f"  {entry.link_class:<10} {entry.links:>6} links  {each} GB/s each, {total} GB/s total")
    lines.append(f"per-GPU egress: {_range_text(summary.egress)}")
    lines.append(f"per-GPU ingress: {_range_text(summary.ingress)}")
    lines.append("ranks:")
    for run in summary.rank_runs:
        if run.first_rank == run.last_rank:
            lines.append(f"  {run.first_rank:<12} {run.first_gpu}")
        else:
            lines.append(f"  {f'{run.first_rank}-{run.last_rank}':<12} {run.first_gpu} .. {run.last_gpu}")
    return lines


def _show_document(
    topology: Topology, summary: Summary, parameters: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    meta = topology.metadata
    low_egress, high_egress = value_range(summary.egress)
    low_ingress, high_ingress = value_range(summary.ingress)
    return {
        "name": topology.name,
        "description": topology.description,
        "source": topology.source,
        "parameters": parameters,
        "metadata": {
            "gpu_model": meta.gpu_model,
            "sms_per_gpu": meta.sms_per_gpu,
            "runtime": meta.runtime,
            "default_latency_us": {k: exact_number(v) for k, v in sorted(meta.default_latency_us.items())},
        },
        "nodes": summary.counts,
        "links": len(topology.links),
        "link_classes": [
            {
                "class": entry.link_class,
                "links": entry.links,
                "bandwidths_gbps": [exact_number(value) for value in entry.bandwidths],
                "total_gbps": exact_number(entry.total),
            }
            for entry in summary.link_classes
        ],
        "per_gpu_egress_gbps": {"min": exact_number(low_egress), "max": exact_number(high_egress)},
        "per_gpu_ingress_gbps": {"min": exact_number(low_ingress), "max": exact_number(high_ingress)},
        "ranks": [
            {
                "rank": rank,
                "gpu": name,
                "box": topology.node(name).box,
                "role": topology.node(name).role,
                "egress_gbps": exact_number(summary.egress[name]),
                "ingress_gbps": exact_number(summary.ingress[name]),
            }
            for rank, name in enumerate(topology.ranks)
        ],
    }


from collc.cli import topo_import as _topo_import  # noqa: E402,F401  (registers `collc topo import`)
