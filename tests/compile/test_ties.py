"""Where collc's file and the runtime's algorithm are predicted equally fast, every command says the
same: the file is at least as fast there (``collc.predict.sweep.no_slower``)."""

import json
from pathlib import Path

from click.testing import CliRunner

from collc.cli import main
from collc.compile.outlook import SizeOutlook
from collc.predict.sweep import TIE, no_slower

# Two GPUs joined by NVLink and PCIe: collc's file sends what the runtime's ring sends, so the two are
# predicted equal at every size from 1 MiB up, to the last bits of a float.
PAIR = """\
name: pair
nodes:
  - {name: ga, kind: gpu}
  - {name: gb, kind: gpu}
links:
  - {src: ga, dst: gb, bandwidth: 112.5, class: nvlink}
  - {src: ga, dst: gb, bandwidth: 16, class: pcie}
"""


def test_a_tie_within_float_noise_is_at_least_as_fast_both_ways() -> None:
    figure = 256.6099856997258
    noisy = figure * (1 - 1e-15)
    assert no_slower(figure, noisy) and no_slower(noisy, figure)
    assert not no_slower(figure * (1 - 10 * TIE), figure)  # a real difference still loses
    row = SizeOutlook(2**20, noisy, None, figure, None, 300.0, True)
    assert row.wins


def test_compile_and_simulate_agree_where_the_file_ties_the_ring(tmp_path: Path) -> None:
    topology = tmp_path / "pair.yaml"
    topology.write_text(PAIR)
    out = tmp_path / "allgather.xml"
    compiled = CliRunner().invoke(
        main, ["compile", str(topology), "--coll", "allgather", "-o", str(out), "--json"]
    )
    assert compiled.exit_code == 0, compiled.output
    report = json.loads(compiled.stdout)
    assert [row["selected"] for row in report["predicted"]] == [True, True, True]  # 1 MiB, 64 MiB, 1 GiB
    assert report["min_bytes"] <= 2**20 and report["max_bytes"] == 0
    sizes = ",".join(str(row["bytes"]) for row in report["predicted"])
    simulated = CliRunner().invoke(main, ["simulate", str(topology), str(out), "--sizes", sizes, "--json"])
    assert simulated.exit_code == 0, simulated.output
    assert json.loads(simulated.stdout)["collc_wins"] == [row["bytes"] for row in report["predicted"]]
