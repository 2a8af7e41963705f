"""Boxes plus a network description -> a topology file in collc's template form.

The written file has one box template (the imported box), a ``boxes`` group, and the network at the top
level, like the shipped presets: the box's NICs (and their links) exist only when ``boxes > 1``, so a
single box is judged by its own GPU-to-GPU fabric. Its parameters are ``boxes`` and, for the network,
``boxes_per_leaf`` and ``spine_oversubscription``; ``collc … --set boxes=64`` scales the imported box.

Networks (every NIC port runs at its own speed):

* ``rails`` (rail-optimised, as in the DGX SuperPOD reference architectures): port ``i`` of every box
  in a unit of ``boxes_per_leaf`` boxes goes to that unit's rail-``i`` leaf switch; every leaf goes to
  one spine vertex with its downlink bandwidth divided by ``spine_oversubscription``;
* ``leaf-spine``: every port of the boxes of one unit goes to the unit's leaf switch; leaves go to the
  spine (only when there is more than one unit) with their downlink bandwidth divided by
  ``spine_oversubscription``. With every box under one leaf this is a single switch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from collc.errors import InputError
from collc.input_limits import MAX_GPUS, MAX_LINKS, MAX_NODES
from collc.topology.export import exact_number
from collc.topology.importers.model import BoxLink, ImportedBox, Nic

NETWORKS = ("rails", "leaf-spine")


@dataclass(frozen=True)
class FabricOptions:
    """The network around the boxes: how many, which shape, how many per leaf, the oversubscription."""

    boxes: int | None = None
    network: str = "rails"
    boxes_per_leaf: int = 32
    oversubscription: Fraction = Fraction(1)
    name: str | None = None


@dataclass(frozen=True)
class ImportResult:
    """The topology file's text and the report: what was assumed, what was left out."""

    yaml_text: str
    boxes: int
    gpus_per_box: int
    assumptions: tuple[str, ...]
    notes: tuple[str, ...]


def combine(boxes: Sequence[ImportedBox], options: FabricOptions) -> ImportResult:
    """One template from one box (used ``options.boxes`` times) or from per-node boxes that agree."""
    first = boxes[0]
    for other in boxes[1:]:
        _check_same(first, other)
    count = options.boxes if options.boxes is not None else len(boxes)
    if len(boxes) > 1 and count != len(boxes):
        raise InputError(
            f"--boxes {count} but {len(boxes)} per-node files",
            hint="give one file per box, or one file with --boxes N to use it for every box",
        )
    if count < 1:
        raise InputError(
            f"--boxes must be at least 1, got {count}",
            hint="--boxes is the number of machines, e.g. --boxes 2",
        )
    if len(first.gpus) * count < 2:
        raise InputError(
            f"{first.source} shows 1 GPU, so one box is 1 GPU: a collective needs at least 2",
            location=first.location,
            hint="give --boxes 2 or more (boxes joined by their NICs), or dump with one rank per GPU",
        )
    if count > 1:
        _check_network(first, options)
    _check_size(first, count, options)
    ranks = _rank_list(boxes) if len(boxes) > 1 else None
    assumptions = tuple(dict.fromkeys(text for box in boxes for text in box.assumptions))
    notes = tuple(dict.fromkeys(text for box in boxes for text in box.notes))
    if any(nic.speed_gbps is None for nic in first.nics):
        # one box: the network is left out, so the file cannot be scaled with --set boxes=N
        first = replace(first, nics=(), nic_links=())
        notes += ("the NICs have no speed, so the file has no network (--nic-speed adds it)",)
    text = _write(first, count, options, ranks, [box.source for box in boxes], assumptions)
    return ImportResult(text, count, len(first.gpus), assumptions, notes)


def _check_same(first: ImportedBox, other: ImportedBox) -> None:
    for what, mine, theirs in (
        ("GPUs", len(first.gpus), len(other.gpus)),
        ("NICs", len(first.nics), len(other.nics)),
        ("switches", len(first.switches), len(other.switches)),
    ):
        if mine != theirs:
            raise InputError(
                f"inconsistent node counts: {theirs} {what} here but {mine} in {first.source}",
                location=other.location,
                hint="every per-node file must describe the same kind of node; import unlike ones apart",
            )
    if other.shape() != first.shape():
        raise InputError(
            f"this node's links differ from {first.source}'s",
            location=other.location,
            hint="a node with a failed link? import a healthy node's file, then use --without link:A-B",
        )


