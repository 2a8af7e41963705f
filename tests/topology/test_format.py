"""The topology format: units, expressions, selectors, templates, parameters, rank order."""

from __future__ import annotations

from fractions import Fraction

import pytest

from collc.errors import InputError
from collc.topology import parse_topology
from collc.topology.expr import ExpressionError, evaluate, names_in
from collc.topology.model import Topology
from collc.topology.selectors import select
from collc.topology.summary import format_gbps
from collc.topology.units import parse_bandwidth, parse_latency


def parse(text: str, **overrides: str) -> Topology:
    topology, warnings = parse_topology(text, "test.yaml", overrides)
    assert warnings == []
    return topology


@pytest.mark.parametrize(
    ("value", "gbps"),
    [
        (25, Fraction(25)),
        (Fraction("12.5"), Fraction(25, 2)),
        ("25 GB/s", Fraction(25)),
        ("25GBps", Fraction(25)),
        ("200 Gb/s", Fraction(25)),
        ("400Gbps", Fraction(50)),
        ("1.6 Tb/s", Fraction(200)),
        ("1.8 TB/s", Fraction(1800)),
        ("800 MB/s", Fraction(4, 5)),
        ("1/3", Fraction(1, 3)),
        ("n * 50", Fraction(200)),
        ("n * 400 Gb/s", Fraction(200)),
    ],
)
def test_bandwidth_values_and_units(value: object, gbps: Fraction) -> None:
    assert parse_bandwidth(value, {"n": Fraction(4)}) == gbps


@pytest.mark.parametrize("value", [True, None, "fast", "25 GiB/s", "n > 1"])
def test_bandwidth_rejects(value: object) -> None:
    with pytest.raises(ExpressionError):
        parse_bandwidth(value, {"n": Fraction(4)})


@pytest.mark.parametrize(
    ("value", "microseconds"),
    [
        (3, Fraction(3)),
        ("500 ns", Fraction(1, 2)),
        ("2 us", Fraction(2)),
        ("2µs", Fraction(2)),
        ("1 ms", 1000),
    ],
)
def test_latency_units(value: object, microseconds: Fraction) -> None:
    assert parse_latency(value, {}) == microseconds


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1 + 2 * 3", Fraction(7)),
        ("7 // 2", Fraction(3)),
        ("7 / 2", Fraction(7, 2)),
        ("-7 % 3", Fraction(2)),
        ("2 ** 10", Fraction(1024)),
        ("min(b, 3) * max(1, 2)", Fraction(4)),
        ("b if b > 1 else 0", Fraction(2)),
        ("1 < b <= 2", True),
        ("b > 1 and not b == 2", False),
        ("b == 1 or b == 2", True),
        ("0.1 + 0.2", Fraction(3, 10)),
    ],
)
def test_expressions_are_exact(text: str, value: object) -> None:
    assert evaluate(text, {"b": Fraction(2)}) == value


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "2 ** 65",
        "2 ** (1/2)",
        "b.real",
        "(lambda: 1)()",
        "'text'",
        "[1][0]",
        "abs(b)",
        "2 ** 0.5",
        "1 +",
        "c",
    ],
)
def test_expressions_outside_the_language_are_rejected(text: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(text, {"b": Fraction(2)})


def test_division_by_zero_is_an_expression_error() -> None:
    with pytest.raises(ExpressionError, match="division by zero"):
        evaluate("1 / (b - 2)", {"b": Fraction(2)})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1e400", "number '1e400' is too large (out of range)"),
        ("b * 2.5E+999", "number '2.5E+999' is too large (out of range)"),
        ("1e-400 + b", "number '1e-400' is too small (out of range: it would read as 0)"),
    ],
)
def test_a_number_beyond_the_float_range_is_quoted_as_written(text: str, message: str) -> None:
    """Python reads 1e400 as inf ("number inf is not finite") and 1e-400 as 0 (a zero never written)."""
    with pytest.raises(ExpressionError) as caught:
        evaluate(text, {"b": Fraction(2)})
    assert str(caught.value) == message


def test_zero_and_ordinary_literals_in_exponent_form_read_exactly() -> None:
    assert evaluate("0.0e-400 + 1.5e2", {}) == 150 and evaluate("1e-3", {}) == Fraction(1, 1000)


def test_names_in() -> None:
    assert names_in("min(boxes, k // 8) * x") == {"boxes", "k", "x"}


NAMES = ["b0.gpu0", "b0.gpu1", "b0.nic0", "b1.gpu0", "b1.gpu1", "rail0", "rail1", "b0.gpu0.extra"]


def test_selector_captures_substitutes_and_wildcards() -> None:
    index = set(NAMES)
    captured = select("b{b}.gpu{i}", {}, NAMES, index)
    assert [name for name, _ in captured] == ["b0.gpu0", "b0.gpu1", "b1.gpu0", "b1.gpu1"]
    assert captured[3][1] == {"b": 1, "i": 1}
    assert select("rail{i % 2}", {"i": Fraction(3)}, NAMES, index) == [("rail1", {"i": 3})]
    assert [name for name, _ in select("b{x}.gpu{x}", {}, NAMES, index)] == ["b0.gpu0", "b1.gpu1"]
    assert [name for name, _ in select("*.gpu0", {}, NAMES, index)] == ["b0.gpu0", "b1.gpu0"]
    assert select("rail7", {}, NAMES, index) == []


