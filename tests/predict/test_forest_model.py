from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.predict.forest_model import ForestCost, arc_utilisation, forest_arc_loads
from collc.predict.network import Network
from collc.predict.params import PROTOCOLS
from collc.solver.forest import Forest, Tree, TreeEdge
from collc.topology.model import Link, Node, Topology

from .models import model

SIMPLE = PROTOCOLS["Simple"]
COLLECTIVES = ("allgather", "reducescatter", "allreduce")
GiB = 2**30


def _star_box(num_gpus: int, bandwidth: int) -> tuple[Topology, Forest]:
    """One switch box and its optimal forest: every root sends straight to every other GPU."""
    gpus = [f"g{i}" for i in range(num_gpus)]
    nodes = (*tuple(Node(name, "gpu", 0, name) for name in gpus), Node("sw", "switch", 0, "sw"))
    links = tuple(Link(name, "sw", Fraction(bandwidth), link_class="nvlink") for name in gpus)
    topology = Topology("star", nodes, links, tuple(gpus))
    trees = tuple(
        Tree(r, 1, tuple(TreeEdge(r, d, (gpus[r], "sw", gpus[d])) for d in range(num_gpus) if d != r))
        for r in range(num_gpus)
    )
    return topology, Forest(num_gpus, 1, Fraction(num_gpus - 1, bandwidth), trees)


def test_loads_and_utilisation_of_a_star_forest_are_exact() -> None:
    topology, forest = _star_box(4, 100)
    loads = forest_arc_loads(forest)
    assert loads[("g0", "sw")] == 3 and loads[("sw", "g0")] == 3
    assert set(arc_utilisation(loads, Network.of(topology)).values()) == {1}


def test_star_forest_algbw_is_the_allgather_optimum() -> None:
    topology, forest = _star_box(8, 300)
    cost = ForestCost(Network.of(topology), forest)
    assert cost.algbw("allgather") == Fraction(2400, 7)
    assert cost.algbw("allreduce") == Fraction(1200, 7)


def test_time_is_launch_plus_steady_state_plus_the_last_hops_latency_on_a_star() -> None:
    """The last slice leaves the busiest arc, then only the hop's latency and step overhead remain."""
    topology, forest = _star_box(4, 100)
    cost = ForestCost(Network.of(topology), forest)
    size = 2**30
    steady = size / (4 * 100 / 3) / 1000
    assert cost.time_us("allgather", size, SIMPLE) == pytest.approx(
        5.0 + steady + 0.7 + SIMPLE.step_overhead_us
    )


def test_a_tiny_message_pays_the_whole_chain() -> None:
    """Below one slice per tree the chain term dominates: latency, overhead and the slice per hop."""
    topology, forest = _star_box(4, 100)
    cost = ForestCost(Network.of(topology), forest)
    per_tree = 4096 / 4
    hop = 0.7 + SIMPLE.step_overhead_us + per_tree / 100 / 1000
    steady = 3 * per_tree / 100 / 1000  # each arc carries 3 unit trees
    assert cost.time_us("allgather", 4096, SIMPLE) == pytest.approx(
        5.0 + max(hop, steady + hop - per_tree / 100 / 1000)
    )


def test_protocol_efficiency_scales_the_steady_state() -> None:
    topology, forest = _star_box(4, 100)
    cost = ForestCost(Network.of(topology), forest)
    simple = cost.time_us("allgather", 2**34, SIMPLE)
    ll = cost.time_us("allgather", 2**34, PROTOCOLS["LL"])
    assert ll / simple == pytest.approx(2.0, rel=0.01)


@pytest.mark.parametrize(
    ("name", "boxes"),
    [
        ("dgx-a100", 1),
        ("mi250", 1),
        ("dgx-h100-rail", 1),
        ("dgx-a100", 2),
        ("dgx-a100", 4),
        ("mi250", 2),
        ("dgx-h100-rail", 4),
        ("dgx-h100", 4),
        ("dgx-h200", 4),
        ("mi300x", 1),
        ("mi300x", 4),
        ("dgx1", 1),
        ("dgx1", 4),
    ],
)
def test_forest_model_converges_to_the_bound(name: str, boxes: int) -> None:
    """At 1 GiB the forest model is within 2 % of the bound on every preset up to 32 GPUs."""
    m = model(name, boxes)
    for collective in COLLECTIVES:
        algbw = GiB / m.forest_cost.time_us(collective, GiB, SIMPLE) / 1000
        bound = float(m.bound_algbw(collective))
        assert algbw <= bound
        assert algbw >= 0.98 * bound, (collective, algbw, bound)


@settings(max_examples=60, deadline=None)
@given(
    preset=st.sampled_from([("dgx-a100", 2), ("mi250", 1), ("dgx-h100-rail", 4)]),
    collective=st.sampled_from(COLLECTIVES),
    proto=st.sampled_from(sorted(PROTOCOLS)),
    size=st.integers(min_value=1, max_value=2**36),
    factor=st.integers(min_value=2, max_value=64),
)
def test_predictions_grow_with_size_and_never_beat_the_bound(preset, collective, proto, size, factor) -> None:
    m = model(*preset)
    chosen = PROTOCOLS[proto]
    small, large = (m.forest_cost.time_us(collective, s, chosen) for s in (size, size * factor))
    assert small <= large
    bound = float(m.bound_algbw(collective))
    for predictor in (m.forest_cost, m.ring):
        assert size / predictor.time_us(collective, size, chosen) / 1000 <= bound
