"""The capacity graph: exact integer scaling and the mapping back to GB/s."""

from fractions import Fraction

from collc.capacity import capacity_graph, rational_gcd
from collc.topology import Link, Node, Topology


def _two_gpus_and_switch() -> Topology:
    nodes = (Node("gpu0", "gpu"), Node("gpu1", "gpu"), Node("nvs", "switch"))
    links = (
        Link("gpu0", "nvs", Fraction(300)),
        Link("gpu1", "nvs", Fraction(300)),
        Link("gpu0", "gpu1", Fraction(25), directed=True),
        Link("gpu0", "gpu1", Fraction(25, 2), directed=True),
    )
    return Topology("t", nodes, links, ranks=("gpu1", "gpu0"))


def test_rational_gcd_is_largest_common_measure():
    assert rational_gcd([Fraction(300), Fraction(25)]) == 25
    assert rational_gcd([Fraction(1, 2), Fraction(1, 3)]) == Fraction(1, 6)


def test_capacities_are_coprime_integers_that_map_back_exactly():
    graph = capacity_graph(_two_gpus_and_switch())
    assert graph.names[:2] == ("gpu1", "gpu0")  # GPUs first, in rank order
    assert graph.unit == Fraction(75, 2)  # 300 = 8 x 37.5
    caps = {(graph.names[u], graph.names[v]): c for u, v, c in graph.arcs}
    assert caps[("gpu0", "gpu1")] == 1  # parallel directed links add up: 37.5 GB/s
    assert ("gpu1", "gpu0") not in caps
    assert caps[("nvs", "gpu1")] == 8
    assert graph.to_gbps(caps[("gpu0", "nvs")]) == 300


def test_reversed_graph_turns_every_arc():
    graph = capacity_graph(_two_gpus_and_switch())
    back = graph.reversed()
    assert sorted((v, u, c) for u, v, c in graph.arcs) == list(back.arcs)
