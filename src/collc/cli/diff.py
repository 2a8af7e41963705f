"""``collc diff``: what a change of the fabric costs, as optimal bounds before and after.

``collc diff TOPO --without nic:b0.nic3`` compares the fabric with and without the changes;
``collc diff TOPO_A TOPO_B`` compares two fabrics (the changes, if any, apply to TOPO_B). For each
collective it prints the optimal algbw bound before and after and the throughput lost, then the
bottleneck cut of each side: the set S of nodes whose outgoing links limit the allgather (the cut the
exact solver stops at, :mod:`collc.solver.bound`). ``--gpus`` selects the job's GPUs on both sides.

:func:`healthy_bound` is the same comparison for ``collc compile`` on a degraded fabric: the bound
the job would have on the healthy fabric, with its GPU count there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import click

from collc.cli import main
from collc.cli.bound import Bounds, bounds_json, compute_bounds
from collc.cli.common import current_changes, degradation_options, parse_settings, print_warning
from collc.cli.jsonout import json_option
from collc.cli.names import compress_names, natural_key
from collc.compile.report import Healthy
from collc.errors import InputError
from collc.jsondoc import json_document
from collc.sizes import format_figure, plural
from collc.solver.bound import Bound
from collc.topology import load
from collc.topology.degrade import Degradation, degrade

#: collectives in the order the table shows them
COLLECTIVES = ("allgather", "reducescatter", "allreduce")
_SHOWN_LINKS = 4  # links of a cut listed before "... and N more"


@dataclass(frozen=True)
class Side:
    """One side of a comparison: how the fabric was named and changed, and its bounds."""

    label: str  # e.g. "dgx-a100 --set boxes=2 --without nic:b0.nic3"
    bounds: Bounds


def collective_algbw(bounds: Bounds, collective: str) -> Fraction:
    """The optimal algbw bound of one collective (GB/s)."""
    if collective == "allgather":
        return bounds.allgather.allgather_algbw
    if collective == "reducescatter":
        return bounds.reducescatter.allgather_algbw
    return bounds.allreduce_algbw


def lost(before: Fraction, after: Fraction) -> Fraction:
    """The share of the throughput lost going from ``before`` to ``after`` (negative: gained)."""
    return 1 - after / before


def healthy_bound(collective: str) -> Healthy | None:
    """For ``collc compile``: the running command's bound of ``collective`` on the healthy fabric.

    None unless parts were taken out or derated (a ``--gpus`` selection alone is the job, not damage);
    the healthy fabric keeps the selection, so the two bounds are for the same GPUs unless a
    ``--without`` took some of them out (the count says so).
    """
    changes = current_changes()
    if changes is None or not changes.degradation.damages:
        return None
    healthy = degrade(changes.fabric, changes.degradation.healthy())
    bounds = compute_bounds(healthy)
    bound = collective_algbw(bounds, collective)
    ceiling = bounds.allreduce_ceiling if collective == "allreduce" else bound
    return Healthy(bound, healthy.num_gpus, ceiling)


def _label(source: str, settings: tuple[str, ...], degradation: Degradation) -> str:
    words = [source, *(f"--set {item}" for item in settings)]
    return " ".join(words + ([degradation.describe()] if not degradation.is_empty else []))


def _side(source: str, settings: tuple[str, ...], degradation: Degradation) -> Side:
    fabric = load(source, parse_settings(settings, source), on_warning=print_warning)
    return Side(_label(source, settings, degradation), compute_bounds(degrade(fabric, degradation)))


def _cut_line(title: str, bound: Bound, gpus: set[str], reverse: bool) -> list[str]:
    """The bottleneck cut: the GPUs on its smaller side and the links that carry the limit."""
    inside = {name for name in bound.cut_inside if name in gpus}
    smaller = ("inside", inside) if len(inside) <= len(gpus) - len(inside) else ("outside", gpus - inside)
    verb = "entering" if reverse else "leaving"
    arcs = sorted(
        ((dst, src, bw) if reverse else (src, dst, bw) for src, dst, bw in bound.cut_arcs),
        key=lambda arc: (natural_key(arc[0]), natural_key(arc[1])),
    )
    per_gpu = bound.cut_bandwidth / bound.cut_num_gpus
    carry = "carries" if len(arcs) == 1 else "carry"
    lines = [
        f"  {title}: {bound.cut_num_gpus} of {bound.num_gpus} GPUs inside S, GPUs {smaller[0]} S: "
        f"{_patterns(smaller[1])}",
        f"    {plural(len(arcs), 'link')} {verb} S {carry} {format_figure(bound.cut_bandwidth, 2)} GB/s "
        f"= {format_figure(per_gpu, 2)} GB/s per inside GPU",
    ]
    lines += [f"      {src} -> {dst}  {format_figure(bw, 2)} GB/s" for src, dst, bw in arcs[:_SHOWN_LINKS]]
    if len(arcs) > _SHOWN_LINKS:
        lines.append(f"      ... and {len(arcs) - _SHOWN_LINKS} more links")
    return lines


def _patterns(names: set[str]) -> str:
    patterns = compress_names(names)
    shown = ", ".join(patterns[:_SHOWN_LINKS])
    return shown + (f", ... and {len(patterns) - _SHOWN_LINKS} more" if len(patterns) > _SHOWN_LINKS else "")


def diff_lines(before: Side, after: Side) -> list[str]:
    """The human report of ``collc diff``."""
    lines = [
        f"before: {before.label}: {plural(before.bounds.num_gpus, 'GPU')}",
        f"after:  {after.label}: {plural(after.bounds.num_gpus, 'GPU')}",
        f"  {'collective':<17} {'before GB/s':>12} {'after GB/s':>11} {'lost':>9}",
    ]
    rows = [(c, collective_algbw(before.bounds, c), collective_algbw(after.bounds, c)) for c in COLLECTIVES]
    rows.append(("allreduce ceiling", before.bounds.allreduce_ceiling, after.bounds.allreduce_ceiling))
    for name, old, new in rows:
        share = float(lost(old, new)) * 100
        lines.append(f"  {name:<17} {format_figure(old, 2):>12} {format_figure(new, 2):>11} {share:>7.2f} %")
    lines.append(
        "  (algbw bounds in nccl-tests units, allreduce = reduce-scatter then allgather; its ceiling is the "
        "least cut, which no allreduce exceeds; lost = 1 - after/before, negative: gained)"
    )
    for name, side in (("before", before), ("after", after)):
        lines.append(f"bottleneck cut {name}:")
        lines += _cut_lines(side)
    return lines


def _cut_lines(side: Side) -> list[str]:
    ag, rs = side.bounds.allgather, side.bounds.reducescatter
    gpus = set(side.bounds.topology.ranks)
    lines = _cut_line("allgather", ag, gpus, reverse=False)
    if set(rs.cut_inside) != set(ag.cut_inside) or rs.x_star != ag.x_star:
        lines += _cut_line("reducescatter", rs, gpus, reverse=True)
    return lines


#: the keys of every ``collc diff --json`` document, then the outcome keys
DIFF_KEYS = ("before", "after", "lost")


def diff_json(before: Side, after: Side) -> dict[str, Any]:
    """``collc diff --json``: each side's ``collc bound --json`` object, and the share lost per collective
    and of the allreduce ceiling."""
    pairs = {c: (collective_algbw(before.bounds, c), collective_algbw(after.bounds, c)) for c in COLLECTIVES}
    pairs["allreduce_ceiling"] = (before.bounds.allreduce_ceiling, after.bounds.allreduce_ceiling)
    shares = {}
    for name, (old, new) in pairs.items():
        share = lost(old, new)
        shares[name] = {"ratio": f"{share.numerator}/{share.denominator}", "percent": float(share * 100)}
    return {
        "before": {"label": before.label, **bounds_json(before.bounds)},
        "after": {"label": after.label, **bounds_json(after.bounds)},
        "lost": shares,
    }


@main.command("diff")
@click.argument("topo_a", metavar="TOPO_A")
@click.argument("topo_b", metavar="[TOPO_B]", required=False)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a parameter of TOPO_A (and of TOPO_B unless --set-b is given) (repeatable).",
)
@click.option("--set-b", "settings_b", multiple=True, metavar="KEY=VALUE", help="Set a parameter of TOPO_B.")
@degradation_options
@json_option(DIFF_KEYS, help="Print both sides' bound objects and the loss as JSON.")
def diff_command(
    topo_a: str,
    topo_b: str | None,
    settings: tuple[str, ...],
    settings_b: tuple[str, ...],
    degradation: Degradation,
    as_json: bool,
) -> None:
    """Optimal bounds before and after a change: TOPO --without/--derate ..., or TOPO_A TOPO_B.

    The changes (--without, --derate) apply to the after side; --gpus selects the job's GPUs on both.
    """
    if topo_b is None and not degradation.damages:
        raise InputError(
            "nothing to compare: give a second topology or the changes",
            hint="e.g. collc diff dgx-a100 --set boxes=2 --without nic:b0.nic3, or collc diff a.yaml b.yaml",
        )
    if settings_b and topo_b is None:
        raise InputError("--set-b needs TOPO_B", hint="--set sets the parameters of a single topology")
    before = _side(topo_a, settings, degradation.healthy())
    after = _side(topo_b or topo_a, settings_b or settings, degradation)
    if as_json:
        click.echo(json.dumps(json_document(DIFF_KEYS, diff_json(before, after)), indent=2, sort_keys=True))
    else:
        click.echo("\n".join(diff_lines(before, after)))
