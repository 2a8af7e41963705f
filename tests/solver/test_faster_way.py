"""Trees packed on the fabric with each link at its faster direction (collc.solver.faster_way): the
faster way, and the trees priced on the real fabric."""

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest

from collc.solver.faster_way import faster_way, priced_both_ways, priced_on
from collc.solver.pipeline import solve
from collc.topology.presets import load

ASYM_RING6 = Path(__file__).parent / "fixtures" / "asym-ring6-switch.yaml"  # ring links 80 one way, 40 back

PARALLEL = """\
name: parallel
nodes:
  - {name: g0, kind: gpu}
  - {name: g1, kind: gpu}
  - {name: g2, kind: gpu}
links:
  - {src: g0, dst: g1, bandwidth: 20}
  - {src: g0, dst: g1, bandwidth: 10, directed: true}
  - {src: g1, dst: g2, bandwidth: 15, directed: true}
  - {src: g2, dst: g1, bandwidth: 30, directed: true}
  - {src: g2, dst: g0, bandwidth: 5}
"""


def test_the_faster_way_joins_every_pair_both_ways_at_its_faster_direction(tmp_path: Path) -> None:
    """Parallel links add up before the faster direction is taken (g0 -> g1: 20 + 10 against 20
    back), whichever way is the faster (g2 -> g1); nodes and ranks stay, so trees packed there name
    the real fabric's nodes."""
    path = tmp_path / "parallel.yaml"
    path.write_text(PARALLEL)
    topology = load(path)
    faster = faster_way(topology)
    assert faster is not None
    assert faster.arc_bandwidths() == {
        ("g0", "g1"): 30,
        ("g1", "g0"): 30,
        ("g1", "g2"): 30,
        ("g2", "g1"): 30,
        ("g0", "g2"): 5,
        ("g2", "g0"): 5,
    }
    assert (faster.nodes, faster.ranks) == (topology.nodes, topology.ranks)


def test_a_fabric_with_an_arc_that_has_no_reverse_has_no_faster_way(tmp_path: Path) -> None:
    """A link one way only would be invented the other way: no faster way there."""
    path = tmp_path / "one-way.yaml"
    path.write_text(PARALLEL.replace("  - {src: g2, dst: g1, bandwidth: 30, directed: true}\n", ""))
    assert faster_way(load(path)) is None


def _busiest(forest, topology, *, backwards: bool) -> Fraction:
    """Oracle: unit trees per GB/s on the real fabric's busiest arc, counting every hop of every tree
    edge's path (read backwards for the reduce half)."""
    bandwidths = topology.arc_bandwidths()
    loads: dict[tuple[str, str], int] = {}
    for tree in forest.trees:
        for edge in tree.edges:
            for a, b in zip(edge.path, edge.path[1:], strict=False):
                arc = (b, a) if backwards else (a, b)
                loads[arc] = loads.get(arc, 0) + tree.multiplicity
    return max(Fraction(load) / bandwidths[arc] for arc, load in loads.items())


@pytest.mark.parametrize("k", [1, 2])
def test_trees_packed_on_the_faster_way_are_priced_by_each_halfs_busiest_real_arc(k: int) -> None:
    """The same trees for both halves, the reduce half read backwards, each with the U of its own
    busiest arc of the real fabric; on the ring fast one way both halves lose against the faster way
    (its slow direction carries trees both ways)."""
    topology = load(ASYM_RING6)
    faster = faster_way(topology)
    assert faster is not None
    packed = solve(faster, k=k).forest
    reversed_packed = dataclasses.replace(packed, reversed=True)
    forest, reduce_forest = priced_both_ways(packed, topology)
    assert forest.trees == reduce_forest.trees == packed.trees
    assert not forest.reversed and reduce_forest.reversed and forest.faster_way and reduce_forest.faster_way
    assert (forest, reduce_forest) == (priced_on(packed, topology), priced_on(reversed_packed, topology))
    assert forest.U == _busiest(packed, topology, backwards=False) > packed.U
    assert reduce_forest.U == _busiest(packed, topology, backwards=True) > packed.U
