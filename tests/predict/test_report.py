import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from collc.cli import main
from collc.predict.picture import topology_figure
from collc.predict.plot import save_figure

from .models import model

PNG = b"\x89PNG\r\n\x1a\n"


def test_report_writes_markdown_and_valid_pictures(tmp_path: Path) -> None:
    out = tmp_path / "ticket"
    result = CliRunner().invoke(main, ["report", "dgx-a100", "--set", "boxes=2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "report.md",
        "simulate.png",
        "topology.png",
        "topology.svg",
    ]
    text = (out / "report.md").read_text()
    for needle in (
        "## Bound and bottleneck cut",
        "| allgather | 346.7 | 325.0 |",
        "no allreduce beats 200.0 GB/s algbw",
        "k = 13",
        "## Forest",
        "| nvlink | 32 | 300.0 |",
        "## Predicted performance",
        "collc = event simulation of the file `collc compile` writes",
        "Where collc is at least as fast as every NCCL algorithm",
        "![topology](topology.png)",
    ):
        assert needle in text, needle
    # the figures are compile's own prediction of its file (at the NCCL_BUFFSIZE it chose: 512 KiB)
    compiled = CliRunner().invoke(
        main, ["compile", "dgx-a100", "--set", "boxes=2", "-o", str(tmp_path / "ar.xml"), "--json"]
    )
    predicted = {row["bytes"]: row["busbw"] for row in json.loads(compiled.output)["predicted"]}
    assert f"| allreduce | 64MiB | {predicted[64 * 2**20]:.1f} |" in text
    for name in ("topology.png", "simulate.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and 30_000 < len(data) < 3_000_000
    svg = (out / "topology.svg").read_text()
    assert "<svg" in svg and svg.rstrip().endswith("</svg>") and len(svg) > 50_000


def test_report_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    """Two processes with different string hashes write the same bytes: the markdown, both pictures of
    the topology and the simulate plot. Four DGX-1 GPUs: single and double NVLinks, so the solver
    and the drawing both meet ties."""
    collc = Path(sys.executable).with_name("collc")
    for seed in ("1", "2"):  # the same command line (the report quotes it) in two directories
        (tmp_path / seed).mkdir()
        args = [str(collc), "report", "dgx1", "--gpus", "0-3", "-o", "ticket"]
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run(args, check=True, capture_output=True, env=env, cwd=tmp_path / seed, timeout=300)
    one, two = tmp_path / "1" / "ticket", tmp_path / "2" / "ticket"
    names = sorted(p.name for p in one.iterdir())
    assert names == ["report.md", "simulate.png", "topology.png", "topology.svg"]
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name


def test_large_fabrics_are_drawn_per_box(tmp_path: Path) -> None:
    """More than 64 GPUs: one square per box (checked through the figure's artists)."""
    m = model("dgx-h100-rail", 16)
    utilisation = {arc: 1 for arc in m.network.bandwidth}
    figure = topology_figure(m.topology, utilisation, m.bound.cut_inside, m.bound.cut_arcs, "big")
    boxes = figure.axes[0].collections[0]
    assert len(boxes.get_offsets()) == 16
    save_figure(figure, tmp_path / "big.png")
    assert (tmp_path / "big.png").read_bytes().startswith(PNG)
