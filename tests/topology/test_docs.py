"""docs/topology-format.md stays true: its YAML examples load and its quoted output matches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.topology import load, parse_topology

DOC = Path(__file__).resolve().parents[2] / "docs" / "topology-format.md"
TEXT = DOC.read_text(encoding="utf-8")
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL)


def test_the_document_has_examples() -> None:
    assert len(YAML_BLOCKS) >= 8


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[f"block{i}" for i in range(len(YAML_BLOCKS))])
def test_every_yaml_example_is_a_valid_topology(block: str) -> None:
    topology, warnings = parse_topology(block, str(DOC))
    assert warnings == []
    assert topology.num_gpus >= 2


def test_dgx_a100_example_equals_the_preset() -> None:
    block = next(block for block in YAML_BLOCKS if "name: dgx-a100-copy" in block)
    example, _ = parse_topology(block, str(DOC))
    preset = load("dgx-a100", {"boxes": "2"})
    assert (example.nodes, example.links, example.ranks) == (preset.nodes, preset.links, preset.ranks)


def test_rail_example_equals_the_preset_at_1024_gpus() -> None:
    block = next(block for block in YAML_BLOCKS if "name: rail-1024" in block)
    example, _ = parse_topology(block, str(DOC))
    preset = load("dgx-h100", {"boxes": "128"})
    assert example.num_gpus == 1024
    assert (example.nodes, example.links, example.ranks) == (preset.nodes, preset.links, preset.ranks)
    assert len(block.splitlines()) <= 40


def test_quoted_show_output_is_current() -> None:
    quoted = TEXT.split("--set boxes=2` prints (abridged):\n\n```text\n")[1].split("```")[0]
    result = CliRunner().invoke(main, ["topo", "show", "dgx-a100", "--set", "boxes=2"])
    assert result.exit_code == 0
    for line in quoted.splitlines():
        assert line in result.output.splitlines()
