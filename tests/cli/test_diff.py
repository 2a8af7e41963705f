"""`collc diff`, and --without/--derate/--gpus on every command that takes a topology."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from collc.cli import main
from fabrics import switch_fabric

QUAD = switch_fabric("quad", extra=", class: nvlink")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_diff_of_a_drained_nic() -> None:
    code, out, _ = run("diff", "dgx-a100", "--set", "boxes=2", "--without", "nic:b0.nic3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "before: dgx-a100 --set boxes=2: 16 GPUs"
    assert lines[1] == "after:  dgx-a100 --set boxes=2 --without nic:b0.nic3: 16 GPUs"
    # healthy x* = 325/15 GB/s per GPU, degraded 300/15: 1/13 of the throughput is lost
    assert lines[3].split() == ["allgather", "346.67", "320.00", "7.69", "%"]
    assert lines[5].split() == ["allreduce", "173.33", "160.00", "7.69", "%"]
    # the allreduce ceiling is the least cut: a box's NICs, 8 x 25 = 200 GB/s before, 7 x 25 = 175 after
    assert lines[6].split() == ["allreduce", "ceiling", "200.00", "175.00", "12.50", "%"]
    after = lines[lines.index("bottleneck cut after:") + 1 :]
    assert after[0] == "  allgather: 15 of 16 GPUs inside S, GPUs outside S: b0.gpu3"
    assert after[1] == "    1 link leaving S carries 300.00 GB/s = 20.00 GB/s per inside GPU"
    assert after[2].split() == ["b0.nvswitch", "->", "b0.gpu3", "300.00", "GB/s"]


def test_diff_json_has_both_bound_objects_and_the_exact_loss() -> None:
    code, out, _ = run(
        "diff", "dgx-a100", "--set", "boxes=2", "--derate", "link:b0.gpu3-b0.nic3=50%", "--json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["before"]["x_star"] == "65/3" and data["after"]["x_star"] == "125/6"
    assert data["lost"]["allgather"] == {"ratio": "1/26", "percent": pytest.approx(100 / 26)}
    # the least cut is a box's NICs: 8 x 25 = 200 GB/s, and 187.5 with b0.gpu3's NIC link at 12.5
    assert data["lost"]["allreduce_ceiling"] == {"ratio": "1/16", "percent": 6.25}
    assert data["after"]["label"] == "dgx-a100 --set boxes=2 --derate link:b0.gpu3-b0.nic3=50%"
    assert data["after"]["cut"]["links"] == [
        {"src": "b0.nic3", "dst": "b0.gpu3", "bandwidth": 12.5},
        {"src": "b0.nvswitch", "dst": "b0.gpu3", "bandwidth": 300.0},
    ]


def test_diff_of_two_fabrics_shows_a_gain_as_a_negative_loss() -> None:
    code, out, _ = run("diff", "dgx-a100", "dgx-h100", "--set", "boxes=2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["before"]["topology"] == "dgx-a100" and data["after"]["topology"] == "dgx-h100"
    assert data["lost"]["allreduce"]["ratio"] == "-7/13"  # 325/15 -> 500/15 GB/s per GPU
    code, out, _ = run("diff", "dgx-a100", "dgx-h100", "--set", "boxes=2", "--set-b", "boxes=1", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["before"]["num_gpus"], data["after"]["num_gpus"]) == (16, 8)


def test_diff_refuses_nothing_to_compare() -> None:
    code, _, err = run("diff", "dgx-a100")
    assert code == 2 and "nothing to compare" in err
    code, _, err = run("diff", "dgx-a100", "--set-b", "boxes=2", "--without", "gpu:b0.gpu0")
    assert code == 2 and "--set-b needs TOPO_B" in err
    code, _, err = run("diff", "dgx-a100", "--without", "gpu:b0.gpu9")
    assert code == 2 and err.splitlines()[0] == "error: --without 'gpu:b0.gpu9': no gpu is named 'b0.gpu9'"


def _commands(group: click.Group, prefix: str = ""):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


#: commands that hand TOPO to a collc service, which loads it there: the changes would travel in the job
REMOTE = {"submit"}


def test_every_command_that_takes_a_topology_takes_the_changes() -> None:
    taking = {
        name: {param.name for param in command.params}
        for name, command in _commands(main)
        if any(param.name in ("topo", "topo_a") for param in command.params) and name not in REMOTE
    }
    assert {"bound", "compile", "diff", "report", "simulate", "trees", "topo show", "topo validate"} <= set(
        taking
    )
    for name, params in taking.items():
        assert {"without", "derate", "gpus"} <= params, name


def test_topo_show_shows_the_job() -> None:
    code, out, _ = run("topo", "show", "dgx-a100", "--set", "boxes=2", "--gpus", "b1.gpu2,b0.gpu0")
    assert code == 0
    assert "nodes: 2 GPU(s)" in out
    assert out.splitlines()[-2:] == ["  0            b1.gpu2", "  1            b0.gpu0"]
    code, _, err = run("topo", "show", "dgx-a100", "--set", "boxes=2", "--gpus", "b1.gpu2,b0.gpu1")
    assert code == 2 and "cannot be reached" in err and "GPUs outside --gpus do not forward" in err


def test_compile_on_a_degraded_fabric_reports_the_healthy_bound(tmp_path: Path) -> None:
    quad = tmp_path / "quad.yaml"
    quad.write_text(QUAD, encoding="utf-8")
    out_file = tmp_path / "x.xml"
    code, out, _ = run("compile", str(quad), "--derate", "link:gpu3-sw=50%", "-o", str(out_file))
    assert code == 0
    # 4 GPUs at 100 GB/s: allreduce 4·(100/3)/2; one port at 50 GB/s: 4·(50/3)/2. The ceiling is the
    # least cut: a GPU's port, 100 and then 50 GB/s
    assert (
        "  healthy fabric   bound 66.7 GB/s, this one 33.3 GB/s (-50.0 %); "
        "allreduce ceiling 100.0 GB/s -> 50.0 GB/s (-50.0 %)"
    ) in out.splitlines()
    code, out, _ = run("compile", str(quad), "--derate", "link:gpu3-sw=50%", "--json", "-o", str(out_file))
    document = json.loads(out)
    assert (document["healthy_ceiling_algbw"], document["ceiling_algbw"]) == (100.0, 50.0)
    code, out, _ = run(
        "compile", str(quad), "--derate", "link:gpu3-sw=50%", "--coll", "allgather", "-o", str(out_file)
    )
    assert "  healthy fabric   bound 133.3 GB/s, this one 66.7 GB/s (-50.0 %)" in out.splitlines()
    code, out, _ = run("compile", str(quad), "--gpus", "2,0,1", "--json", "-o", str(out_file))
    document = json.loads(out)
    assert code == 0 and document["healthy_bound_algbw"] is None and document["healthy_ceiling_algbw"] is None


def test_a_degraded_fabric_with_fewer_gpus_is_not_compared_as_a_change(tmp_path: Path) -> None:
    """Without one of 4 GPUs the allreduce bound rises from 66.7 to 75.0 GB/s: a collective over 3
    GPUs, which the report called a gain of 12.5 % over the healthy fabric's 4."""
    quad = tmp_path / "quad.yaml"
    quad.write_text(QUAD, encoding="utf-8")
    out_file = tmp_path / "x.xml"
    code, out, _ = run("compile", str(quad), "--without", "gpu:gpu3", "-o", str(out_file))
    assert code == 0
    # 4 GPUs at 100 GB/s: allreduce 4·(100/3)/2; without one: 3·(100/2)/2
    assert (
        "  healthy fabric   bound 66.7 GB/s over 4 GPUs, this one 75.0 GB/s over 3 (fewer GPUs: a different "
        "collective, so no change is given)"
    ) in out.splitlines()
    assert "%" not in next(line for line in out.splitlines() if "healthy fabric" in line)
    assert 'ngpus="3"' in out_file.read_text()
    code, out, _ = run("compile", str(quad), "--without", "gpu:gpu3", "--json", "-o", str(out_file))
    document = json.loads(out)
    assert code == 0 and (document["healthy_bound_algbw"], document["healthy_ngpus"]) == (66.667, 4)
    assert document["ngpus"] == 3


