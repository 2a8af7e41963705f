"""The topology picture for `collc report`: links coloured by the collc schedule's load, cut marked.

Layout: boxes on a grid (GPUs on a circle, box switches in the middle, NICs outside their GPU), shared
switches in rows above the boxes (the ones attached to boxes first, the rest above). Every link is one
line coloured by its steady-state utilisation (the busier direction; 1 = the bottleneck), its width
growing with bandwidth; links the schedule does not use are grey and dotted. The bottleneck cut of
``collc bound`` is marked: red dashed overlays on its arcs, red rings around the nodes of its smaller side.
Fabrics with more than :data:`DETAILED_MAX_GPUS` GPUs are drawn per box (one square per box, coloured
by its busiest internal link) so the picture stays readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from collc.topology.model import Topology

DETAILED_MAX_GPUS = 64
_CMAP = colormaps["viridis_r"]  # busy links dark, idle ones light
_MARKERS = {"gpu": ("s", "#4c72b0", 90), "switch": ("D", "#7f7f7f", 110), "nic": ("o", "#dd8452", 40)}
_BOX_PITCH = 4.2

Arc = tuple[str, str]
Point = tuple[float, float]


def _box_origins(boxes: list[int]) -> dict[int, Point]:
    columns = min(len(boxes), 4) or 1
    return {box: ((i % columns) * _BOX_PITCH, -(i // columns) * _BOX_PITCH) for i, box in enumerate(boxes)}


def _global_rows(topology: Topology, boxed: set[str]) -> list[list[str]]:
    """Shared nodes by distance (in links) from the boxes: attached ones first."""
    neighbours: dict[str, set[str]] = {}
    for link in topology.links:
        neighbours.setdefault(link.src, set()).add(link.dst)
        neighbours.setdefault(link.dst, set()).add(link.src)
    remaining = sorted(node.name for node in topology.nodes if node.name not in boxed)
    rows: list[list[str]] = []
    reached = set(boxed)
    while remaining:
        row = [name for name in remaining if neighbours.get(name, set()) & reached] or remaining
        rows.append(row)
        reached |= set(row)
        remaining = [name for name in remaining if name not in reached]
    return rows


def _place_globals(topology: Topology, boxed: set[str], width: float, top: float) -> dict[str, Point]:
    positions = {}
    for level, row in enumerate(_global_rows(topology, boxed)):
        for i, name in enumerate(row):
            x = width / 2 if len(row) == 1 else width * i / (len(row) - 1)
            positions[name] = (x, top + 1.6 * (level + 1))
    return positions


def detailed_layout(topology: Topology) -> dict[str, Point]:
    """Coordinates of every node (module docstring)."""
    boxes = sorted({node.box for node in topology.nodes if node.box is not None})
    origins = _box_origins(boxes) if boxes else {}
    positions: dict[str, Point] = {}
    gpu_of_nic: dict[str, str] = {}
    for link in topology.links:
        for a, b in ((link.src, link.dst), (link.dst, link.src)):
            if topology.node(a).kind == "nic" and topology.node(b).kind == "gpu":
                gpu_of_nic.setdefault(a, b)
    members = [node for node in topology.nodes if node.box is not None] if boxes else list(topology.nodes)
    for box in boxes or [None]:
        cx, cy = origins.get(box, (0.0, 0.0)) if box is not None else (0.0, 0.0)
        inside = [node for node in members if node.box == box] if box is not None else members
        gpus = [node.name for node in inside if node.kind == "gpu"]
        for i, name in enumerate(gpus):
            angle = math.pi / 2 - 2 * math.pi * i / max(len(gpus), 1)
            positions[name] = (cx + 1.25 * math.cos(angle), cy + 1.25 * math.sin(angle))
        others = [node.name for node in inside if node.kind != "gpu"]
        centre = [name for name in others if name not in gpu_of_nic]
        for i, name in enumerate(centre):
            positions[name] = (cx + 0.5 * (i - (len(centre) - 1) / 2), cy)
        for name in others:
            if name in gpu_of_nic and gpu_of_nic[name] in positions:
                gx, gy = positions[gpu_of_nic[name]]
                positions[name] = (cx + 1.5 * (gx - cx), cy + 1.5 * (gy - cy))
    boxed = set(positions)
    xs = [x for x, _ in positions.values()] or [0.0]
    ys = [y for _, y in positions.values()] or [0.0]
    positions.update(_place_globals(topology, boxed, max(xs) - min(xs), max(ys) + 0.6))
    shift = min(xs)
    return {name: (x + (shift if name not in boxed else 0.0), y) for name, (x, y) in positions.items()}


def _link_utilisation(topology: Topology, utilisation: Mapping[Arc, Fraction]) -> dict[frozenset[str], float]:
    """The busier direction's utilisation of every node pair with a link."""
    pairs: dict[frozenset[str], float] = {}
    for link in topology.links:
        pair = frozenset((link.src, link.dst))
        value = max(
            float(utilisation.get((link.src, link.dst), 0)), float(utilisation.get((link.dst, link.src), 0))
        )
        pairs[pair] = max(pairs.get(pair, 0.0), value)
    return pairs


