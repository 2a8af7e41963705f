"""``collc bound TOPO``: the optimal allgather / reduce-scatter / allreduce bandwidth and what limits it.

Units are nccl-tests': algbw = collective size / time in GB/s; busbw = algbw·(N-1)/N
for allgather and reduce-scatter and algbw·2(N-1)/N for allreduce. Allreduce runs reduce-scatter then
allgather, so ``T_AR = T_RS + T_AG`` and ``algbw_AR = 1 / (1/algbw_RS + 1/algbw_AG)`` (half the
allgather value on symmetric fabrics). Reduce-scatter's bound is the allgather bound of the reversed
graph. The JSON object is documented in docs/solver.md ("JSON output of collc bound").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import click

from collc.capacity import capacity_graph
from collc.cli import main
from collc.cli.common import topology_argument
from collc.cli.jsonout import json_option
from collc.cli.names import compress_names, natural_key
from collc.errors import InputError
from collc.jsondoc import json_document
from collc.sizes import format_figure, plural
from collc.solver.balance import unbalanced_switches
from collc.solver.bound import Bound, budgeted_bound, check_gpu_count, fixed_k_bound, optimal_bound
from collc.solver.ceiling import allreduce_ceiling
from collc.solver.symmetry import automorphisms
from collc.topology.model import Topology

_MAX_PATTERNS = 12  # name patterns shown per side of a cut before "... and N more"


@dataclass(frozen=True)
class Bounds:
    """The bounds of one topology in one mode (auto, fixed or budgeted k)."""

    topology: Topology
    mode: str  # "auto" | "fixed" | "budgeted"
    limit: int | None  # k for "fixed", max_k for "budgeted"
    allgather: Bound
    reducescatter: Bound  # computed on the reversed graph: its cut arcs run against the fabric's
    allreduce_ceiling: Fraction  # what no allreduce exceeds (collc.solver.ceiling), GB/s algbw
    unbalanced: tuple[str, ...] = ()  # switches whose ingress and egress differ (collc.solver.balance)

    @property
    def num_gpus(self) -> int:
        return self.allgather.num_gpus

    @property
    def allreduce_algbw(self) -> Fraction:
        """``T_AR = T_RS + T_AG``: the harmonic combination of the two algbws."""
        return 1 / (1 / self.allgather.allgather_algbw + 1 / self.reducescatter.allgather_algbw)

    def busbw(self, algbw: Fraction, factor: int) -> Fraction:
        return algbw * factor * (self.num_gpus - 1) / self.num_gpus


def compute_bounds(topology: Topology, k: int | None = None, max_k: int | None = None) -> Bounds:
    """Allgather and reduce-scatter bounds, with symmetry from the topology's boxes and roles."""
    if k is not None and max_k is not None:
        raise InputError("--k and --max-k are exclusive", hint="give either an exact k or a budget")
    check_gpu_count(topology.num_gpus, topology.source)
    graph = capacity_graph(topology)
    symmetries = automorphisms(topology, graph)  # automorphisms of a graph are those of its reverse

    def solve(g):
        if k is not None:
            return fixed_k_bound(g, k, symmetries)
        if max_k is not None:
            return budgeted_bound(g, max_k, symmetries)
        return optimal_bound(g, symmetries)

    mode = "fixed" if k is not None else "budgeted" if max_k is not None else "auto"
    return Bounds(
        topology,
        mode,
        k if k is not None else max_k,
        solve(graph),
        solve(graph.reversed()),
        allreduce_ceiling(graph),
        tuple(graph.names[w] for w in unbalanced_switches(graph)),
    )