def test_the_readme_example_is_what_diff_prints() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    command = "$ collc diff dgx-a100 --set boxes=2 --without nic:b0.nic3\n"
    quoted = readme.split(command, 1)[1].split("\n$ ", 1)[0].splitlines()
    code, out, _ = run(*command.split()[2:])
    assert code == 0
    shown = [line for line in quoted if line.strip() != "..."]
    assert len(shown) >= 10 and all(line in out.splitlines() for line in shown)


SLOW_PORT = switch_fabric("slowport", '"1000000 if i < 3 else 0.000002"')


def test_bound_keeps_the_digits_of_a_slow_ports_figures(tmp_path: Path) -> None:
    """Bandwidths 12 orders of magnitude apart: every figure of `collc bound` printed as 0.00."""
    fabric = tmp_path / "slowport.yaml"
    fabric.write_text(SLOW_PORT, encoding="utf-8")
    code, out, _ = run("bound", str(fabric))
    assert code == 0
    lines = out.splitlines()
    assert lines[2].split() == ["allgather", "2.7e-06", "2e-06"]
    assert lines[4].split() == ["allreduce", "1.3e-06", "2e-06"]
    assert "allreduce ceiling 2e-06 GB/s algbw" in out and "0.00" not in out
    code, out, _ = run("diff", str(fabric), "--derate", "link:gpu3-sw=50%")
    assert code == 0 and out.splitlines()[3].split() == ["allgather", "2.7e-06", "1.3e-06", "50.00", "%"]
    assert "1 link leaving S carries 1e-06 GB/s = 3.3e-07 GB/s per inside GPU" in out


def test_one_link_and_one_tree_are_singular(tmp_path: Path) -> None:
    """A cut of one link "carry" its bandwidth, and a forest of k = 1 had "1 trees per root"."""
    fabric = tmp_path / "slowport.yaml"
    fabric.write_text(SLOW_PORT, encoding="utf-8")
    code, out, _ = run("bound", str(fabric))
    assert code == 0 and "3 of 4 GPUs inside S; 1 link leaving S carries 2e-06 GB/s" in out
    code, out, _ = run("trees", str(fabric))
    assert code == 0 and out.splitlines()[1].startswith("  k = 1 tree per root, U = ")
