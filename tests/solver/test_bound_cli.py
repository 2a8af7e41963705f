"""`collc bound` through the CLI: stable JSON keys, exact values, human report, errors."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.cli.names import compress_names


def _run(*args: str):
    return CliRunner().invoke(main, ["bound", *args])


def _json(*args: str) -> dict:
    result = _run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_has_the_stable_keys_and_exact_values():
    data = _json("dgx-a100", "--set", "boxes=2")
    assert {"allgather", "reducescatter", "allreduce", "x_star", "U", "k", "cut"} <= data.keys()
    assert (data["x_star"], data["U"], data["k"]) == ("65/3", "3/5", 13)
    assert data["allgather"]["algbw"] == pytest.approx(16 * 325 / 15)
    assert data["allgather"]["busbw"] == pytest.approx(325)  # algbw·(N-1)/N
    assert data["reducescatter"] == data["allgather"]
    assert data["allreduce"]["algbw"] == pytest.approx(16 * 325 / 30)  # T_AR = T_RS + T_AG
    assert data["allreduce"]["busbw"] == pytest.approx(325)  # algbw·2(N-1)/N
    assert data["allreduce"]["ceiling_algbw"] == pytest.approx(200)  # 8 NICs of 25 GB/s per box
    cut = data["cut"]
    assert len(cut["inside"]) == 35 and cut["gpus_inside"] == 15
    outside = {link["dst"] for link in cut["links"]}
    assert len(outside) == 1 and outside.isdisjoint(cut["inside"])
    assert sorted(link["bandwidth"] for link in cut["links"]) == [25, 300]
    assert set(cut["links"][0]) == {"src", "dst", "bandwidth"}


def test_json_is_deterministic():
    assert (
        _run("mi250", "--set", "boxes=2", "--json").output
        == _run("mi250", "--set", "boxes=2", "--json").output
    )


def test_fixed_and_budgeted_k_report_what_is_given_up():
    fixed = _json("mi250", "--set", "boxes=2", "--k", "1")
    assert (fixed["k"], fixed["mode"]) == (1, "fixed")
    assert fixed["allgather"]["algbw"] == pytest.approx(320)
    assert Fraction(fixed["given_up"]) == 1 - Fraction(320) / Fraction(32 * 166, 15)
    budgeted = _json("mi250", "--set", "boxes=2", "--max-k", "10")
    assert budgeted["k"] <= 10 and budgeted["mode"] == "budgeted"
    assert 0 < Fraction(budgeted["given_up"]) < Fraction(fixed["given_up"])
    text = _run("mi250", "--set", "boxes=2", "--max-k", "10").output
    assert "given up" in text and "at most 10 trees per GPU" in text
    assert "exactly 1 tree per GPU" in _run("mi250", "--set", "boxes=2", "--k", "1").output


def test_human_report_names_the_bottleneck():
    result = _run("dgx-a100", "--set", "boxes=4")
    assert result.exit_code == 0, result.output
    text = result.output
    assert "allgather" in text and "266.67" in text and "133.33" in text
    assert "x* = 25/3 GB/s per GPU" in text
    assert "24 of 32 GPUs inside S" in text and "8 links leaving S carry 200.00 GB/s" in text
    assert "outside S (17 nodes): b0.gpu[0-7], b0.nic[0-7], b0.nvswitch" in text
    assert "ib.even -> b0.nic0  25.00 GB/s" in text


def test_asymmetric_fabric_reports_the_reduce_scatter_cut(tmp_path):
    path = tmp_path / "asym.yaml"
    path.write_text(_ASYMMETRIC)
    data = _json(str(path))
    assert data["allgather"]["algbw"] == pytest.approx(15)
    assert data["reducescatter"]["algbw"] == pytest.approx(30)
    assert data["allreduce"]["algbw"] == pytest.approx(10)  # 1 / (1/15 + 1/30)
    assert data["reducescatter_bound"]["cut"]["direction"] == "entering"
    assert "bottleneck cut S (reduce-scatter)" in _run(str(path)).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--k", "0"], "from 1 to 1024, got 0"),
        (["--max-k", "-1"], "from 1 to 1024, got -1"),
        (["--k", "10000000"], "--k must be a number of trees per root from 1 to 1024"),
        (["--max-k", "10000000"], "--max-k must be a number of trees per root from 1 to 1024"),
        (["--k", "2", "--max-k", "3"], "exclusive"),
    ],
)
def test_bad_options_are_input_errors(args, message):
    result = _run("dgx-a100", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_compress_names_is_an_exact_cover():
    names = [f"b{b}.gpu{i}" for b in range(12) for i in range(8) if (b, i) != (10, 3)] + ["spine", "rail2"]
    patterns = compress_names(names)
    assert sorted(patterns) == ["b10.gpu[0-2,4-7]", "b[0-9,11].gpu[0-7]", "rail2", "spine"]


# Three GPUs on a switch, 30 GB/s up and 10 GB/s down: allgather is limited by one GPU's ingress,
# reduce-scatter by one GPU's egress.
_ASYMMETRIC = """\
name: asym
nodes:
  - {name: g, kind: gpu, count: 3}
  - {name: s, kind: switch}
links:
  - {src: "g{i}", dst: s, bandwidth: 30, directed: true}
  - {src: s, dst: "g{i}", bandwidth: 10, directed: true}
"""


def test_the_allreduce_ceiling_is_stated_where_a_file_beats_reduce_scatter_then_allgather():
    """8 GPUs on a switch, one port at 100 GB/s: reduce-scatter then allgather is 400/7 GB/s, and
    an allreduce can send a whole buffer each way through that port at once, up to 100."""
    fixture = str(Path(__file__).resolve().parents[1] / "lowering" / "fixtures" / "switch8-slow-port.yaml")
    data = _json(fixture)
    assert data["allreduce"]["algbw"] == pytest.approx(400 / 7)
    assert data["allreduce"]["ceiling_algbw"] == 100
    assert "allreduce ceiling 100.00 GB/s algbw: no allreduce beats it" in _run(fixture).output