TWO_GPUS = """
nodes:
  - {name: a, kind: gpu}
  - {name: b, kind: gpu}
links:
"""


def test_directed_and_parallel_links() -> None:
    topology = parse(
        TWO_GPUS
        + """
  - {src: a, dst: b, bandwidth: 10}
  - {src: a, dst: b, bandwidth: 5, directed: true, count: 2}
"""
    )
    assert topology.arc_bandwidths() == {("a", "b"): Fraction(20), ("b", "a"): Fraction(10)}
    assert len(topology.links) == 3


def test_link_fields_and_metadata() -> None:
    topology = parse(
        """
name: tiny
description: two GPUs
metadata: {gpu_model: A100, sms_per_gpu: 108, runtime: msccl-executor, default_latency_us: {nvlink: 0.7}}
"""
        + TWO_GPUS
        + "  - {src: a, dst: b, bandwidth: 300, latency: 500 ns, class: nvlink}\n"
    )
    (link,) = topology.links
    assert (link.latency_us, link.link_class, link.directed) == (Fraction(1, 2), "nvlink", False)
    assert topology.metadata.default_latency_us == {"nvlink": Fraction(7, 10)}
    assert (topology.name, topology.description, topology.metadata.gpu_model) == ("tiny", "two GPUs", "A100")


TEMPLATED = """
parameters:
  boxes: 3
  fast: {default: 1.5, description: a rational parameter}
templates:
  pair:
    nodes:
      - {name: gpu, kind: gpu, count: 2}
      - {name: sw, kind: switch}
    links:
      - {src: "gpu{i}", dst: sw, bandwidth: 100 * fast}
boxes:
  - {template: pair, count: boxes}
  - {template: pair, name: extra, when: boxes > 2}
nodes:
  - {name: core, kind: switch}
links:
  - {src: "*.sw", dst: core, bandwidth: 10}
"""


def test_templates_boxes_roles_and_default_rank_order() -> None:
    topology = parse(TEMPLATED)
    assert topology.ranks == (
        "b0.gpu0",
        "b0.gpu1",
        "b1.gpu0",
        "b1.gpu1",
        "b2.gpu0",
        "b2.gpu1",
        "extra0.gpu0",
        "extra0.gpu1",
    )
    extra = topology.node("extra0.gpu1")
    assert (extra.box, extra.role, extra.kind) == (3, "gpu1", "gpu")
    assert topology.node("core").box is None
    assert topology.arc_bandwidths()[("b1.gpu0", "b1.sw")] == Fraction(150)
    assert topology.arc_bandwidths()[("extra0.sw", "core")] == Fraction(10)


def test_parameters_are_set_and_checked() -> None:
    topology = parse(TEMPLATED, boxes="2", fast="0.5")
    assert topology.num_gpus == 4
    assert topology.arc_bandwidths()[("b0.gpu0", "b0.sw")] == Fraction(50)
    with pytest.raises(InputError, match="must be a whole number"):
        parse(TEMPLATED, boxes="2.5")
    with pytest.raises(InputError, match="'count' must be a whole number from 0 to 32768") as caught:
        parse(TEMPLATED, boxes="100000")  # the file's count, the user's value: the hint names it
    assert caught.value.hint == "boxes comes from --set boxes=100000"
    with pytest.raises(InputError, match="must be a number"):
        parse(TEMPLATED, boxes="two")
    with pytest.raises(InputError, match="unknown parameter 'box'") as caught:
        parse(TEMPLATED, box="2")
    assert "boxes (default 3)" in (caught.value.hint or "")


def test_where_filters_matches_and_when_drops_entries() -> None:
    topology = parse(
        """
parameters: {n: 4}
nodes:
  - {name: gpu, kind: gpu, count: n}
  - {name: even, kind: switch}
  - {name: odd, kind: switch}
  - {name: unused, kind: switch, when: n > 10}
links:
  - {src: "gpu{i}", dst: even, bandwidth: 1, where: i % 2 == 0}
  - {src: "gpu{i}", dst: odd, bandwidth: 1, where: i % 2 == 1}
  - {src: even, dst: odd, bandwidth: 1}
  - {src: even, dst: nowhere, bandwidth: 1, when: n > 10}
"""
    )
    assert {node.name for node in topology.nodes} == {"gpu0", "gpu1", "gpu2", "gpu3", "even", "odd"}
    assert sorted(
        (link.src, link.dst) for link in topology.links if link.dst != "odd" or link.src != "even"
    ) == [
        ("gpu0", "even"),
        ("gpu1", "odd"),
        ("gpu2", "even"),
        ("gpu3", "odd"),
    ]