def _ratio(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def _cut_json(bound: Bound, reverse: bool) -> dict[str, Any]:
    """The cut with links in the fabric's own direction (entering S for reduce-scatter)."""
    links = [
        {"src": dst, "dst": src, "bandwidth": float(bw)}
        if reverse
        else {"src": src, "dst": dst, "bandwidth": float(bw)}
        for src, dst, bw in bound.cut_arcs
    ]
    links.sort(key=lambda link: (link["src"], link["dst"]))
    return {
        "inside": list(bound.cut_inside),
        "gpus_inside": bound.cut_num_gpus,
        "direction": "entering" if reverse else "leaving",
        "links": links,
        "bandwidth": float(bound.cut_bandwidth),
    }


def _bound_json(bound: Bound, reverse: bool) -> dict[str, Any]:
    return {
        "x_star": _ratio(bound.x_star),
        "U": _ratio(bound.U),
        "k": bound.k,
        "optimal_x_star": _ratio(bound.optimal_x_star),
        "given_up": _ratio(bound.given_up),
        "cut": _cut_json(bound, reverse),
    }


#: the keys of every ``collc bound --json`` document (docs/solver.md), then the outcome keys
BOUND_KEYS = (
    "topology",
    "num_gpus",
    "mode",
    "k_limit",
    "allgather",
    "reducescatter",
    "allreduce",
    "x_star",
    "U",
    "k",
    "optimal_x_star",
    "given_up",
    "cut",
    "reducescatter_bound",
)


def bounds_json(bounds: Bounds) -> dict[str, Any]:
    """The stable JSON object of ``collc bound --json`` (docs/solver.md)."""
    ag, rs, ar = (
        bounds.allgather.allgather_algbw,
        bounds.reducescatter.allgather_algbw,
        bounds.allreduce_algbw,
    )
    return {
        "topology": bounds.topology.name,
        "num_gpus": bounds.num_gpus,
        "mode": bounds.mode,
        "k_limit": bounds.limit,
        "allgather": {"algbw": float(ag), "busbw": float(bounds.busbw(ag, 1))},
        "reducescatter": {"algbw": float(rs), "busbw": float(bounds.busbw(rs, 1))},
        "allreduce": {
            "algbw": float(ar),
            "busbw": float(bounds.busbw(ar, 2)),
            "ceiling_algbw": float(bounds.allreduce_ceiling),
        },
        **_bound_json(bounds.allgather, reverse=False),
        "reducescatter_bound": _bound_json(bounds.reducescatter, reverse=True),
    }


def _patterns(names: list[str]) -> str:
    patterns = compress_names(names)
    shown = ", ".join(patterns[:_MAX_PATTERNS])
    return shown + (
        f", ... and {len(patterns) - _MAX_PATTERNS} more" if len(patterns) > _MAX_PATTERNS else ""
    )


def _cut_text(bounds: Bounds, bound: Bound, reverse: bool, title: str) -> list[str]:
    all_names = [node.name for node in bounds.topology.nodes]
    inside = set(bound.cut_inside)
    outside = sorted(name for name in all_names if name not in inside)
    total = bound.cut_bandwidth
    carried = f"{_gbps(total)} GB/s = {_gbps(total / bound.cut_num_gpus)} GB/s per inside GPU"
    verb = "entering" if reverse else "leaving"
    carry = "carries" if len(bound.cut_arcs) == 1 else "carry"
    lines = [
        f"{title}: {bound.cut_num_gpus} of {bound.num_gpus} GPUs inside S; "
        f"{plural(len(bound.cut_arcs), 'link')} {verb} S {carry} {carried}",
        f"  inside S  ({plural(len(inside), 'node')}): {_patterns(sorted(inside))}",
        f"  outside S ({plural(len(outside), 'node')}): {_patterns(outside)}",
    ]
    arcs = sorted(
        ((dst, src, bw) if reverse else (src, dst, bw) for src, dst, bw in bound.cut_arcs),
        key=lambda arc: (natural_key(arc[0]), natural_key(arc[1])),
    )
    shown = arcs[:_MAX_PATTERNS]
    lines += [f"    {src} -> {dst}  {_gbps(bw)} GB/s" for src, dst, bw in shown]
    if len(arcs) > len(shown):
        lines.append(f"    ... and {len(arcs) - len(shown)} more links")
    return lines


def _gbps(value: Fraction) -> str:
    return format_figure(value, 2)


def bounds_text(bounds: Bounds) -> str:
    """The human-readable report of ``collc bound``."""
    ag, rs = bounds.allgather, bounds.reducescatter
    mode = {
        "auto": "smallest exact k",
        "fixed": f"exactly {plural(bounds.limit, 'tree')} per GPU",
        "budgeted": f"at most {plural(bounds.limit, 'tree')} per GPU",
    }
    rows = [
        ("allgather", ag.allgather_algbw, 1),
        ("reducescatter", rs.allgather_algbw, 1),
        ("allreduce", bounds.allreduce_algbw, 2),
    ]
    lines = [
        f"{bounds.topology.name}: {bounds.num_gpus} GPUs, {mode[bounds.mode]}",
        f"  {'collective':<14} {'algbw GB/s':>11} {'busbw GB/s':>11}",
        *(
            f"  {name:<14} {_gbps(algbw):>11} {_gbps(bounds.busbw(algbw, factor)):>11}"
            for name, algbw, factor in rows
        ),
        "  (nccl-tests units; allreduce = reduce-scatter then allgather: T_AR = T_RS + T_AG)",
        f"  allreduce ceiling {_gbps(bounds.allreduce_ceiling)} GB/s algbw: no allreduce beats it (the least "
        "bandwidth across a cut between GPUs); one that overlaps its halves can beat the line above",
        *(
            [
                f"  switches {', '.join(bounds.unbalanced[:6])}{' …' if len(bounds.unbalanced) > 6 else ''} "
                "take in and send out different amounts: these are cut bounds, which a tree schedule "
                "reaches only where no switch has to copy data (docs/solver.md §3)"
            ]
            if bounds.unbalanced
            else []
        ),
        "",
        f"x* = {_ratio(ag.x_star)} GB/s per GPU (allgather algbw = N·x*)",
        f"k = {plural(ag.k, 'tree')} per GPU, U = {_ratio(ag.U)} trees per GB/s "
        "(a link of b GB/s carries at most floor(U·b) trees)",
    ]
    if not ag.is_optimal or not rs.is_optimal:
        lines.append(
            f"throughput given up against the optimum: allgather {float(ag.given_up):.2%} "
            f"(optimal {_gbps(ag.num_gpus * ag.optimal_x_star)} GB/s), "
            f"reduce-scatter {float(rs.given_up):.2%}"
        )
    if rs.k != ag.k or rs.U != ag.U:
        lines.append(f"reduce-scatter: x* = {_ratio(rs.x_star)}, k = {rs.k}, U = {_ratio(rs.U)}")
    lines += ["", *_cut_text(bounds, ag, False, "bottleneck cut S (allgather)")]
    if set(rs.cut_inside) != set(ag.cut_inside) or rs.x_star != ag.x_star:
        lines += _cut_text(bounds, rs, True, "bottleneck cut S (reduce-scatter)")
    return "\n".join(lines)


@main.command()
@topology_argument
@click.option(
    "--k", "k", type=int, default=None, help="Exactly K trees per root (default: smallest exact k)."
)
@click.option(
    "--max-k", "max_k", type=int, default=None, help="At most K trees per root; reports what is given up."
)
@json_option(BOUND_KEYS, help="Print the documented JSON object instead of text.")
def bound(topology: Topology, k: int | None, max_k: int | None, as_json: bool) -> None:
    """Optimal algbw/busbw of allgather, reduce-scatter and allreduce, and the bottleneck cut."""
    bounds = compute_bounds(topology, k, max_k)
    if as_json:
        click.echo(json.dumps(json_document(BOUND_KEYS, bounds_json(bounds)), indent=2, sort_keys=True))
    else:
        click.echo(bounds_text(bounds))
