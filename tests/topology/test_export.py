"""Flat/JSON export reads back to the same topology (hypothesis on random small topologies)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings

from collc.topology import parse_topology
from collc.topology.export import exact_number, to_dot, to_flat_yaml, to_json
from collc.topology.model import Link, Node, Topology

from .strategies import topologies


def same(a: Topology, b: Topology) -> bool:
    fields = ("name", "description", "nodes", "links", "ranks", "metadata")
    return all(getattr(a, field) == getattr(b, field) for field in fields)


@settings(max_examples=60, deadline=None)
@given(topologies())
def test_flat_and_json_round_trip(topology: Topology) -> None:
    for text in (to_flat_yaml(topology), to_json(topology)):
        again, _warnings = parse_topology(text, "export.yaml")
        assert same(again, topology), text
    assert to_flat_yaml(topology) == to_flat_yaml(parse_topology(to_flat_yaml(topology), "x")[0])


def test_exact_numbers() -> None:
    assert exact_number(Fraction(300)) == 300
    assert exact_number(Fraction(25, 2)) == 12.5
    assert exact_number(Fraction(1, 3)) == "1/3"


def test_flat_form_omits_ranks_in_list_order_and_writes_them_otherwise() -> None:
    nodes = (Node("a", "gpu"), Node("b", "gpu"))
    links = (Link("a", "b", Fraction(1)),)
    in_order = to_flat_yaml(Topology("t", nodes, links, ("a", "b")))
    assert "rank" not in in_order
    swapped = to_flat_yaml(Topology("t", nodes, links, ("b", "a")))
    assert "  - {name: a, kind: gpu, rank: 1}" in swapped


def test_dot_marks_directed_links() -> None:
    nodes = (Node("a", "gpu"), Node("b", "gpu"))
    links = (Link("a", "b", Fraction(1), directed=True), Link("b", "a", Fraction(3, 2)))
    dot = to_dot(Topology("t", nodes, links, ("a", "b")))
    assert '"a" -> "b" [label="1 GB/s"];' in dot
    assert '"b" -> "a" [label="1.5 GB/s", dir=both];' in dot
