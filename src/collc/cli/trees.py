"""``collc trees TOPO``: solve for the forest of spanning trees and write it as JSON.

The JSON object (keys ``U``, ``k``, ``trees`` = ``[{root, multiplicity, edges: [{src, dst, path}]}]``)
is documented in :mod:`collc.solver.forest` and docs/solver.md; ``-o FILE`` writes it atomically,
``--json`` prints it. The text summary gives the bound, the trees and multiplicities, the tree heights
in GPU hops and in physical hops, and the per-phase times and max-flow calls.
"""

from __future__ import annotations

import json
from collections import Counter

import click

from collc.capacity import capacity_graph
from collc.cli import main
from collc.cli.common import output_path, topology_argument
from collc.cli.jsonout import json_option
from collc.fileio import atomic_write
from collc.jsondoc import json_document
from collc.sizes import format_figure, plural
from collc.solver import Forest, Solution, forest_to_json, solve
from collc.solver.bound import optimal_bound
from collc.solver.pipeline import PHASES
from collc.topology.model import Topology

_HISTOGRAM_ENTRIES = 8  # multiplicity histogram entries shown before summarising


def _mean(values: list[int], weights: list[int]) -> float:
    return sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights)


def _height_line(solution: Solution, physical: bool, unit: str) -> str:
    trees = solution.forest.trees
    heights = [tree.height(physical=physical) for tree in trees]
    weights = [tree.multiplicity for tree in trees]
    return f"  height in {unit}: max {max(heights)}, mean {_mean(heights, weights):.2f} (per unit tree)"


def _balanced_text(topology: Topology, forest: Forest) -> str:
    """The summary's words on a forest packed with the fabric's unbalanced switches balanced
    (docs/solver.md §3): its figure against the fabric's cut bound (``collc bound``'s), which such a
    forest meets where no switch has to copy data (a 3-box NIC fabric's reduce-scatter: 75 of 75 GB/s)
    and falls below where one would (the same boxes with one NIC each: 18.75 of 37.5)."""
    if not forest.balanced:
        return ""
    graph = capacity_graph(topology)
    cut = optimal_bound(graph.reversed() if forest.reversed else graph).allgather_algbw
    said = " (packed with the fabric's unbalanced switches balanced, docs/solver.md §3"
    if forest.allgather_algbw >= cut:
        return said + ": it meets the cut bound)"
    return (
        said + f": the cut bound is {format_figure(cut, 3)} GB/s, which tree schedules reach only where "
        "no switch has to copy data)"
    )


def summary_text(topology: Topology, solution: Solution) -> str:
    """The human summary of a solved forest."""
    forest, bound, stats = solution.forest, solution.bound, solution.stats
    multiplicities = Counter(tree.multiplicity for tree in forest.trees)
    histogram = ", ".join(f"{m}x{count}" for m, count in sorted(multiplicities.items()))
    if len(multiplicities) > _HISTOGRAM_ENTRIES:
        histogram = (
            f"{len(multiplicities)} distinct values from {min(multiplicities)} to {max(multiplicities)}"
        )
    direction = " (reversed fabric: reduce-scatter)" if forest.reversed else ""
    lines = [
        f"{topology.name}: {forest.num_gpus} GPUs{direction}",
        f"  k = {plural(forest.k, 'tree')} per root, U = {bound.U} trees per GB/s, "
        f"allgather algbw {format_figure(forest.allgather_algbw, 3)} GB/s"
        + ("" if bound.is_optimal else f" ({float(bound.given_up) * 100:.1f}% below the optimum)")
        + _balanced_text(topology, forest),
        f"  trees: {len(forest.trees)} physical ({stats.logical_trees} logical), "
        f"multiplicity x count: {histogram}",
        _height_line(solution, False, "GPU hops"),
        _height_line(solution, True, "physical hops"),
        f"  trees grown for {stats.packing_orbits} of {forest.num_gpus} roots"
        + (
            " (the others are images under verified automorphisms)"
            if stats.packing_orbits < forest.num_gpus
            else ""
        ),
        "  phases: "
        + ", ".join(
            f"{phase} {stats.seconds.get(phase, 0.0):.3f}s"
            + (f" ({stats.max_flow_calls[phase]} max-flows)" if phase in stats.max_flow_calls else "")
            for phase in PHASES
        ),
    ]
    return "\n".join(lines)


#: the keys of every ``collc trees --json`` document: the forest's (the file -o writes), then the outcome keys
FOREST_KEYS = ("U", "k", "num_gpus", "reversed", "allgather_algbw", "packing", "trees")


@main.command()
@topology_argument
@click.option(
    "--k", "k", type=int, default=None, help="Exactly K trees per root (default: smallest exact k)."
)
@click.option("--max-k", "max_k", type=int, default=None, help="At most K trees per root.")
@click.option("--reverse", is_flag=True, help="Solve on the reversed fabric (reduce-scatter trees).")
@click.option(
    "-o",
    "--output",
    type=click.Path(),
    callback=output_path,
    help="Write the forest JSON to FILE.",
)
@json_option(FOREST_KEYS, help="Print the forest JSON instead of the summary.")
def trees(
    topology: Topology, k: int | None, max_k: int | None, reverse: bool, output: str | None, as_json: bool
) -> None:
    """Spanning-tree forest of the optimal bound (switch removal, tree packing, physical paths).

    Where a switch would have to copy data to meet it, the forest is packed with the fabric's
    switches balanced, and the summary sets it against the cut bound.
    """
    solution = solve(topology, k=k, max_k=max_k, reverse=reverse)
    forest = forest_to_json(solution.forest)
    if output:
        atomic_write(output, json.dumps(forest, separators=(",", ":")) + "\n")
    if as_json:
        click.echo(json.dumps(json_document(FOREST_KEYS, forest), separators=(",", ":")))
    else:
        click.echo(summary_text(topology, solution))
        if output:
            click.echo(f"  wrote {output}")
