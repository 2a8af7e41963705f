"""`collc report`: a markdown summary of a cluster for a bring-up ticket, with two pictures.

Sections: the fabric, the bound and its bottleneck cut, the forest (trees, heights), per-link-class
utilisation of the collc schedule against capacity (and the busiest arcs), predicted performance of
the files `collc compile` writes (event simulation) against the runtime's ring/tree for the three
collectives with the sizes where collc wins, and how to reproduce. The caller compiles the files: this
stage only predicts the programs it is given.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from collc.fileio import atomic_write
from collc.msccl.program import Algorithm
from collc.predict.forest_model import arc_utilisation, forest_arc_loads
from collc.predict.model import TopologyModel
from collc.predict.params import COLLECTIVES, Protocol, busbw_factor
from collc.predict.picture import topology_figure
from collc.predict.plot import save_figure, sweep_figure
from collc.predict.sweep import Sweep
from collc.progress import Report, silent
from collc.sizes import format_figure, format_size, plural

REPORT_SIZES = [2**10 * 4**i for i in range(13)]  # 1 KiB .. 16 GiB
TABLE_SIZES = (2**20, 2**26, 2**30)


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    pictures: tuple[Path, ...]


def tree_heights(model: TopologyModel) -> list[int]:
    """Height (hops from the root to the deepest GPU) of every tree of the forest."""
    heights = []
    for tree in model.solution.forest.trees:
        depth = {tree.root: 0}
        for edge in tree.edges:
            depth[edge.dst] = depth[edge.src] + 1
        heights.append(max(depth.values()))
    return heights


def _fmt(value: Fraction | float, digits: int = 1) -> str:
    return format_figure(value, digits, grouped=True)


def _link_class(model: TopologyModel) -> dict[tuple[str, str], str]:
    classes: dict[tuple[str, str], str] = {}
    for src, dst, link in model.topology.arcs():
        classes.setdefault((src, dst), link.link_class or "unclassified")
    return classes


def utilisation_section(model: TopologyModel) -> list[str]:
    """Per link class: arcs, bandwidth, used arcs and mean/max utilisation; then the busiest arcs."""
    loads = forest_arc_loads(model.solution.forest)
    utilisation = arc_utilisation(loads, model.network)
    classes = _link_class(model)
    algbw = model.forest_cost.algbw("allgather")
    units = model.forest_cost.units
    lines = [
        "## Link utilisation of the collc schedule (allgather phase; reduce-scatter is the mirror image)",
        "",
        "Utilisation = the fraction of the time an arc is busy in the steady state (1 = a bottleneck arc).",
        "",
        "| link class | arcs | GB/s per arc | arcs used | mean utilisation | max utilisation |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_class: dict[str, list[tuple[str, str]]] = {}
    for arc in sorted(model.network.bandwidth):
        by_class.setdefault(classes.get(arc, "unclassified"), []).append(arc)
    for name, arcs in sorted(by_class.items()):
        values = [float(utilisation.get(arc, 0)) for arc in arcs]
        widths = sorted({float(model.network.bandwidth[arc]) for arc in arcs})
        lines.append(
            f"| {name} | {len(arcs)} | {', '.join(_fmt(w) for w in widths)} | "
            f"{sum(1 for v in values if v > 0)} | {sum(values) / len(values):.2f} | {max(values):.2f} |"
        )
    busiest = sorted(utilisation.items(), key=lambda item: (-item[1], item[0]))[:12]
    lines += [
        "",
        f"Busiest arcs (data rate at the schedule's allgather algbw of {_fmt(algbw)} GB/s):",
        "",
        "| arc | class | capacity GB/s | carries GB/s | utilisation |",
        "|---|---|---:|---:|---:|",
    ]
    for arc, value in busiest:
        rate = Fraction(loads[arc]) * algbw / units
        lines.append(
            f"| {arc[0]} → {arc[1]} | {classes.get(arc, '')} | {_fmt(model.network.bandwidth[arc])} | "
            f"{_fmt(rate)} | {float(value):.2f} |"
        )
    return lines


def bound_section(model: TopologyModel) -> list[str]:
    bound = model.bound
    n = model.topology.num_gpus
    inside = bound.cut_inside
    gpus_inside = [name for name in inside if model.topology.node(name).kind == "gpu"]
    boxes = sorted(
        {model.topology.node(name).box for name in gpus_inside if model.topology.node(name).box is not None}
    )
    per_gpu = bound.cut_bandwidth / max(len(gpus_inside), 1)
    arcs_by_class = Counter(
        _link_class(model).get((src, dst), "unclassified") for src, dst, _ in bound.cut_arcs
    )
    lines = [
        "## Bound and bottleneck cut",
        "",
        "| collective | bound algbw GB/s | bound busbw GB/s |",
        "|---|---:|---:|",
    ]
    for collective in COLLECTIVES:
        algbw = model.bound_algbw(collective)
        lines.append(f"| {collective} | {_fmt(algbw)} | {_fmt(algbw * busbw_factor(collective, n))} |")
    lines += [
        "",
        "- Allgather and reduce-scatter: optimal. Allreduce: reduce-scatter then allgather, which a file "
        "that overlaps the halves on opposite link directions can beat; no allreduce beats "
        f"{_fmt(model.ceiling_algbw('allreduce'))} GB/s algbw (the least bandwidth across a cut between "
        "GPUs).",
        f"- Trees per GPU k = {bound.k}, congestion budget U = {bound.U} trees per GB/s "
        f"(x* = {_fmt(bound.x_star, 3)} GB/s per GPU).",
        f"- Bottleneck cut: {plural(len(inside), 'node')} inside ({plural(len(gpus_inside), 'GPU')})"
        + (f" (boxes {', '.join(map(str, boxes))})" if boxes else "")
        + f"; {plural(len(bound.cut_arcs), 'arc')} {'leaves' if len(bound.cut_arcs) == 1 else 'leave'} it "
        f"with {_fmt(bound.cut_bandwidth)} GB/s in total "
        f"({', '.join(f'{count} {name}' for name, count in sorted(arcs_by_class.items()))}).",
        f"- Every GPU inside must push its data out through those arcs: {_fmt(bound.cut_bandwidth)} GB/s / "
        f"{plural(len(gpus_inside), 'GPU')} = {_fmt(per_gpu, 3)} GB/s per GPU = x*. Raising the bound "
        "needs more bandwidth on these arcs (other cuts may be just as tight).",
    ]
    if len(inside) <= 24:
        lines.append(f"- Inside the cut: {', '.join(inside)}.")
    return lines


def forest_section(model: TopologyModel) -> list[str]:
    forest = model.solution.forest
    heights = tree_heights(model)
    multiplicities = sorted(Counter(tree.multiplicity for tree in forest.trees).items())
    histogram = Counter(heights)
    stats = model.solution.stats
    return [
        "## Forest",
        "",
        f"- {len(forest.trees)} distinct trees ({forest.k} unit trees per GPU, "
        f"{model.forest_cost.units} in all); (multiplicity, trees): {multiplicities}.",
        f"- Tree heights (hops from root to the deepest GPU): min {min(heights)}, "
        f"mean {sum(heights) / len(heights):.1f}, max {max(heights)}; histogram "
        + ", ".join(f"{h}: {c}" for h, c in sorted(histogram.items()))
        + ".",
        f"- Solver work: {sum(stats.max_flow_calls.values())} max-flow calls.",
    ]


def prediction_section(sweeps: dict[str, Sweep], written: dict[str, bool]) -> list[str]:
    """The table of the simulated files at :data:`TABLE_SIZES`, and where each collective wins."""
    lines = [
        "## Predicted performance (nccl-tests units, Simple protocol; collc = event simulation of the file "
        "`collc compile` writes; see docs/cost-model.md)",
        "",
        "| collective | size | collc busbw | NCCL ring busbw | NCCL tree busbw | bound busbw "
        "| collc / best NCCL |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for collective, result in sweeps.items():
        for row in result.rows:
            if row.nbytes not in TABLE_SIZES:
                continue
            tree = row.baselines.get("tree")
            tree_busbw = format_figure(tree.busbw) if tree else "—"
            best = max(value.busbw for value in row.baselines.values())
            lines.append(
                f"| {collective} | {format_size(row.nbytes)} | {format_figure(row.collc.busbw)} | "
                f"{format_figure(row.baselines['ring'].busbw)} | {tree_busbw} | "
                f"{format_figure(row.bound.busbw)} | {row.collc.busbw / best:.2f}× |"
            )
    lines += [
        "",
        f"Where collc is at least as fast as every NCCL algorithm (sizes {_span(REPORT_SIZES)}):",
        "",
    ]
    for collective, result in sweeps.items():
        wins = result.winning_sizes()
        text = ", ".join(format_size(size) for size in wins) if wins else "no size"
        if not written[collective]:
            text += " (compile writes no file: it wins at no size of its grid)"
        lines.append(f"- {collective}: {text}")
    return lines


def _span(sizes: list[int]) -> str:
    return f"{format_size(sizes[0])} to {format_size(sizes[-1])}"


def fabric_section(model: TopologyModel) -> list[str]:
    topology = model.topology
    kinds = Counter(node.kind for node in topology.nodes)
    classes = Counter((link.link_class or "unclassified", float(link.bandwidth)) for link in topology.links)
    return [
        "## Fabric",
        "",
        f"- {plural(topology.num_gpus, 'GPU')}, {plural(kinds.get('switch', 0), 'switch')}, "
        f"{plural(kinds.get('nic', 0), 'NIC')}, {plural(len(topology.links), 'link')}"
        + (f"; {topology.description.strip()}" if topology.description else "")
        + ".",
        "- Links: "
        + ", ".join(f"{count} × {name} {bw:g} GB/s" for (name, bw), count in sorted(classes.items()))
        + ".",
        f"- NCCL-style rings: busbw {_fmt(model.ring.busbw)} GB/s"
        + (f" over {model.ring.rails} NIC rails per box" if model.ring.rails else "")
        + f"; double binary tree allreduce algbw {_fmt(model.tree.algbw_value)} GB/s.",
    ]


def write_report(
    model: TopologyModel,
    directory: str | Path,
    command: str,
    programs: dict[str, Algorithm],
    protocols: dict[str, Protocol],
    written: dict[str, bool],
    progress: Report = silent,
) -> ReportFiles:
    """Write ``report.md``, ``topology.png``/``.svg`` and ``simulate.png`` into ``directory``.

    ``programs``: the file compiled for each collective, simulated at ``protocols`` (its protocol as
    deployed, with the NCCL_BUFFSIZE compile chose: the figures are those compile predicts);
    ``written``: whether compile writes it (a file that wins at no size is only predicted, not
    written). ``progress`` hears the simulations.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    topology = model.topology
    sweeps = {
        c: model.sweep(c, REPORT_SIZES, protocols[c], programs[c], progress=progress) for c in COLLECTIVES
    }
    utilisation = arc_utilisation(forest_arc_loads(model.solution.forest), model.network)
    title = f"{topology.name}: {topology.num_gpus} GPUs, collc allgather schedule"
    pictures = []
    for suffix in (".png", ".svg"):
        path = out / f"topology{suffix}"
        figure = topology_figure(topology, utilisation, model.bound.cut_inside, model.bound.cut_arcs, title)
        save_figure(figure, path)
        pictures.append(path)
    plot = out / "simulate.png"
    save_figure(
        sweep_figure(sweeps["allreduce"], f"allreduce on {topology.name} ({topology.num_gpus} GPUs, Simple)"),
        plot,
    )
    pictures.append(plot)
    lines = [
        f"# collc report: {topology.name}",
        "",
        *fabric_section(model),
        "",
        *bound_section(model),
        "",
        "![topology](topology.png)",
        "",
        *forest_section(model),
        "",
        *utilisation_section(model),
        "",
        *prediction_section(sweeps, written),
        "",
        "![allreduce prediction](simulate.png)",
        "",
        "## Reproduce",
        "",
        f"    {command}",
        "",
    ]
    markdown = out / "report.md"
    atomic_write(markdown, "\n".join(lines))
    return ReportFiles(markdown, tuple(pictures))