def _pair_bandwidth(topology: Topology) -> dict[frozenset[str], float]:
    total: dict[frozenset[str], float] = {}
    for link in topology.links:
        pair = frozenset((link.src, link.dst))
        total[pair] = total.get(pair, 0.0) + float(link.bandwidth)
    return total


def topology_figure(
    topology: Topology,
    utilisation: Mapping[Arc, Fraction],
    cut_inside: tuple[str, ...],
    cut_arcs: tuple[tuple[str, str, Fraction], ...],
    title: str,
) -> Figure:
    """The picture described in the module docstring."""
    if topology.num_gpus > DETAILED_MAX_GPUS:
        return _aggregated_figure(topology, utilisation, cut_inside, title)
    positions = detailed_layout(topology)
    loads = _link_utilisation(topology, utilisation)
    bandwidths = _pair_bandwidth(topology)
    widest = max(bandwidths.values())
    xs = [x for x, _ in positions.values()]
    ys = [y for _, y in positions.values()]
    figure = Figure(
        figsize=(min(16, 3 + 1.6 * (max(xs) - min(xs) + 2)), min(14, 2.5 + 1.2 * (max(ys) - min(ys) + 2)))
    )
    axes = figure.add_subplot()
    for pair in sorted(loads, key=lambda p: (loads[p], sorted(p))):
        a, b = sorted(pair)
        (x1, y1), (x2, y2) = positions[a], positions[b]
        width = 0.6 + 3.0 * math.log1p(bandwidths[pair]) / math.log1p(widest)
        if loads[pair] > 0:
            axes.plot(
                [x1, x2],
                [y1, y2],
                color=_CMAP(loads[pair]),
                linewidth=width,
                zorder=1,
                solid_capstyle="round",
            )
        else:
            axes.plot([x1, x2], [y1, y2], color="#c8c8c8", linewidth=0.8, linestyle=":", zorder=0)
    for src, dst, _ in cut_arcs:
        (x1, y1), (x2, y2) = positions[src], positions[dst]
        axes.plot([x1, x2], [y1, y2], color="#d62728", linewidth=1.6, linestyle="--", zorder=2)
    inside = _smaller_side(topology, cut_inside)
    for kind, (marker, colour, size) in _MARKERS.items():
        names = sorted(node.name for node in topology.nodes if node.kind == kind)
        if not names:
            continue
        axes.scatter(
            [positions[n][0] for n in names],
            [positions[n][1] for n in names],
            marker=marker,
            s=size,
            c=colour,
            edgecolors=["#d62728" if n in inside else "black" for n in names],
            linewidths=[2.2 if n in inside else 0.6 for n in names],
            zorder=3,
        )
    small = len(topology.nodes) <= 80
    for node in topology.nodes:
        if node.kind == "nic" or (not small and node.box is not None):
            continue
        label = node.role or node.name
        x, y = positions[node.name]
        axes.annotate(
            label, (x, y), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=6.5, zorder=4
        )
    _box_captions(axes, topology)
    _legend_and_colourbar(figure, axes, {node.kind for node in topology.nodes})
    axes.set_title(title, fontsize=11)
    axes.set_aspect("equal")
    axes.axis("off")
    return figure


def _smaller_side(topology: Topology, cut_inside: tuple[str, ...]) -> set[str]:
    """The smaller side of the cut (marked in the picture; the larger one would colour almost everything)."""
    inside = set(cut_inside)
    outside = {node.name for node in topology.nodes} - inside
    return inside if len(inside) <= len(outside) else outside


