"""Boxes and roles inferred from the graph (`collc.topology.infer`) for files that name none."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collc.cli import main
from collc.errors import InfeasibleError
from collc.solver import check_forest, solve
from collc.topology import infer, load
from collc.topology.export import to_flat_yaml
from collc.topology.infer import infer_structure
from collc.topology.model import Link, Node, Topology

from .strategies import topologies

PCIE_2BOX = Path(__file__).parents[1] / "solver" / "fixtures" / "pcie-2box.yaml"

# every shipped preset up to 32 GPUs, as (preset, boxes)
PRESETS = [
    ("dgx-a100", 1),
    ("dgx-a100", 2),
    ("dgx-a100", 4),
    ("mi250", 1),
    ("mi250", 2),
    ("dgx-h100-rail", 2),
    ("dgx-h100-rail", 4),
    ("dgx-h100", 4),
    ("mi300x", 4),
    ("dgx1", 1),
    ("dgx1", 4),
]


def bare(topology: Topology, *, classes: bool = True) -> Topology:
    """The same fabric without ``box`` and ``role`` (and without link classes unless ``classes``)."""
    nodes = tuple(dataclasses.replace(node, box=None, role=None) for node in topology.nodes)
    links = (
        topology.links if classes else tuple(dataclasses.replace(x, link_class=None) for x in topology.links)
    )
    return dataclasses.replace(topology, nodes=nodes, links=links)


def flat_file(topology: Topology, directory: Path, *, classes: bool = True) -> Path:
    """The flat form of ``topology`` without box and role, written to a file."""
    path = directory / f"{topology.name}-flat.yaml"
    path.write_text(to_flat_yaml(bare(topology, classes=classes)))
    return path


def box_partition(topology: Topology) -> set[frozenset[str]]:
    """The nodes grouped by box (nodes outside every box form one more group)."""
    groups: dict[int | None, set[str]] = {}
    for node in topology.nodes:
        groups.setdefault(node.box, set()).add(node.name)
    return {frozenset(group) for group in groups.values()}


def role_partition(topology: Topology) -> set[frozenset[str]]:
    """The nodes grouped by role: which nodes of different boxes correspond."""
    groups: dict[str | None, set[str]] = {}
    for node in topology.nodes:
        groups.setdefault(node.role, set()).add(node.name)
    return {frozenset(group) for group in groups.values()}


@pytest.mark.parametrize("classes", [True, False], ids=["with-classes", "no-classes"])
@pytest.mark.parametrize(("preset", "boxes"), PRESETS, ids=str)
def test_flat_presets_get_their_boxes_and_roles_back(
    tmp_path: Path, preset: str, boxes: int, classes: bool
) -> None:
    """Without classes the boxes come from the NICs (A100, H100, MI300X, DGX-1) or from the slowest
    tier of links to switches (MI250, rails), with them from the IB links."""
    annotated = load(preset, {"boxes": str(boxes)})
    inferred = load(flat_file(annotated, tmp_path, classes=classes))
    assert all(node.box is None for node in bare(annotated).nodes)  # the file really is bare
    assert box_partition(inferred) == box_partition(annotated)
    assert role_partition(inferred) == role_partition(annotated)
    assert [node.box for node in inferred.nodes] == [node.box for node in annotated.nodes]


def compiled(tmp_path: Path, *source: str) -> str:
    out = tmp_path / "out.xml"
    result = CliRunner().invoke(main, ["compile", *source, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_text()


def test_flat_two_box_rail_fabric_compiles_to_the_same_file(tmp_path: Path) -> None:
    """Without boxes this fabric gets another forest (no box-by-box partners at the rails, no
    structural symmetry), so the file is the same only if the inferred structure is."""
    annotated = load("dgx-h100-rail", {"boxes": "2"})
    flat = str(flat_file(annotated, tmp_path, classes=False))
    assert compiled(tmp_path, flat) == compiled(tmp_path, "dgx-h100-rail", "--set", "boxes=2")


def test_annotations_given_by_the_file_are_never_changed() -> None:
    annotated = load("dgx-a100", {"boxes": "2"})
    assert infer_structure(annotated) is annotated
    partial = dataclasses.replace(
        bare(annotated), nodes=(dataclasses.replace(annotated.nodes[0], box=7), *bare(annotated).nodes[1:])
    )
    assert infer_structure(partial) is partial  # any annotation means the file chose its structure


def test_pcie_boxes_keep_their_switch_and_nic_and_leave_ib_out() -> None:
    for classes in (True, False):
        topology = infer_structure(bare(load(PCIE_2BOX), classes=classes))
        boxes = {node.name: node.box for node in topology.nodes}
        assert {name for name, box in boxes.items() if box == 0} == {
            "b0.gpu0",
            "b0.gpu1",
            "b0.gpu2",
            "b0.gpu3",
            "b0.pcie",
            "b0.nic",
        }
        assert boxes["ib"] is None and boxes["b1.nic"] == 1
        roles = {node.name: node.role for node in topology.nodes}
        assert roles["b0.nic"] == roles["b1.nic"] and roles["b0.pcie"] == roles["b1.pcie"]


def mesh(bandwidths: dict[tuple[int, int], int]) -> Topology:
    nodes = tuple(Node(f"g{i}", "gpu") for i in range(4))
    links = tuple(Link(f"g{a}", f"g{b}", bw) for (a, b), bw in bandwidths.items())
    return Topology("mesh", nodes, links, tuple(node.name for node in nodes))


def test_a_switchless_mesh_is_one_box() -> None:
    """Links between GPUs are never the network tier: the slow pairs of a mesh are not box borders."""
    topology = infer_structure(
        mesh({(0, 1): 100, (2, 3): 100, (0, 2): 25, (1, 3): 25, (0, 3): 25, (1, 2): 25})
    )
    assert {node.box for node in topology.nodes} == {0}
    assert [node.role for node in topology.nodes] == ["gpu0", "gpu1", "gpu2", "gpu3"]


def test_a_single_switched_box_is_not_cut_into_lone_gpus() -> None:
    topology = infer_structure(bare(load("dgx-a100", {"boxes": "1"}), classes=False))
    assert {node.box for node in topology.nodes} == {0}


def with_box1_reversed(topology: Topology) -> Topology:
    """``topology`` with box 0's ranks first as given, then box 1's in reverse (2-box presets)."""
    box1 = [name for name in topology.ranks if name.startswith("b1.")]
    return dataclasses.replace(topology, ranks=(*topology.ranks[: len(box1)], *reversed(box1)))


def test_roles_follow_the_wiring_not_the_ranks() -> None:
    """Box 1's ranks reversed on rails: each GPU still takes the role of box 0's GPU on its rail."""
    inferred = infer_structure(with_box1_reversed(bare(load("dgx-h100-rail", {"boxes": "2"}))))
    roles = {node.name: node.role for node in inferred.nodes}
    assert all(roles[f"b1.gpu{i}"] == roles[f"b0.gpu{i}"] == f"gpu{i}" for i in range(8))


def test_gpus_the_wiring_cannot_tell_apart_take_roles_in_rank_order() -> None:
    """A100 boxes: even GPUs reach one IB switch, odd ones the other, all on one NVSwitch. With box
    1's ranks reversed, its first rank (gpu7, odd) takes the first odd role, gpu6 the first even."""
    inferred = infer_structure(with_box1_reversed(bare(load("dgx-a100", {"boxes": "2"}))))
    roles = {node.name: node.role for node in inferred.nodes if node.name.startswith("b1.gpu")}
    assert roles == {f"b1.gpu{7 - i}": f"gpu{i + 1 if i % 2 == 0 else i - 1}" for i in range(8)}


