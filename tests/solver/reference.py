"""The reference topologies (the vendors' published fabrics), built directly as Topology objects.

Used until (and alongside) the shipped presets: the solver tests must not depend on the YAML reader.
Names follow the preset convention (``b0.gpu3``, ``b0.nvswitch``, ``ib.even``, ``rail3``, ``spine``).
"""

from __future__ import annotations

from fractions import Fraction

from collc.topology.model import Link, Node, Topology

MI250_LINKS = [
    [0, 4, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
    [4, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
    [0, 0, 0, 4, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0],
    [0, 0, 4, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0],
    [2, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 4, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 0, 1, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 2, 0, 1, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 2, 0, 0, 0],
    [0, 1, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 1, 0, 0],
    [0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 1, 0],
    [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 2],
    [0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 4, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 4, 0, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1, 0, 4],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1, 4, 0],
]


def _box_node(box: int, role: str, kind: str) -> Node:
    return Node(f"b{box}.{role}", kind, box, role)  # type: ignore[arg-type]


def _topology(name: str, nodes: list[Node], links: list[Link]) -> Topology:
    ranks = tuple(node.name for node in nodes if node.kind == "gpu")
    return Topology(name, tuple(nodes), tuple(links), ranks)


def dgx_a100(boxes: int) -> Topology:
    nodes, links = [], []
    for b in range(boxes):
        nodes += [_box_node(b, f"gpu{i}", "gpu") for i in range(8)]
        nodes.append(_box_node(b, "nvswitch", "switch"))
        for i in range(8):
            links.append(Link(f"b{b}.gpu{i}", f"b{b}.nvswitch", Fraction(300)))
        if boxes > 1:
            nodes += [_box_node(b, f"nic{i}", "nic") for i in range(8)]
            for i in range(8):
                links.append(Link(f"b{b}.gpu{i}", f"b{b}.nic{i}", Fraction(25)))
                links.append(Link(f"b{b}.nic{i}", "ib.even" if i % 2 == 0 else "ib.odd", Fraction(25)))
    if boxes > 1:
        nodes += [Node("ib.even", "switch"), Node("ib.odd", "switch")]
    return _topology(f"dgx-a100-{boxes}", nodes, links)


def mi250(boxes: int) -> Topology:
    nodes, links = [], []
    for b in range(boxes):
        nodes += [_box_node(b, f"gcd{i}", "gpu") for i in range(16)]
        for i in range(16):
            for j in range(i + 1, 16):
                if MI250_LINKS[i][j]:
                    links.append(Link(f"b{b}.gcd{i}", f"b{b}.gcd{j}", Fraction(50 * MI250_LINKS[i][j])))
            if boxes > 1:
                links.append(Link(f"b{b}.gcd{i}", "ib", Fraction(16)))
    if boxes > 1:
        nodes.append(Node("ib", "switch"))
    return _topology(f"mi250-{boxes}", nodes, links)


def dgx_h100_rail(boxes: int) -> Topology:
    nodes, links = [], []
    for b in range(boxes):
        nodes += [_box_node(b, f"gpu{i}", "gpu") for i in range(8)]
        nodes.append(_box_node(b, "nvswitch", "switch"))
        for i in range(8):
            links.append(Link(f"b{b}.gpu{i}", f"b{b}.nvswitch", Fraction(450)))
            if boxes > 1:
                links.append(Link(f"b{b}.gpu{i}", f"rail{i}", Fraction(50)))
    if boxes > 1:
        nodes += [Node(f"rail{i}", "switch") for i in range(8)] + [Node("spine", "switch")]
        links += [Link(f"rail{i}", "spine", Fraction(50 * boxes)) for i in range(8)]
    return _topology(f"dgx-h100-rail-{boxes}", nodes, links)


BUILDERS = {"dgx-a100": dgx_a100, "mi250": mi250, "dgx-h100-rail": dgx_h100_rail}
