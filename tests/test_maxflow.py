"""The max-flow wrapper against networkx on small random graphs."""

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.solver.maxflow import FlowNetwork

arc_lists = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(1, 20)).filter(lambda a: a[0] != a[1]),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(arc_lists)
def test_max_flow_and_cut_match_networkx(arcs):
    network = FlowNetwork(7, arcs)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(7))
    for u, v, c in arcs:
        previous = graph.get_edge_data(u, v, {"capacity": 0})["capacity"]
        graph.add_edge(u, v, capacity=previous + c)
    value = network.max_flow(0, 6)
    assert value == nx.maximum_flow_value(graph, 0, 6)
    inside = set(network.source_side())
    assert 0 in inside and 6 not in inside
    assert sum(c for u, v, c in arcs if u in inside and v not in inside) == value


def test_capacity_updates_are_seen_by_the_next_call():
    network = FlowNetwork(3, [(0, 1, 5), (1, 2, 5)])
    assert network.max_flow(0, 2) == 5
    network.set_capacity(1, 2)
    assert network.max_flow(0, 2) == 2
    extra = network.add_arc(0, 2, 4)
    assert network.max_flow(0, 2) == 6
    network.set_capacity(extra, 0)
    assert network.max_flow(0, 2) == 2
    assert network.calls == 4


@settings(max_examples=60, deadline=None)
@given(arc_lists, st.integers(0, 60))
def test_a_flow_up_to_a_limit_is_the_smaller_of_the_two_with_the_same_cut_below_it(arcs, limit):
    """max_flow_up_to: min(max flow, limit); below the limit, the uncapped flow's minimum cut (the
    packing reads its tight sets off that cut, the edge splitting its dangerous sets)."""
    uncapped, capped = FlowNetwork(7, arcs), FlowNetwork(7, arcs)
    value = uncapped.max_flow(0, 6)
    assert capped.max_flow_up_to(0, 6, limit) == min(value, limit)
    if value < limit:
        assert set(capped.source_side()) - {7} == set(uncapped.source_side())
    assert capped.max_flow(0, 6) == value  # the limit leaves the network's own flows alone
    assert capped.max_flow_up_to(0, 6, value + 5) == value  # the same limited source, a new limit
