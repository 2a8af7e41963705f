"""The ring and tree baselines under the threadblock copy rate: NCCL's channel counts keep it from
binding on every shipped preset, and it binds where a rail is faster than two threadblocks."""

from __future__ import annotations

from fractions import Fraction

import pytest

from collc.predict import baselines
from collc.predict.baselines import CHANNELS_PER_RAIL, ring_baseline, tree_baseline
from collc.predict.network import Network
from collc.predict.params import THREADBLOCK_COPY_GBPS
from collc.topology import load
from collc.topology.model import Link, Node, Topology

SHIPPED = [
    *(
        (name, boxes)
        for name in ("dgx-a100", "dgx-h100", "dgx-h100-rail", "dgx-h200", "mi300x")
        for boxes in (1, 4)
    ),
    ("mi250", 2),
    ("dgx1", 4),
]


def _uncapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baselines, "_THREADBLOCK", Fraction(10**9))


@pytest.mark.parametrize(("name", "boxes"), SHIPPED)
def test_the_copy_rate_does_not_bind_on_shipped_presets(
    name: str, boxes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = Network.of(load(name, {"boxes": str(boxes)}))
    capped = (ring_baseline(network).busbw, tree_baseline(network).algbw_value)
    _uncapped(monkeypatch)
    assert capped == (ring_baseline(network).busbw, tree_baseline(network).algbw_value)


def test_gb200_nvl72_rings_stay_below_32_channels() -> None:
    assert ring_baseline(Network.of(load("gb200-nvl72", {}))).busbw == 900


def _fat_rails(rail_gbps: int) -> Network:
    """Two boxes of two GPUs on an NVSwitch (600 GB/s ports), one NIC rail of ``rail_gbps`` per GPU."""
    nodes: list[Node] = [Node("net", "switch")]
    links: list[Link] = []
    for box in range(2):
        nodes.append(Node(f"b{box}.sw", "switch", box, "sw"))
        for gpu in range(2):
            name, nic = f"b{box}.gpu{gpu}", f"b{box}.nic{gpu}"
            nodes += [Node(name, "gpu", box, f"gpu{gpu}"), Node(nic, "nic", box, f"nic{gpu}")]
            links += [
                Link(name, f"b{box}.sw", Fraction(600)),
                Link(name, nic, Fraction(rail_gbps)),
                Link(nic, "net", Fraction(rail_gbps)),
            ]
    ranks = tuple(f"b{box}.gpu{gpu}" for box in range(2) for gpu in range(2))
    return Network.of(Topology("fat-rails", tuple(nodes), tuple(links), ranks))


def test_a_rail_faster_than_its_channels_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """400 GB/s rails: two channels per rail copy 97 GB/s, so the rings get 2 rails × 97."""
    network = _fat_rails(400)
    per_rail = CHANNELS_PER_RAIL * Fraction(THREADBLOCK_COPY_GBPS)
    assert ring_baseline(network).busbw == 2 * per_rail
    assert tree_baseline(network).algbw_value == 2 * per_rail / 2
    _uncapped(monkeypatch)
    assert ring_baseline(network).busbw == 2 * 300  # the switch share: 600 per GPU over 2 rails
