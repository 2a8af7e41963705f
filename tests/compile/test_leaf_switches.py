"""Leaf switches that each take all the NICs of their box are no network planes
(collc.lowering.plan.network_planes): a connection into a box enters through the receiver's own NIC,
as the runtime routes it, and the search may pack trees on the runtime's paths."""

from pathlib import Path

from collc.compile import CompileOptions, compile_schedule
from collc.topology.presets import load

LEAF_PER_BOX = Path(__file__).parent / "fixtures" / "leaf-per-box-2x4.yaml"
GIB = 1 << 30


def test_an_allgather_under_a_leaf_per_box_reaches_the_bound() -> None:
    """Box b's four GPUs share two NICs on a PCIe switch. Taken for planes, the leaves sent every
    connection into box b through its NIC first by name: the file was predicted at 19.9 of a 36.6
    GB/s bound at 1 GiB (it runs at 33.1 through the receivers' own NICs), and the search tried no
    trees on the runtime's paths. The file compiled now reaches 35.3."""
    result = compile_schedule(load(LEAF_PER_BOX), CompileOptions(coll="allgather", force=True))
    at_gib = next(row for row in result.predicted if row.nbytes == GIB)
    assert at_gib.algbw >= 0.95 * float(result.bound_algbw)
