"""`collc trees` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.solver import forest_from_json


def test_trees_summary_and_output_file(tmp_path: Path) -> None:
    output = tmp_path / "forest.json"
    result = CliRunner().invoke(main, ["trees", "dgx-a100", "--set", "boxes=2", "-o", str(output)])
    assert result.exit_code == 0, result.output
    assert "16 GPUs" in result.output
    assert "k = 13 trees per root" in result.output
    assert "346.667 GB/s" in result.output
    assert "height in GPU hops" in result.output and "height in physical hops" in result.output
    assert "switch_removal" in result.output
    assert (
        "trees grown for 8 of 16 roots (the others are images under verified automorphisms)" in result.output
    )
    forest = forest_from_json(json.loads(output.read_text()))
    assert forest.k == 13 and forest.num_gpus == 16
    assert sum(tree.multiplicity for tree in forest.trees) == 16 * 13


def test_trees_json_fixed_k_and_reverse() -> None:
    result = CliRunner().invoke(
        main, ["trees", "dgx-a100", "--set", "boxes=2", "--k", "1", "--reverse", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["k"] == 1 and data["U"] == "7/150" and data["reversed"] is True
    assert len(data["trees"]) == 16


def test_trees_bad_options_are_input_errors() -> None:
    runner = CliRunner()
    for k in ("0", "10000000"):
        result = runner.invoke(main, ["trees", "dgx-a100", "--k", k])
        assert result.exit_code == 2
        assert f"--k must be a number of trees per root from 1 to 1024, got {k}" in result.output
    result = runner.invoke(main, ["trees", "dgx-a100", "--k", "1", "--max-k", "2"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("fixture", "said"),
    [
        # three boxes of 4 GPUs with two or four NICs: the balanced fabric's trees reach the cut bound
        (
            "nic-up-down-3x4",
            "allgather algbw 75.000 GB/s (packed with the fabric's unbalanced switches "
            "balanced, docs/solver.md §3: it meets the cut bound)",
        ),
        # one NIC per box: a reduce-scatter's data goes up as often as it comes down (the fixture says why)
        (
            "nic-up-down-3x2",
            "allgather algbw 18.750 GB/s (packed with the fabric's unbalanced switches "
            "balanced, docs/solver.md §3: the cut bound is 37.500 GB/s, which tree schedules reach only "
            "where no switch has to copy data)",
        ),
    ],
)
def test_a_balanced_forest_is_set_against_the_cut_bound(fixture: str, said: str) -> None:
    """The summary of reduce-scatter trees packed on a balanced fabric gives the cut bound only where
    they fall below it, and never says they fall below it when they meet it."""
    topology = Path(__file__).parents[1] / "compile" / "fixtures" / f"{fixture}.yaml"
    result = CliRunner().invoke(main, ["trees", str(topology), "--reverse"])
    assert result.exit_code == 0, result.output
    assert said in result.output
