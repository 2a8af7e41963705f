"""--without and --derate on shipped presets and small fabrics: exact bounds, pruning and messages."""

from __future__ import annotations

from fractions import Fraction

import pytest

from collc.capacity import capacity_graph
from collc.errors import InputError
from collc.solver.bound import optimal_bound
from collc.topology import load
from collc.topology.degrade import Degradation, degrade
from collc.topology.model import Link, Node, Topology


def x_star(topology: Topology) -> Fraction:
    return optimal_bound(capacity_graph(topology)).x_star


def a100(boxes: int = 2) -> Topology:
    return load("dgx-a100", {"boxes": str(boxes)})


def test_no_changes_is_the_same_topology() -> None:
    fabric = a100()
    assert degrade(fabric, Degradation()) is fabric


def test_a_drained_nic_leaves_its_gpu_only_the_nvswitch() -> None:
    # healthy: a GPU's 325 GB/s ingress over the 15 others; b0.gpu3 keeps only its 300 GB/s NVSwitch link
    assert x_star(a100()) == Fraction(325, 15)
    degraded = degrade(a100(), Degradation(without=("nic:b0.nic3",)))
    assert x_star(degraded) == Fraction(300, 15)
    assert "b0.nic3" not in {node.name for node in degraded.nodes}
    assert degraded.ranks == a100().ranks


def test_a_gpu_that_is_down_leaves_the_collective_and_the_others_keep_their_order() -> None:
    fabric = a100()
    degraded = degrade(fabric, Degradation(without=("gpu:b0.gpu2",)))
    assert degraded.ranks == tuple(name for name in fabric.ranks if name != "b0.gpu2")
    # its NIC now has one neighbour (the IB switch): data entering it can only go back, so it is left out
    assert "b0.nic2" not in {node.name for node in degraded.nodes}
    # box 1's 8 GPUs reach box 0 through 7 NIC links of 25 GB/s: 4 odd NICs of box 1 into ib.odd, and
    # ib.even into box 0's 3 remaining even NICs
    assert x_star(degraded) == Fraction(7 * 25, 8)


def test_a_box_that_is_down_takes_all_its_nodes() -> None:
    degraded = degrade(a100(3), Degradation(without=("box:1",)))
    assert not any(node.box == 1 for node in degraded.nodes)
    assert degraded.num_gpus == 16
    assert degrade(a100(3), Degradation(without=("box:b1",))) == degraded


def test_a_link_is_taken_out_in_both_directions() -> None:
    degraded = degrade(a100(), Degradation(without=("link:b1.nvswitch-b1.gpu5",)))
    assert not any({link.src, link.dst} == {"b1.gpu5", "b1.nvswitch"} for link in degraded.links)
    # b1.gpu5 keeps its 25 GB/s NIC: 25 over the other 15 GPUs
    assert x_star(degraded) == Fraction(25, 15)


def test_derating_by_percentage_and_by_bandwidth() -> None:
    half = degrade(a100(), Degradation(derate=("link:b0.gpu0-b0.nvswitch=50%",)))
    assert x_star(half) == Fraction(150 + 25, 15)
    same = degrade(a100(), Degradation(derate=("link:b0.gpu0-b0.nvswitch=1200Gb/s",)))
    assert same == half


def _pair_fabric(directed: bool) -> Topology:
    """Two GPUs joined by parallel links of 30 and 10 GB/s (one-way pairs when ``directed``)."""
    links = [
        Link("g0", "g1", Fraction(30), directed=directed),
        Link("g0", "g1", Fraction(10), directed=directed),
    ]
    if directed:
        links += [Link("g1", "g0", Fraction(40), directed=True)]
    return Topology("pair", (Node("g0", "gpu"), Node("g1", "gpu")), tuple(links), ("g0", "g1"))


def test_a_bandwidth_derates_parallel_links_in_proportion_to_that_total() -> None:
    degraded = degrade(_pair_fabric(False), Degradation(derate=("link:g0-g1=20GB/s",)))
    assert sorted(link.bandwidth for link in degraded.links) == [5, 15]


