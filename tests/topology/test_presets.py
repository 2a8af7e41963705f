"""The reference presets are exactly the vendors' fabrics, typed independently in solver/reference.py."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest

from collc.capacity import capacity_graph
from collc.errors import InputError
from collc.topology import list_presets, load, presets_dir
from collc.topology.model import Topology
from solver.reference import MI250_LINKS  # the MI250 link matrix, typed once

REFERENCE_SIZES = {
    "dgx-a100": [1, 2, 4, 8, 16],
    "mi250": [1, 2, 4, 8],
    "dgx-h100-rail": [1, 4, 8, 16],
}
GPUS_PER_BOX = {"dgx-a100": 8, "mi250": 16, "dgx-h100-rail": 8}


def load_boxes(preset: str, boxes: int) -> Topology:
    return load(preset, {"boxes": str(boxes)})


def undirected_bandwidths(topology: Topology) -> dict[frozenset[str], Fraction]:
    """Total bandwidth per unordered node pair, asserting every link is full duplex."""
    total: Counter[frozenset[str]] = Counter()
    for link in topology.links:
        assert not link.directed
        total[frozenset((link.src, link.dst))] += link.bandwidth
    return dict(total)


@pytest.mark.parametrize(("preset", "boxes"), [(p, n) for p, sizes in REFERENCE_SIZES.items() for n in sizes])
def test_reference_preset_sizes_and_rank_order(preset: str, boxes: int) -> None:
    topology = load_boxes(preset, boxes)
    per_box = GPUS_PER_BOX[preset]
    assert topology.num_gpus == boxes * per_box
    gpu = "gcd" if preset == "mi250" else "gpu"
    assert topology.ranks == tuple(f"b{b}.{gpu}{i}" for b in range(boxes) for i in range(per_box))
    for rank, name in enumerate(topology.ranks):
        node = topology.node(name)
        assert (node.kind, node.box, node.role) == ("gpu", rank // per_box, f"{gpu}{rank % per_box}")
    capacity_graph(topology)  # integral scaling succeeds


@pytest.mark.parametrize("boxes", [1, 2, 4])
def test_dgx_a100_model(boxes: int) -> None:
    links = undirected_bandwidths(load_boxes("dgx-a100", boxes))
    expected: dict[frozenset[str], Fraction] = {}
    for b in range(boxes):
        for i in range(8):
            expected[frozenset((f"b{b}.gpu{i}", f"b{b}.nvswitch"))] = Fraction(300)
            if boxes > 1:
                expected[frozenset((f"b{b}.gpu{i}", f"b{b}.nic{i}"))] = Fraction(25)
                parity = "ib.even" if i % 2 == 0 else "ib.odd"
                expected[frozenset((f"b{b}.nic{i}", parity))] = Fraction(25)
    assert links == expected


@pytest.mark.parametrize("boxes", [1, 2])
def test_mi250_model(boxes: int) -> None:
    links = undirected_bandwidths(load_boxes("mi250", boxes))
    expected: dict[frozenset[str], Fraction] = {}
    for b in range(boxes):
        for i in range(16):
            for j in range(i + 1, 16):
                if MI250_LINKS[i][j]:
                    expected[frozenset((f"b{b}.gcd{i}", f"b{b}.gcd{j}"))] = Fraction(50 * MI250_LINKS[i][j])
            if boxes > 1:
                expected[frozenset((f"b{b}.gcd{i}", "ib"))] = Fraction(16)
    assert links == expected


@pytest.mark.parametrize("boxes", [1, 4])
def test_dgx_h100_rail_model(boxes: int) -> None:
    links = undirected_bandwidths(load_boxes("dgx-h100-rail", boxes))
    expected: dict[frozenset[str], Fraction] = {}
    for b in range(boxes):
        for i in range(8):
            expected[frozenset((f"b{b}.gpu{i}", f"b{b}.nvswitch"))] = Fraction(450)
            if boxes > 1:
                expected[frozenset((f"b{b}.gpu{i}", f"rail{i}"))] = Fraction(50)
    if boxes > 1:
        for i in range(8):
            expected[frozenset((f"rail{i}", "spine"))] = Fraction(50 * boxes)
    assert links == expected


def test_preset_name_with_suffix_and_metadata() -> None:
    topology = load("dgx-a100.yaml")
    assert topology.name == "dgx-a100"
    assert topology.metadata.gpu_model == "A100"
    assert topology.metadata.sms_per_gpu == 108
    assert topology.metadata.runtime == "msccl-executor"
    assert load("mi250").metadata.runtime == "rccl"
    assert load("dgx-h100-rail").metadata.sms_per_gpu == 132


def test_list_presets_covers_every_file_with_a_description() -> None:
    listed = dict(list_presets())
    assert sorted(listed) == sorted(path.stem for path in presets_dir().glob("*.yaml"))
    assert set(REFERENCE_SIZES) <= set(listed)
    assert all(description for description in listed.values())


def test_unknown_preset_suggests_the_closest() -> None:
    with pytest.raises(InputError) as caught:
        load("dgx-a10")
    assert "neither a topology file nor a preset" in caught.value.message
    assert "dgx-a100" in (caught.value.hint or "")


def test_load_accepts_a_path(tmp_path) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text((presets_dir() / "dgx-a100.yaml").read_text())
    from_path, from_preset = load(copy, {"boxes": "2"}), load("dgx-a100", {"boxes": "2"})
    assert (from_path.nodes, from_path.links, from_path.ranks) == (
        from_preset.nodes,
        from_preset.links,
        from_preset.ranks,
    )
    assert from_path.source == str(copy)


def test_dgx_h100_leaf_spine_with_oversubscription() -> None:
    topology = load("dgx-h100", {"boxes": "40", "spine_oversubscription": "2"})
    bandwidths = undirected_bandwidths(topology)
    assert topology.num_gpus == 320
    leaves = [node.name for node in topology.nodes if node.name.startswith("leaf")]
    assert len(leaves) == 16  # two scalable units (32 + 8 boxes) x 8 rails
    assert bandwidths[frozenset(("leaf3", "spine"))] == 32 * 50 / 2
    assert bandwidths[frozenset(("leaf11", "spine"))] == 8 * 50 / 2
    assert bandwidths[frozenset(("b33.nic3", "leaf11"))] == 50
    assert bandwidths[frozenset(("b33.gpu3", "b33.nic3"))] == 64
    assert topology.node("b33.nic3").kind == "nic"


def test_dgx_h100_fractional_oversubscription_and_h200_twin() -> None:
    topology = load("dgx-h100", {"boxes": "4", "spine_oversubscription": "1.5"})
    assert undirected_bandwidths(topology)[frozenset(("leaf0", "spine"))] == Fraction(4 * 50 * 2, 3)
    h100, h200 = load("dgx-h100", {"boxes": "2"}), load("dgx-h200", {"boxes": "2"})
    assert (h100.nodes, h100.links) == (h200.nodes, h200.links)
    assert (h100.metadata.gpu_model, h200.metadata.gpu_model) == ("H100", "H200")


def test_thousand_gpu_rail_cluster() -> None:
    topology = load("dgx-h100", {"boxes": "128"})
    assert topology.num_gpus == 1024
    assert sum(1 for node in topology.nodes if node.kind == "switch") == 128 + 32 + 1


def test_mi300x_full_mesh() -> None:
    bandwidths = undirected_bandwidths(load("mi300x"))
    assert bandwidths == {
        frozenset((f"b0.gpu{i}", f"b0.gpu{j}")): 64 for i in range(8) for j in range(i + 1, 8)
    }
    two = load("mi300x", {"boxes": "2"})
    assert undirected_bandwidths(two)[frozenset(("rail5", "spine"))] == 100


@pytest.mark.parametrize("nics", [1, 4])
def test_dgx1_cube_mesh_and_nics(nics: int) -> None:
    topology = load("dgx1", {"boxes": "2", "nics": str(nics)})
    arcs = topology.arc_bandwidths()
    for i in range(8):
        gpu = f"b0.gpu{i}"
        peers = {dst: bw for (src, dst), bw in arcs.items() if src == gpu and dst.startswith("b0.gpu")}
        assert len(peers) == 4 and sum(peers.values()) == 150
        assert sorted(peers.values()) == [25, 25, 50, 50]
        assert arcs[(gpu, f"b0.nic{i * nics // 8}")] == 16
    assert sum(1 for node in topology.nodes if node.kind == "nic") == 2 * nics


def test_gb200_nvl72() -> None:
    rack = load("gb200-nvl72")
    assert rack.num_gpus == 72 and rack.ranks[71] == "rack0.gpu71"
    assert {link.bandwidth for link in rack.links} == {900}
    two = load("gb200-nvl72", {"racks": "2"})
    assert undirected_bandwidths(two)[frozenset(("rack1.nic70", "ib"))] == 50


@pytest.mark.parametrize("preset", [name for name, _ in list_presets()])
def test_every_preset_declares_metadata_and_cites_sources(preset: str) -> None:
    topology = load(preset)
    meta = topology.metadata
    assert meta.gpu_model and meta.sms_per_gpu and meta.runtime in ("rccl", "msccl-executor")
    assert (meta.runtime == "rccl") == meta.gpu_model.startswith("MI")
    header = (presets_dir() / f"{preset}.yaml").read_text().split("\nname:")[0]
    assert "Sources" in header or "Source" in header