def test_mesh_and_matrix_rules() -> None:
    mesh = parse(
        """
nodes: [{name: gpu, kind: gpu, count: 4}]
links: [{src: "gpu{i}", dst: "gpu{j}", bandwidth: 64, where: i < j}]
"""
    )
    assert len(mesh.links) == 6
    matrix = parse(
        """
nodes: [{name: gpu, kind: gpu, count: 3}]
links:
  - {nodes: "gpu{i}", bandwidth: 50, matrix: [[0, 2, 0], [2, 0, 1], [0, 1, 0]]}
"""
    )
    assert matrix.arc_bandwidths() == {
        ("gpu0", "gpu1"): 100,
        ("gpu1", "gpu0"): 100,
        ("gpu1", "gpu2"): 50,
        ("gpu2", "gpu1"): 50,
    }


RING = """
nodes:
  - {name: gpu, kind: gpu, count: 4}
  - {name: sw, kind: switch}
links:
  - {src: "gpu{i}", dst: sw, bandwidth: 10}
"""


def test_rank_order_overrides() -> None:
    assert parse(RING + "ranks: [gpu3, gpu1, gpu0, gpu2]\n").ranks == ("gpu3", "gpu1", "gpu0", "gpu2")


def test_rank_selector_lists_each_gpu_once() -> None:
    with pytest.raises(InputError, match="listed twice"):
        parse(RING + "ranks: [gpu2, 'gpu{i}']\n")
    assert parse(RING + "ranks: ['gpu{i}']\n").ranks == ("gpu0", "gpu1", "gpu2", "gpu3")


def test_flat_form_with_explicit_ranks() -> None:
    topology = parse(
        """
nodes:
  - {name: x, kind: gpu, rank: 1}
  - {name: y, kind: gpu, rank: 0}
links:
  - {src: x, dst: y, bandwidth: 25}
"""
    )
    assert topology.ranks == ("y", "x")


def test_issue_example_flat_file() -> None:
    topology = parse(
        """
nodes:
  - {name: gpu0, kind: gpu}
  - {name: gpu1, kind: gpu}
  - {name: nvs, kind: switch}
links:
  - {src: gpu0, dst: nvs, bandwidth: 300}
  - {src: gpu1, dst: nvs, bandwidth: 300}
  - {src: gpu0, dst: gpu1, bandwidth: 25, directed: true}
"""
    )
    assert topology.ranks == ("gpu0", "gpu1")
    assert topology.arc_bandwidths()[("gpu0", "gpu1")] == 25
    assert ("gpu1", "gpu0") not in topology.arc_bandwidths()
    assert topology.name == "topology"


def test_format_gbps() -> None:
    assert [format_gbps(Fraction(v)) for v in ("325", "12.5", "0.125", "2400/7")] == [
        "325",
        "12.5",
        "0.125",
        "342.857",
    ]


def test_yaml_merge_keys_and_explicit_overrides() -> None:
    topology = parse(
        """
nodes:
  - &gpu {name: gpu0, kind: gpu}
  - {<<: *gpu, name: gpu1}
links:
  - &nvlink {src: gpu0, dst: gpu1, bandwidth: 25, class: nvlink}
  - {<<: *nvlink, bandwidth: 50}
"""
    )
    assert [node.name for node in topology.nodes] == ["gpu0", "gpu1"]
    assert [(link.bandwidth, link.link_class) for link in topology.links] == [(25, "nvlink"), (50, "nvlink")]


def test_counts_are_bounded() -> None:
    with pytest.raises(InputError, match="'count' must be a whole number from 0 to 32768, got 10000000"):
        parse("nodes: [{name: gpu, kind: gpu, count: 10 ** 7}]\n")


@pytest.mark.parametrize(("boxes", "gpus"), [(1, 1), (1, 3), (2, 2), (3, 4), (5, 2)])
def test_template_expansion_matches_hand_built_graph(boxes: int, gpus: int) -> None:
    topology = parse(
        TEMPLATE_SWEEP,
        boxes=str(boxes),
        gpus=str(gpus),
    )
    expected: dict[tuple[str, str], Fraction] = {}
    for b in range(boxes):
        for i in range(gpus):
            for a, z, bandwidth in ((f"b{b}.gpu{i}", f"b{b}.sw", 100), (f"b{b}.gpu{i}", f"rail{i}", 25)):
                expected[(a, z)] = expected[(z, a)] = Fraction(bandwidth)
    assert topology.arc_bandwidths() == expected
    assert topology.ranks == tuple(f"b{b}.gpu{i}" for b in range(boxes) for i in range(gpus))


TEMPLATE_SWEEP = """
parameters: {boxes: 1, gpus: 1}
templates:
  box:
    nodes:
      - {name: gpu, kind: gpu, count: gpus}
      - {name: sw, kind: switch}
    links:
      - {src: "gpu{i}", dst: sw, bandwidth: 100}
boxes:
  - {template: box, count: boxes}
nodes:
  - {name: rail, kind: switch, count: gpus}
links:
  - {src: "b{b}.gpu{i}", dst: "rail{i}", bandwidth: 25}
"""
