"""The runtime's paths between GPUs as the event simulation routes them (collc.predict.network)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from collc.predict.network import Network
from collc.topology import load
from collc.topology.model import Link, Node, Topology

SHARED_PCIE = Path(__file__).resolve().parents[1] / "solver" / "fixtures" / "shared-pcie-nics-x2.yaml"


def _network(links: list[tuple[str, str, int]]) -> Network:
    names = sorted({name for src, dst, _ in links for name in (src, dst)})
    gpus = tuple(name for name in names if name.startswith("g"))
    nodes = tuple(Node(name, "gpu" if name in gpus else "switch", 0, name) for name in names)
    wires = tuple(Link(src, dst, Fraction(bw), latency_us=Fraction(0)) for src, dst, bw in links)
    return Network.of(Topology("t", nodes, wires, gpus))


def test_two_gpus_on_an_nvswitch_and_a_shared_pcie_switch_talk_over_the_nvswitch() -> None:
    """Both are two hops, and the PCIe switch's name sorts first: hop count alone took PCIe."""
    network = Network.of(load(str(SHARED_PCIE), {}))
    assert network.path("n0-gpu0", "n0-gpu1") == ("n0-gpu0", "n0-nvswitch", "n0-gpu1")
    assert network.path("n0-gpu0", "n1-gpu1") == (
        "n0-gpu0",
        *("n0-a-pcie0", "n0-efa0", "fabric", "n1-efa0", "n1-a-pcie0"),
        "n1-gpu1",
    )


def test_the_widest_path_wins_over_a_shorter_narrow_one_and_hops_break_ties() -> None:
    links = [("g0", "g1", 10), ("g0", "sa", 100), ("sa", "sb", 100), ("sb", "g1", 100), ("g0", "sc", 100)]
    network = _network([*links, ("sc", "g1", 50)])
    assert network.path("g0", "g1") == ("g0", "sa", "sb", "g1")  # 100 over 3 hops, not 10 or 50
    even = _network(
        [("g0", "sa", 100), ("sa", "sb", 100), ("sb", "g1", 100), ("g0", "sc", 100), ("sc", "g1", 100)]
    )
    assert even.path("g0", "g1") == ("g0", "sc", "g1")  # equally wide: the fewer hops


def test_gpus_forward_only_where_no_switch_path_exists() -> None:
    network = _network([("g0", "g1", 100), ("g1", "g2", 100), ("g0", "sw", 5), ("sw", "g2", 5)])
    assert network.path("g0", "g2") == ("g0", "sw", "g2")
    line = _network([("g0", "g1", 100), ("g1", "g2", 100)])
    assert line.path("g0", "g2") == ("g0", "g1", "g2")


def test_gpus_of_one_box_stay_inside_it_even_where_the_network_is_wider() -> None:
    """Two PCIe switches joined by a 20 GB/s CPU link, each with a GPU and a 24 GB/s NIC on one IB
    switch: the network path is wider, but NCCL joins GPUs of one box inside it."""
    inside = ("g0", "g1", "plx0", "plx1", "cpu", "nic0", "nic1")
    nodes = (*(Node(n, "gpu" if n[0] == "g" else "switch", 0, n) for n in inside), Node("ib", "switch"))
    wires = [("g0", "plx0", 24), ("g1", "plx1", 24), ("plx0", "cpu", 20), ("plx1", "cpu", 20)]
    wires += [("plx0", "nic0", 24), ("plx1", "nic1", 24), ("nic0", "ib", 25), ("nic1", "ib", 25)]
    links = tuple(Link(a, b, Fraction(bw), latency_us=Fraction(0)) for a, b, bw in wires)
    network = Network.of(Topology("t", nodes, links, ("g0", "g1")))
    assert network.path("g0", "g1") == ("g0", "plx0", "cpu", "plx1", "g1")


TWO_NICS = Path(__file__).resolve().parent / "fixtures" / "two-nics-per-switch-x2.yaml"