def _box_captions(axes, topology: Topology) -> None:
    boxes = sorted({node.box for node in topology.nodes if node.box is not None})
    if len(boxes) < 2:
        return
    for box, (cx, cy) in _box_origins(boxes).items():
        axes.text(cx, cy - 1.85, f"box {box}", ha="center", fontsize=8, color="#404040")


def _legend_and_colourbar(figure: Figure, axes, kinds: set[str]) -> None:
    mappable = figure.colorbar(
        ScalarMappable(norm=Normalize(0, 1), cmap=_CMAP),
        ax=axes,
        fraction=0.03,
        pad=0.02,
        shrink=0.6,
    )
    mappable.set_label("link utilisation (1 = bottleneck)")
    handles = [
        Line2D([], [], marker=marker, color="w", markerfacecolor=colour, markeredgecolor="black", label=label)
        for kind, label in (("gpu", "GPU"), ("box", "box"), ("switch", "switch"), ("nic", "NIC"))
        if kind in kinds
        for marker, colour, _ in [_MARKERS["gpu" if kind == "box" else kind]]
    ] + [
        Line2D([], [], color="#d62728", linestyle="--", label="bottleneck cut arcs"),
        Line2D(
            [],
            [],
            marker="s",
            color="w",
            markerfacecolor="white",
            markeredgecolor="#d62728",
            markeredgewidth=2,
            label="smaller side of the cut",
        ),
        Line2D([], [], color="#c8c8c8", linestyle=":", label="unused link"),
    ]
    axes.legend(
        handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=6, fontsize=7.5, frameon=False
    )


def _aggregated_figure(
    topology: Topology, utilisation: Mapping[Arc, Fraction], cut_inside: tuple[str, ...], title: str
) -> Figure:
    """One square per box (coloured by its busiest internal link), shared switches, aggregated links."""
    box_of = {node.name: node.box for node in topology.nodes}
    boxes = sorted({box for box in box_of.values() if box is not None})
    columns = max(1, math.ceil(math.sqrt(len(boxes))))
    origin = {box: ((i % columns) * 1.0, -(i // columns) * 1.0) for i, box in enumerate(boxes)}
    boxed = {name for name, box in box_of.items() if box is not None}
    shared = _place_globals(topology, boxed, (columns - 1) * 1.0, 0.6)

    def where(name: str) -> Point:
        return origin[box_of[name]] if box_of[name] is not None else shared[name]  # type: ignore[index]

    inner: dict[int, float] = {}
    outer: dict[tuple[Point, Point], float] = {}
    for (src, dst), value in utilisation.items():
        if box_of[src] is not None and box_of[src] == box_of[dst]:
            inner[box_of[src]] = max(inner.get(box_of[src], 0.0), float(value))  # type: ignore[index]
        else:
            key = tuple(sorted((where(src), where(dst))))
            outer[key] = max(outer.get(key, 0.0), float(value))  # type: ignore[index]
    figure = Figure(figsize=(11, 9))
    axes = figure.add_subplot()
    for (p, q), value in sorted(outer.items(), key=lambda item: item[1]):
        axes.plot([p[0], q[0]], [p[1], q[1]], color=_CMAP(value), linewidth=0.5, alpha=0.6, zorder=1)
    inside_boxes = {box_of[name] for name in _smaller_side(topology, cut_inside) if box_of[name] is not None}
    axes.scatter(
        [origin[b][0] for b in boxes],
        [origin[b][1] for b in boxes],
        marker="s",
        s=220,
        c=[_CMAP(inner.get(b, 0.0)) for b in boxes],
        edgecolors=["#d62728" if b in inside_boxes else "black" for b in boxes],
        linewidths=[2.2 if b in inside_boxes else 0.5 for b in boxes],
        zorder=3,
    )
    axes.scatter(
        [p[0] for p in shared.values()],
        [p[1] for p in shared.values()],
        marker="D",
        s=60,
        c="#7f7f7f",
        zorder=3,
    )
    labels = [(f"b{box}", origin[box]) for box in boxes]
    if len(shared) <= 32:
        labels += sorted(shared.items())
    for text, point in labels:
        axes.annotate(text, point, xytext=(0, 9), textcoords="offset points", ha="center", fontsize=7)
    _legend_and_colourbar(figure, axes, {"box", "switch"})
    axes.set_title(
        f"{title}\n(one square per box, coloured by its busiest internal link; "
        "red = smaller side of the cut)",
        fontsize=10,
    )
    axes.set_aspect("equal")
    axes.axis("off")
    return figure