def _check_size(box: ImportedBox, count: int, options: FabricOptions) -> None:
    """The fabric must fit collc's limits; checked here, before the file is written and read back."""
    leaves = -(-count // options.boxes_per_leaf) * (len(box.nics) if options.network == "rails" else 1)
    network = count > 1 and bool(box.nics)
    # a matrix rule writes each parallel link; every other rule writes one link of their total
    matrix = _mesh_lines(box.links, box.gpus) is not None
    per_box_links = sum(link.count for link in box.links) if matrix else len(box.links)
    per_box_nodes = len(box.gpus) + len(box.switches)
    if network:
        per_box_links += len(box.nic_links) + len(box.nics)
        per_box_nodes += len(box.nics)
    for what, total, limit in (
        ("GPUs", count * len(box.gpus), MAX_GPUS),
        ("nodes", count * per_box_nodes + (leaves + 1 if network else 0), MAX_NODES),
        ("links", count * per_box_links + (leaves if network else 0), MAX_LINKS),
    ):
        if total > limit:
            raise InputError(
                f"{count} boxes would have {total:,} {what}, more than the {limit:,} collc supports",
                hint="import fewer boxes",
            )


def _check_network(box: ImportedBox, options: FabricOptions) -> None:
    if not box.nics:
        raise InputError(
            f"{box.source} shows no NIC, so the boxes cannot be joined",
            location=box.location,
            hint="take the dump on a node with its network up, or import a single box (--boxes 1)",
        )
    unknown = [nic for nic in box.nics if nic.speed_gbps is None]
    if unknown:
        raise InputError(
            f"no speed for NIC {', '.join(nic.device for nic in unknown)} in {box.source}",
            location=unknown[0].location or box.location,
            hint="give it with --nic-speed, e.g. --nic-speed '400 Gb/s'",
        )
    if options.network not in NETWORKS:
        raise InputError(f"unknown network {options.network!r}", hint=f"use one of {', '.join(NETWORKS)}")


def _rank_list(boxes: Sequence[ImportedBox]) -> list[str] | None:
    """The ``ranks`` list when the per-node files give global ranks that are not box-major."""
    owner: dict[int, str] = {}
    for index, box in enumerate(boxes):
        if box.global_ranks is None:
            return None
        for gpu, rank in zip(box.gpus, box.global_ranks, strict=True):
            if rank in owner:
                return None  # each file numbers its own ranks: box-major order, file by file
            owner[rank] = f"b{index}.{gpu}"
    if sorted(owner) != list(range(len(owner))):
        return None
    ordered = [owner[rank] for rank in range(len(owner))]
    box_major = [f"b{index}.{gpu}" for index, box in enumerate(boxes) for gpu in box.gpus]
    return None if ordered == box_major else ordered


def _comment(text: str) -> str:
    """Text for a YAML comment: names from the input (paths, device names) cannot end the comment."""
    return "".join(char if char.isprintable() else "?" for char in text)


def _plain(value: Fraction) -> str:
    """An exact number as an expression: ``300``, ``12.5`` or ``1/3``."""
    return str(exact_number(value))


def _number(value: Fraction) -> str:
    """An exact number as a YAML value (a fraction quoted, so YAML keeps it as text to evaluate)."""
    shown = _plain(value)
    return f'"{shown}"' if "/" in shown else shown


def _link_line(src: str, dst: str, link: BoxLink, when: str | None = None) -> str:
    # parallel links add up: one link of their total keeps the file within the link limit at scale
    parts = [f"src: {src}", f"dst: {dst}", f"bandwidth: {_number(link.total)}"]
    if link.directed:
        parts.append("directed: true")
    parts.append(f"class: {link.link_class}")
    if when:
        parts.append(f"when: {when}")
    line = "      - {" + ", ".join(parts) + "}"
    return line + (f"  # {link.count} links x {_plain(link.bandwidth)} GB/s" if link.count > 1 else "")


def _template_links(links: Sequence[BoxLink], gpus: Sequence[str], when: str | None = None) -> list[str]:
    """Link lines; links alike from every GPU to one node, or from GPU i to node i, as one selector."""
    figures: dict[tuple[object, ...], list[BoxLink]] = {}
    for link in links:
        shape = (link.bandwidth, link.count, link.link_class, link.directed)
        if link.src in gpus:
            local = link.dst.rstrip("0123456789")
            paired = local != link.dst and link.dst[len(local) :] == link.src[len("gpu") :]
            figures.setdefault(("paired", local, *shape) if paired else ("one", link.dst, *shape), []).append(
                link
            )
    lines = []
    grouped: set[int] = set()
    for (kind, target, *_), group in figures.items():
        if len(gpus) > 1 and sorted(link.src for link in group) == sorted(gpus):
            dst = f'"{target}{{i}}"' if kind == "paired" else target
            lines.append(_link_line('"gpu{i}"', dst, group[0], when))
            grouped.update(id(link) for link in group)
    lines += [_link_line(link.src, link.dst, link, when) for link in links if id(link) not in grouped]
    return lines


def _mesh_lines(links: Sequence[BoxLink], gpus: Sequence[str]) -> list[str] | None:
    """A switchless box whose GPU links all run at one per-link speed as one rule, like the presets:
    every pair once (``where: i < j``) when each pair has the same links, else a link-count matrix."""
    if not links or any(link.directed or link.src not in gpus or link.dst not in gpus for link in links):
        return None
    if len({(link.bandwidth, link.link_class) for link in links}) != 1:
        return None
    speed, link_class = _number(links[0].bandwidth), links[0].link_class
    size = len(gpus)
    if len(links) == size * (size - 1) // 2 and len({link.count for link in links}) == 1:
        total = _number(links[0].total)
        pairs = '{src: "gpu{i}", dst: "gpu{j}", '
        return [f"      - {pairs}bandwidth: {total}, class: {link_class}, where: i < j}}"]
    counts = [[0] * size for _ in gpus]
    for link in links:
        i, j = gpus.index(link.src), gpus.index(link.dst)
        counts[i][j] = counts[j][i] = link.count
    lines = [
        f'      - nodes: "gpu{{i}}"  # entry [i][j]: parallel {speed} GB/s links between gpu i and gpu j',
        f"        bandwidth: {speed}",
        f"        class: {link_class}",
        "        matrix:",
    ]
    return lines + [f"          - [{', '.join(map(str, row))}]" for row in counts]


def _write(
    box: ImportedBox,
    count: int,
    options: FabricOptions,
    ranks: list[str] | None,
    sources: list[str],
    assumptions: tuple[str, ...],
) -> str:
    name = options.name or "imported"
    shown = _comment(", ".join(sources))
    lines = [f"# Imported by collc topo import from {shown}."]
    if assumptions:
        lines.append("# Figures not in the input (assumptions):")
        lines += [f"#   - {_comment(text)}" for text in assumptions]
    # a plain name as is; anything else as a JSON string (also a YAML string), so it stays one value
    lines.append(f"name: {name if re.fullmatch(r'[A-Za-z_][A-Za-z0-9_.-]*', name) else json.dumps(name)}")
    gpus = len(box.gpus)
    lines.append(
        f"description: {gpus} GPU(s) per box as the machine reported it"
        + (
            f", boxes joined by a {options.network} network{' (--set boxes=2 or more)' if count == 1 else ''}"
            if box.nics
            else ""
        )
    )
    smallest = 2 if gpus == 1 else 1
    fixed = f", max: {count}" if ranks else ""
    lines += [
        "parameters:",
        f"  boxes: {{default: {count}, min: {smallest}{fixed}, description: number of boxes}}",
    ]
    if box.nics:
        lines.append(
            f"  boxes_per_leaf: {{default: {options.boxes_per_leaf}, min: 1, "
            "description: boxes per leaf switch (scalable unit)}"
        )
        lines.append(
            f"  spine_oversubscription: {{default: {_number(options.oversubscription)}, "
            "type: number, min: 1, "
            "description: leaf downlink/uplink ratio (1 = non-blocking)}"
        )
    metadata = [
        f"gpu_model: {box.gpu_model}" if box.gpu_model else None,
        f"sms_per_gpu: {box.sms_per_gpu}" if box.sms_per_gpu else None,
        f"runtime: {box.runtime}" if box.runtime else None,
    ]
    if any(metadata):
        lines.append("metadata: {" + ", ".join(item for item in metadata if item) + "}")
    network = "boxes > 1"
    lines += ["templates:", "  box:", "    nodes:", f"      - {{name: gpu, kind: gpu, count: {gpus}}}"]
    lines += [f"      - {{name: {switch}, kind: switch}}" for switch in box.switches]
    if box.nics:
        lines.append(f"      - {{name: nic, kind: nic, count: {len(box.nics)}, when: {network}}}")
    lines.append("    links:" if box.links or box.nics else "    links: []")
    mesh = _mesh_lines(box.links, box.gpus)
    lines += mesh if mesh is not None else _template_links(box.links, box.gpus)
    lines += _template_links(box.nic_links, box.gpus, network)
    lines += ["boxes:", "  - {template: box, count: boxes}"]
    if box.nics:
        lines += _network_lines(box.nics, options.network)
    if ranks:
        lines.append("ranks: [" + ", ".join(ranks) + "]")
    return "\n".join(lines) + "\n"


def _speed_groups(nics: Sequence[Nic]) -> list[tuple[Fraction, list[int]]]:
    """NIC indices grouped by port speed, fastest first (one rule per speed)."""
    groups: dict[Fraction, list[int]] = {}
    for index, nic in enumerate(nics):
        assert nic.speed_gbps is not None
        groups.setdefault(nic.speed_gbps, []).append(index)
    return sorted(groups.items(), key=lambda item: -item[0])


def _where(variable: str, indices: list[int], total: int) -> str:
    if len(indices) == total:
        return ""
    return ", where: " + " or ".join(f"{variable} == {index}" for index in indices)


def _network_lines(nics: Sequence[Nic], network: str) -> list[str]:
    when = "when: boxes > 1"
    rails = len(nics)
    link_class = nics[0].link_class
    groups = _speed_groups(nics)
    units = "((boxes + boxes_per_leaf - 1) // boxes_per_leaf)"
    under = "min(boxes_per_leaf, boxes - {unit} * boxes_per_leaf)"
    lines = ["nodes:"]
    if network == "rails":
        per_unit = f"{rails} * " if rails > 1 else ""
        lines.append(f"  - {{name: leaf, kind: switch, count: {per_unit}{units}, {when}}}")
        lines.append(f"  - {{name: spine, kind: switch, {when}}}")
        lines.append("links:")
        for speed, indices in groups:
            lines.append(
                f'  - {{src: "b{{b}}.nic{{i}}", dst: "leaf{{{per_unit}(b // boxes_per_leaf) + i}}", '
                f"bandwidth: {_number(speed)}, class: {link_class}, {when}{_where('i', indices, rails)}}}"
            )
        for speed, indices in groups:
            downlink = under.format(unit=f"(k // {rails})" if rails > 1 else "k")
            where = _where(f"k % {rails}", indices, rails)
            lines.append(
                f'  - {{src: "leaf{{k}}", dst: spine, bandwidth: "{downlink} * {_plain(speed)}'
                f' / spine_oversubscription", class: {link_class}, {when}{where}}}'
            )
        return lines
    total = sum((nic.speed_gbps or Fraction(0) for nic in nics), Fraction(0))
    spine = "boxes > boxes_per_leaf"
    lines.append(f"  - {{name: leaf, kind: switch, count: {units}, {when}}}")
    lines.append(f"  - {{name: spine, kind: switch, when: {spine}}}")
    lines.append("links:")
    for speed, indices in groups:
        lines.append(
            f'  - {{src: "b{{b}}.nic{{i}}", dst: "leaf{{b // boxes_per_leaf}}", bandwidth: {_number(speed)}, '
            f"class: {link_class}, {when}{_where('i', indices, rails)}}}"
        )
    downlink = under.format(unit="k")
    lines.append(
        f'  - {{src: "leaf{{k}}", dst: spine, bandwidth: "{downlink} * {_plain(total)}'
        f' / spine_oversubscription", class: {link_class}, when: {spine}}}'
    )
    return lines
