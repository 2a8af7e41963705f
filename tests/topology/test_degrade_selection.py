"""--gpus: ranks, names, patterns, boxes and files; rank order; unselected GPUs do not forward."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from collc.capacity import capacity_graph
from collc.errors import InputError
from collc.solver.bound import optimal_bound
from collc.topology import load
from collc.topology.degrade import Degradation, degrade
from collc.topology.model import Link, Node, Topology
from collc.topology.selection import select_gpus


def a100(boxes: int = 2) -> Topology:
    return load("dgx-a100", {"boxes": str(boxes)})


def test_every_item_kind_in_the_order_written() -> None:
    fabric = a100(3)
    assert select_gpus(fabric, "9, 3-4") == ("b1.gpu1", "b0.gpu3", "b0.gpu4")
    assert select_gpus(fabric, "b2.gpu7,b0.gpu0") == ("b2.gpu7", "b0.gpu0")
    assert select_gpus(fabric, "b1.gpu*") == tuple(f"b1.gpu{i}" for i in range(8))
    assert select_gpus(fabric, "b2,b0") == fabric.ranks[16:] + fabric.ranks[:8]
    assert select_gpus(fabric, "b1-b2") == select_gpus(fabric, "b1-2") == fabric.ranks[8:]


def test_a_file_lists_one_item_per_line(tmp_path: Path) -> None:
    hosts = tmp_path / "job.txt"
    hosts.write_text("# job 42\nb1.gpu3\n\n  b0.gpu5   # spare\n0\n", encoding="utf-8")
    assert select_gpus(a100(), f"@{hosts},b1.gpu0") == ("b1.gpu3", "b0.gpu5", "b0.gpu0", "b1.gpu0")


def test_a_bad_line_of_a_file_is_located(tmp_path: Path) -> None:
    hosts = tmp_path / "job.txt"
    hosts.write_text("b1.gpu3\n  b0.gpux\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        select_gpus(a100(), f"@{hosts}")
    assert str(caught.value).startswith(f"{hosts}:2:3: error: --gpus 'b0.gpux' names no GPU of dgx-a100")
    assert "did you mean b0.gpu" in (caught.value.hint or "")
    with pytest.raises(InputError, match="cannot read the --gpus file"):
        select_gpus(a100(), f"@{tmp_path / 'missing.txt'}")


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ("3,b0.gpu3", r"selects b0\.gpu3 twice \(by '3' and 'b0\.gpu3'\)"),
        ("b0-b2", "box 2 does not exist; the fabric has boxes 0-1"),
        ("10-16", "rank 16 does not exist; the fabric has ranks 0-15"),
        ("7-3", "the range runs backwards"),
        ("ib.even,b0.gpu0", "'ib.even' is a switch, not a GPU"),
        ("b0.gpu0", r"selects 1 GPU\(s\)"),
        (" , ", "selects nothing"),
    ],
)
def test_bad_selections_say_what_is_wrong(selection: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        select_gpus(a100(), selection)


def test_the_job_ranks_follow_the_selection() -> None:
    job = degrade(a100(), Degradation(gpus="b1,b0.gpu0,b0.gpu1"))
    assert job.ranks == (*(f"b1.gpu{i}" for i in range(8)), "b0.gpu0", "b0.gpu1")
    assert {node.name for node in job.nodes if node.kind == "gpu"} == set(job.ranks)


def test_unselected_gpus_do_not_forward() -> None:
    """g0 and g1 share a 1 GB/s link; through g2 they would have 10 GB/s more, but g2 is not in the job."""
    nodes = (Node("g0", "gpu"), Node("g1", "gpu"), Node("g2", "gpu"), Node("sw", "switch"))
    links = (
        Link("g0", "g1", Fraction(1)),
        Link("g0", "g2", Fraction(10)),
        Link("g2", "g1", Fraction(10)),
        Link("g2", "sw", Fraction(10)),
        Link("sw", "g1", Fraction(3)),
    )
    fabric = Topology("relay", nodes, links, ("g0", "g1", "g2"))
    job = degrade(fabric, Degradation(gpus="g1,g0"))
    assert job.ranks == ("g1", "g0")
    assert optimal_bound(capacity_graph(job)).x_star == 1
    # sw now touches only g1: a dead end, left out
    assert [node.name for node in job.nodes] == ["g0", "g1"]


def test_a_selection_leaves_the_unused_part_of_a_large_fabric_out() -> None:
    fabric = load("dgx-h100-rail", {"boxes": "16"})
    job = degrade(fabric, Degradation(gpus="b0-b1"))
    own = load("dgx-h100-rail", {"boxes": "2"})
    kept = {node.name for node in job.nodes}
    assert not any(name.startswith(("b2.", "b15.")) for name in kept)
    assert kept == {node.name for node in own.nodes}
    assert optimal_bound(capacity_graph(job)).x_star == optimal_bound(capacity_graph(own)).x_star