def test_a_wrong_role_guess_costs_speed_never_correctness(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no budget for the matching, box 1 (ranks reversed) keeps rank order: its roles no longer
    match box 0's wiring (GPU i on rail i), so fewer structural symmetry candidates pass
    verification, and the forest still meets the bound."""
    monkeypatch.setattr(infer, "MATCH_BUDGET", 0)
    annotated = load("dgx-h100-rail", {"boxes": "2"})
    reordered = infer_structure(with_box1_reversed(bare(annotated)))
    assert {n.name: n.role for n in reordered.nodes}["b1.gpu7"] == "gpu0"
    solution, reference = solve(reordered), solve(annotated)
    check_forest(solution.forest, reordered, solution.bound)
    assert solution.forest.allgather_algbw == reference.forest.allgather_algbw
    assert solution.stats.packing_orbits > reference.stats.packing_orbits  # slower: less symmetry used


def shuffled(topology: Topology, seed: int) -> Topology:
    """``topology`` with its ranks in a seeded random order."""
    ranks = list(topology.ranks)
    random.Random(seed).shuffle(ranks)
    return dataclasses.replace(topology, ranks=tuple(ranks))


def pcie_pairs(boxes: int) -> Topology:
    """Boxes of four GPUs, two per PCIe switch, the switches on one CPU with the box's NIC on one IB
    switch: every GPU reaches the same outside node, only the shared switch tells pairs apart."""
    nodes: list[Node] = [Node("ib", "switch")]
    links: list[Link] = []
    for b in range(boxes):
        gpus = [f"b{b}.g{i}" for i in range(4)]
        nodes += [Node(g, "gpu") for g in gpus]
        nodes += [Node(f"b{b}.sw0", "switch"), Node(f"b{b}.sw1", "switch"), Node(f"b{b}.cpu", "cpu")]
        nodes.append(Node(f"b{b}.nic", "nic"))
        links += [Link(g, f"b{b}.sw{i // 2}", Fraction(32)) for i, g in enumerate(gpus)]
        links += [Link(f"b{b}.sw{i}", f"b{b}.cpu", Fraction(32)) for i in range(2)]
        links += [Link(f"b{b}.cpu", f"b{b}.nic", Fraction(32)), Link(f"b{b}.nic", "ib", Fraction(25))]
    gpu_names = tuple(node.name for node in nodes if node.kind == "gpu")
    return Topology("pcie-pairs", tuple(nodes), tuple(links), gpu_names)


ROLE_FABRICS = {
    "dgx-h100-rail x4": lambda: load("dgx-h100-rail", {"boxes": "4"}),
    "dgx-a100 x4": lambda: load("dgx-a100", {"boxes": "4"}),
    "mi250 x2": lambda: load("mi250", {"boxes": "2"}),
    "dgx1 x4": lambda: load("dgx1", {"boxes": "4"}),
    "mi300x x4": lambda: load("mi300x", {"boxes": "4"}),
    "pcie pairs x4": lambda: pcie_pairs(4),
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("fabric", ROLE_FABRICS)
def test_roles_map_every_box_onto_the_first_whatever_the_ranks(fabric: str, seed: int) -> None:
    """Ranks shuffled across the whole fabric: for every box, the map to the first box by role takes
    each link inside the box to a link of the same bandwidth and direction, and each link leaving it
    to a link to the same outside node (the rail) where the preset wires every box alike."""
    inferred = infer_structure(shuffled(bare(ROLE_FABRICS[fabric]()), seed))
    first = next(node.box for node in inferred.nodes if node.name == inferred.ranks[0])
    named = {(node.box, node.role): node.name for node in inferred.nodes if node.box is not None}
    box_of = {node.name: node.box for node in inferred.nodes}
    role_of = {node.name: node.role for node in inferred.nodes}
    links = Counter((x.src, x.dst, x.bandwidth, x.directed) for x in inferred.links)

    def image(name: str) -> str:
        return name if box_of[name] is None else named[first, role_of[name]]

    for link in inferred.links:
        if {box_of[link.src], box_of[link.dst]} == {None}:
            continue
        mapped = (image(link.src), image(link.dst), link.bandwidth, link.directed)
        reverse = (mapped[1], mapped[0], *mapped[2:])
        assert links[mapped] or (not link.directed and links[reverse]), (link, mapped)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topology=topologies(), classes=st.booleans())
def test_random_fabrics_get_a_consistent_structure_and_meet_the_bound(
    topology: Topology, classes: bool
) -> None:
    """Whatever is inferred on a random fabric: every GPU is in a box, roles are unique inside a box,
    boxes are numbered by their lowest rank, and the forest still meets the bound."""
    plain = bare(topology, classes=classes)
    inferred = infer_structure(plain)
    rank = {name: r for r, name in enumerate(inferred.ranks)}
    boxes: dict[int, list[Node]] = {}
    for node in inferred.nodes:
        assert (node.box is None) == (node.role is None)
        if node.box is not None:
            boxes.setdefault(node.box, []).append(node)
    assert all(node.box is not None for node in inferred.nodes if node.kind == "gpu")
    assert sorted(boxes) == list(range(len(boxes)))
    lowest = [min(rank[n.name] for n in members if n.kind == "gpu") for _, members in sorted(boxes.items())]
    assert lowest == sorted(lowest)
    assert all(len({n.role for n in members}) == len(members) for members in boxes.values())
    if inferred.num_gpus < 2:
        return
    rounded = tuple(
        dataclasses.replace(x, bandwidth=Fraction(max(1, round(x.bandwidth / 10)) * 10))
        for x in inferred.links
    )
    inferred = dataclasses.replace(inferred, links=rounded)  # exact max-flow needs modest integers
    try:
        solution = solve(inferred)
    except InfeasibleError:
        return  # an unbalanced switch: no tree schedule reaches the bound, with or without boxes
    check_forest(solution.forest, inferred, solution.bound)
    assert solution.forest.allgather_algbw == solution.bound.allgather_algbw


def unequal_boxes(network_class: str | None) -> Topology:
    """Two GPUs on switch ``a.sw`` and three on ``b.sw`` (100 GB/s), every GPU on ``net`` at 25 GB/s."""
    gpus = ["a.g0", "a.g1", "b.g0", "b.g1", "b.g2"]
    nodes = (
        *(Node(g, "gpu") for g in gpus),
        Node("a.sw", "switch"),
        Node("b.sw", "switch"),
        Node("net", "switch"),
    )
    links = (
        *(Link(g, f"{g[0]}.sw", Fraction(100)) for g in gpus),
        *(Link(g, "net", Fraction(25), link_class=network_class) for g in gpus),
    )
    return Topology("unequal", nodes, links, tuple(gpus))


def test_network_classes_split_unequal_boxes_in_any_case() -> None:
    """Unequal boxes without NICs are found only through a network class (``InfiniBand`` counts):
    the bandwidth tiers accept look-alike boxes only."""
    boxes = [node.box for node in infer_structure(unequal_boxes("InfiniBand")).nodes]
    assert boxes == [0, 0, 1, 1, 1, 0, 1, None]
    assert {node.box for node in infer_structure(unequal_boxes(None)).nodes} == {0}


def test_classes_that_do_not_split_the_gpus_fall_back_to_the_tiers() -> None:
    """Only the spine's links carry a class: the classed cut leaves the GPUs joined through the
    rails, so the slowest tier of links to switches decides."""
    annotated = load("dgx-h100-rail", {"boxes": "2"})
    links = tuple(
        dataclasses.replace(x, link_class="ib" if "spine" in (x.src, x.dst) else None)
        for x in annotated.links
    )
    inferred = infer_structure(dataclasses.replace(bare(annotated), links=links))
    assert [node.box for node in inferred.nodes] == [node.box for node in annotated.nodes]