def test_derating_is_refused_where_it_is_ambiguous_or_not_a_derating() -> None:
    for spec, message in [
        ("link:g0-g1=0%", "more than 0 %"),
        ("link:g0-g1=120%", "at most 100 %"),
        ("link:g0-g1=41GB/s", "not a derating"),
        ("link:g0-g1=fast", "'fast' is neither a percentage nor a bandwidth"),
        ("link:g0-g1", "not link:A-B=AMOUNT"),
        ("nic:g0=50%", "not link:A-B=AMOUNT"),
    ]:
        with pytest.raises(InputError, match=message):
            degrade(_pair_fabric(False), Degradation(derate=(spec,)))
    twice = ("link:g0-g1=50%", "link:g1-g0=25%")
    with pytest.raises(InputError, match="change the same link"):
        degrade(_pair_fabric(False), Degradation(derate=twice))


def test_a_bandwidth_for_an_asymmetric_pair_is_ambiguous() -> None:
    fabric = replace_links(_pair_fabric(True), [Link("g1", "g0", Fraction(10), directed=True)])
    with pytest.raises(InputError, match="ambiguous"):
        degrade(fabric, Degradation(derate=("link:g0-g1=5GB/s",)))


def replace_links(topology: Topology, extra: list[Link]) -> Topology:
    return Topology(topology.name, topology.nodes, (*topology.links, *extra), topology.ranks)


def test_unknown_names_get_the_close_matches() -> None:
    cases = [
        ("link:b0.gpu0-b0.nvswich", "no node is named 'b0.nvswich'", "b0.nvswitch"),
        ("nic:b0.nic9", "no nic is named 'b0.nic9'", "did you mean b0.nic"),
        ("nic:b0.gpu1", "b0.gpu1 is a gpu, not a nic", "--without gpu:b0.gpu1"),
        ("links:b0.gpu0-b0.nvswitch", "is not a part of the fabric", "did you mean link:"),
        ("box:7", "there is no box '7'", "boxes are 0-1"),
        ("link:b0.gpu0-b0.nic1", "no link joins b0.gpu0 and b0.nic1", "b0.nic0, b0.nvswitch"),
        ("b0.gpu0", "is not a part of the fabric", "write link:A-B"),
    ]
    for spec, message, hint in cases:
        with pytest.raises(InputError, match=message.replace(".", r"\.")) as caught:
            degrade(a100(), Degradation(without=(spec,)))
        assert hint in (caught.value.hint or ""), spec


def test_names_with_dashes_split_where_both_ends_are_nodes() -> None:
    nodes = (Node("a-1", "gpu"), Node("b", "gpu"), Node("a", "switch"), Node("1-b", "gpu"))
    links = (Link("a-1", "b", Fraction(1)), Link("a", "1-b", Fraction(1)), Link("a-1", "a", Fraction(1)))
    fabric = Topology("dashes", nodes, links, ("a-1", "b", "1-b"))
    with pytest.raises(InputError, match="reads as a - 1-b or a-1 - b"):
        degrade(fabric, Degradation(without=("link:a-1-b",)))


def test_cutting_the_fabric_apart_names_the_changes() -> None:
    changes = ("link:b0.gpu0-b0.nvswitch", "link:b0.gpu0-b0.nic0")
    with pytest.raises(
        InputError, match=r"after --without link:b0\.gpu0-b0\.nvswitch --without link:b0\.gpu0"
    ):
        degrade(a100(), Degradation(without=changes))
    with pytest.raises(InputError, match="1 GPU\\(s\\) remain"):
        degrade(a100(1), Degradation(without=tuple(f"gpu:b0.gpu{i}" for i in range(7))))


def test_a_selected_gpu_that_is_down_is_refused() -> None:
    with pytest.raises(InputError, match=r"--gpus selects b0\.gpu1, which --without box:0 takes out"):
        degrade(a100(), Degradation(without=("box:0",), gpus="b0.gpu1,b1.gpu1"))


def test_the_same_changes_give_the_same_topology() -> None:
    changes = Degradation(("nic:b1.nic0", "link:b0.gpu1-b0.nvswitch"), ("link:b0.gpu2-b0.nic2=50%",), "b1,b0")
    assert degrade(a100(), changes) == degrade(a100(), changes)
    assert changes.describe() == (
        "--without nic:b1.nic0 --without link:b0.gpu1-b0.nvswitch --derate link:b0.gpu2-b0.nic2=50% "
        "--gpus b1,b0"
    )
    assert changes.healthy() == Degradation(gpus="b1,b0") and not changes.healthy().damages
