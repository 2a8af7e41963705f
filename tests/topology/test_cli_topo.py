"""`collc topo list|show|validate|export` through the real CLI group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.topology import list_presets, load, parse_topology

BAD = Path(__file__).parent / "bad"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_shows_every_preset_with_its_description() -> None:
    code, out, _ = run("topo", "list")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(list_presets())
    for line, (name, description) in zip(lines, list_presets(), strict=True):
        assert line.startswith(name) and line.endswith(description)


def test_show_dgx_a100_two_boxes() -> None:
    code, out, _ = run("topo", "show", "dgx-a100", "--set", "boxes=2")
    assert code == 0
    assert "nodes: 16 GPU(s), 4 switch(es), 16 NIC(s)" in out
    assert "per-GPU egress: 325 GB/s" in out
    assert "per-GPU ingress: 325 GB/s" in out
    assert "parameters: boxes=2 (default 1)" in out
    assert "  0-7          b0.gpu0 .. b0.gpu7" in out
    assert "  8-15         b1.gpu0 .. b1.gpu7" in out
    assert "  nvlink         16 links  300 GB/s each, 4800 GB/s total" in out


def test_show_json() -> None:
    code, out, _ = run("topo", "show", "dgx-a100", "--set", "boxes=2", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["nodes"] == {"gpu": 16, "switch": 4, "nic": 16}
    assert document["per_gpu_egress_gbps"] == {"min": 325, "max": 325}
    assert document["parameters"]["boxes"]["value"] == 2
    assert [entry["gpu"] for entry in document["ranks"]][:2] == ["b0.gpu0", "b0.gpu1"]
    assert {entry["class"]: entry["links"] for entry in document["link_classes"]} == {
        "ib": 16,
        "nvlink": 16,
        "pcie": 16,
    }


def test_show_reports_uneven_bandwidth_as_a_range(tmp_path: Path) -> None:
    path = tmp_path / "uneven.yaml"
    path.write_text(
        "nodes: [{name: a, kind: gpu}, {name: b, kind: gpu}, {name: c, kind: gpu}]\n"
        "links: [{src: a, dst: b, bandwidth: 10}, {src: b, dst: c, bandwidth: 5}]\n"
    )
    code, out, _ = run("topo", "show", str(path))
    assert code == 0
    assert "per-GPU egress: 5-15 GB/s (min-max)" in out


@pytest.mark.parametrize("preset", [name for name, _ in list_presets()])
def test_validate_every_preset(preset: str) -> None:
    code, out, _ = run("topo", "validate", preset)
    assert code == 0
    assert out.startswith(f"ok: {preset}: ")


def test_validate_bad_file_exits_2_with_location() -> None:
    code, _, err = run("topo", "validate", str(BAD / "unknown_node.yaml"))
    assert code == 2
    assert f"{BAD / 'unknown_node.yaml'}:7:22: error: 'dst' refers to node 'nsv'" in err
    assert "Traceback" not in err


def test_validate_prints_warnings_on_stderr() -> None:
    code, out, err = run("topo", "validate", str(BAD / "unused_template.yaml"))
    assert code == 0
    assert "warning: template 'spare' is never used" in err
    assert out.startswith("ok: ")


def test_unknown_preset_exits_2() -> None:
    code, _, err = run("topo", "show", "dgx-a1000")
    assert code == 2
    assert "did you mean 'dgx-a100'?" in err


@pytest.mark.parametrize("fmt", ["flat", "json"])
def test_export_reads_back_to_the_same_graph(fmt: str, tmp_path: Path) -> None:
    target = tmp_path / f"out.{fmt}"
    code, out, _ = run("topo", "export", "mi250", "--set", "boxes=2", "--format", fmt, "-o", str(target))
    assert code == 0 and out == ""
    original = load("mi250", {"boxes": "2"})
    again, warnings = parse_topology(target.read_text(), str(target))
    assert warnings == []
    assert (again.nodes, again.links, again.ranks, again.metadata) == (
        original.nodes,
        original.links,
        original.ranks,
        original.metadata,
    )


def test_export_dot_to_stdout() -> None:
    code, out, _ = run("topo", "export", "dgx-a100", "--set", "boxes=2", "--format", "dot")
    assert code == 0
    assert out.startswith('digraph "dgx-a100" {')
    assert '"b1.nic3" -> "ib.odd" [label="25 GB/s ib", dir=both];' in out
    assert out.count("subgraph") == 2


def test_show_prints_short_decimals_exactly() -> None:
    code, out, _ = run("topo", "show", "dgx1", "--set", "boxes=2", "--set", "nics=1")
    assert code == 0
    assert "  ib              2 links  12.5 GB/s each, 25 GB/s total" in out
    assert "parameters: boxes=2 (default 1), nics=1 (default 4)" in out
