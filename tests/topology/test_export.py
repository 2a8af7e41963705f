"""Flat/JSON export reads back to the same topology (hypothesis on random small topologies)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from collc.topology import parse_topology
from collc.topology.export import exact_number, to_dot, to_flat_yaml, to_json
from collc.topology.model import Link, Metadata, Node, Topology

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,5}(\.[a-z][a-z0-9]{0,3})?", fullmatch=True)
BANDWIDTHS = st.fractions(min_value=Fraction(1, 64), max_value=1000, max_denominator=1000)


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    names = draw(st.lists(NAMES, min_size=2, max_size=7, unique=True))
    gpu_count = draw(st.integers(min_value=1, max_value=len(names)))
    kinds = ["gpu"] * gpu_count + [draw(st.sampled_from(["switch", "nic"])) for _ in names[gpu_count:]]
    order = draw(st.permutations(range(len(names))))
    nodes = tuple(
        Node(
            names[i],
            kinds[i],  # type: ignore[arg-type]
            draw(st.none() | st.integers(0, 3)),
            draw(st.none() | st.sampled_from(["gpu0", "nic1", "sw"])),
        )
        for i in order
    )
    # a ring through every node keeps the GPUs connected; extra links are random
    ring = [Link(names[i], names[(i + 1) % len(names)], draw(BANDWIDTHS)) for i in range(len(names))]
    extra = draw(
        st.lists(
            st.builds(
                Link,
                st.sampled_from(names),
                st.sampled_from(names),
                BANDWIDTHS,
                st.none() | st.fractions(min_value=0, max_value=10, max_denominator=8),
                st.booleans(),
                st.none() | st.sampled_from(["nvlink", "ib", "pcie"]),
            ).filter(lambda link: link.src != link.dst),
            max_size=6,
        )
    )
    gpus = [node.name for node in nodes if node.kind == "gpu"]
    ranks = tuple(draw(st.permutations(gpus)))
    metadata = Metadata(
        gpu_model=draw(st.none() | st.sampled_from(["A100", "MI300X"])),
        sms_per_gpu=draw(st.none() | st.integers(1, 400)),
        runtime=draw(st.none() | st.sampled_from(["rccl", "msccl-executor"])),
        default_latency_us=draw(st.dictionaries(st.sampled_from(["nvlink", "ib"]), BANDWIDTHS, max_size=2)),
    )
    description = draw(st.sampled_from(["", "a: b, c", "plain text", "yes", "#hash"]))
    return Topology(draw(NAMES), nodes, tuple(ring + extra), ranks, description, metadata)


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