def test_gpus_that_share_two_nics_take_one_each_as_the_runtime_does() -> None:
    """Four GPUs on a PCIe switch with two NICs: NCCL's ncclTopoGetLocalNet starts from the device
    index, bit-mirrored over the two NICs, and moves by channel only where NICs outnumber the GPUs
    sharing them, so GPUs 0 and 2 take the first NIC and 1 and 3 the second, on every channel."""
    network = Network.of(load(str(TWO_NICS), {}))
    assert network.local_nics("p0-g0") == ("p0-nic-a", "p0-nic-b")
    for channel in range(4):
        taken = [network.nic_for(f"p1-g{gpu}", channel) for gpu in range(4)]
        assert taken == ["p1-nic-a", "p1-nic-b", "p1-nic-a", "p1-nic-b"]


def test_a_gpu_with_more_nics_than_sharers_spreads_its_channels() -> None:
    """One GPU with four NICs of its own: every channel moves to the next NIC (mirrored start 0)."""
    names = ["g0", "sw", "n0", "n1", "n2", "n3", "net", "h0", "m0"]
    kinds = {"g0": "gpu", "h0": "gpu", "n0": "nic", "n1": "nic", "n2": "nic", "n3": "nic", "m0": "nic"}
    boxes = {"h0": 1, "m0": 1, "net": None}
    nodes = tuple(Node(name, kinds.get(name, "switch"), boxes.get(name, 0), name) for name in names)
    links = [("g0", "sw"), *(("sw", f"n{i}") for i in range(4)), *((f"n{i}", "net") for i in range(4))]
    links += [("h0", "m0"), ("m0", "net")]
    wires = tuple(Link(a, b, Fraction(10)) for a, b in links)
    network = Network.of(Topology("t", nodes, wires, ("g0", "h0")))
    assert [network.nic_for("g0", channel) for channel in range(5)] == ["n0", "n1", "n2", "n3", "n0"]
    assert network.nic_for("h0", 3) == "m0"


TWO_SPINES = Path(__file__).resolve().parent / "fixtures" / "two-spines.yaml"


def test_connections_between_leaves_spread_over_the_spines_by_load() -> None:
    """Two equal connections between the same leaves take different spines (the first by name took
    one spine for both); a pinned node stays; a path inside a box has nothing to spread."""
    network = Network.of(load(str(TWO_SPINES), {}))
    path = network.path("h0-gpu0", "h2-gpu0")
    assert path[2:5] == ("leaf0", "spine-a", "leaf1")
    spread: dict[tuple[str, str], float] = {}
    first = network.spread(path, spread, 2.0)
    second = network.spread(network.path("h0-gpu1", "h2-gpu1"), spread, 2.0)
    assert {first[3], second[3]} == {"spine-a", "spine-b"}
    assert spread[("leaf0", "spine-a")] == spread[("leaf0", "spine-b")] == 2.0
    assert network.spread(path, spread, 1.0, pinned=frozenset({"spine-a"}))[3] == "spine-a"
    inside = network.path("h0-gpu0", "h0-gpu1")
    assert network.spread(inside, spread, 1.0) == inside


def test_a_nic_without_links_is_no_gpus_local_nic() -> None:
    """Loading only warns about a NIC without links; choosing a GPU's NIC must not ask for a path to
    it (that made the whole compile fail with "no path")."""
    nodes = (
        Node("a", "gpu", 0, "gpu0"),
        Node("b", "gpu", 1, "gpu0"),
        Node("na", "nic", 0, "nic0"),
        Node("nx", "nic", 0, "nic1"),
        Node("nb", "nic", 1, "nic0"),
        Node("s", "switch", None, None),
    )
    links = (Link("a", "na", Fraction(50)), Link("na", "s", Fraction(25)))
    links += (Link("b", "nb", Fraction(50)), Link("nb", "s", Fraction(25)))
    network = Network.of(Topology("t", nodes, links, ("a", "b")))
    assert network.local_nics("a") == ("na",)
    assert network.nic_for("a", 3) == "na"
