"""An allreduce gets the same schedule whatever order the file lists its ranks in, box by box or round
the boxes (``collc.compile.driver.box_major``): the program compiled for box-major ranks, renumbered."""

from dataclasses import replace
from pathlib import Path

import pytest

from collc.compile import CompileOptions, CompileResult, compile_schedule
from collc.compile.driver import box_major
from collc.errors import InvariantError
from collc.msccl.program import renumbered
from collc.msccl.writer import to_xml
from collc.topology.presets import load
from collc.verify import verify

# Three boxes of two NVLink-joined GPUs, every GPU on an IB switch; 6 GPUs, so an allreduce shares a
# power-of-two loop unevenly among the roots (collc.lowering.layout.spread_shares). Before compile
# searched box-major ranks, the cyclic order below compiled to another k (2 instead of 1).
THREE_PAIRS = (
    "name: three-pairs\nnodes:\n"
    + "".join(f"  - {{name: b{b}.gpu{g}, kind: gpu}}\n" for b in range(3) for g in range(2))
    + "  - {name: ib, kind: switch}\nlinks:\n"
    + "".join(
        f"  - {{src: b{b}.gpu{g}, dst: ib, bandwidth: 25, class: ib}}\n" for b in range(3) for g in range(2)
    )
    + "".join(f"  - {{src: b{b}.gpu0, dst: b{b}.gpu1, bandwidth: 100, class: nvlink}}\n" for b in range(3))
)
# a launcher's cyclic distribution: rank r in box r mod 3
CYCLIC = "ranks: [b0.gpu0, b1.gpu0, b2.gpu0, b0.gpu1, b1.gpu1, b2.gpu1]\n"
# the cyclic file's rank of each box-major rank
ORDER = (0, 3, 1, 4, 2, 5)

pytestmark = pytest.mark.xdist_group("rank_order")  # one worker compiles the module's fixture once


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[CompileResult, CompileResult]:
    """The allreduce compiled for box-major ranks and for the cyclic ones."""
    folder = tmp_path_factory.mktemp("ranks")
    (folder / "box.yaml").write_text(THREE_PAIRS)
    (folder / "cyclic.yaml").write_text(THREE_PAIRS + CYCLIC)
    return tuple(  # type: ignore[return-value]
        compile_schedule(load(folder / name), CompileOptions(coll="allreduce"))
        for name in ("box.yaml", "cyclic.yaml")
    )


def test_cyclic_ranks_get_the_box_major_program_renumbered(compiled: tuple[CompileResult, ...]) -> None:
    box, cyclic = compiled
    assert cyclic.xml == to_xml(renumbered(box.algorithm, ORDER), runtime=box.runtime)
    assert [row.algbw for row in cyclic.predicted] == [row.algbw for row in box.predicted]
    assert cyclic.file_bound_algbw == box.file_bound_algbw


def test_the_result_speaks_of_the_files_own_ranks(compiled: tuple[CompileResult, ...]) -> None:
    box, cyclic = compiled
    assert cyclic.topology.ranks[:3] == ("b0.gpu0", "b1.gpu0", "b2.gpu0")
    assert not verify(cyclic.algorithm, runtime=cyclic.runtime, topology=cyclic.topology).errors
    ranks = cyclic.topology.ranks
    for tree in cyclic.solution.forest.trees:  # every edge's path joins the GPUs of its ranks
        for edge in tree.edges:
            assert (edge.path[0], edge.path[-1]) == (ranks[edge.src], ranks[edge.dst])
    assert box.loop_shares is not None and len(set(box.loop_shares)) == 2  # unequal: 16 chunks on 6 roots
    assert cyclic.loop_shares == tuple(box.loop_shares[ORDER.index(rank)] for rank in range(6))


def test_only_an_allreduce_off_box_major_order_is_renumbered(tmp_path: Path) -> None:
    (tmp_path / "box.yaml").write_text(THREE_PAIRS)
    (tmp_path / "cyclic.yaml").write_text(THREE_PAIRS + CYCLIC)
    assert box_major(load(tmp_path / "box.yaml"), "allreduce") is None
    assert box_major(load(tmp_path / "cyclic.yaml"), "allgather") is None
    searched = box_major(load(tmp_path / "cyclic.yaml"), "allreduce")
    assert searched is not None and searched[1] == ORDER
    assert searched[0].ranks == tuple(f"b{b}.gpu{g}" for b in range(3) for g in range(2))


def test_renumbering_moves_programs_and_peers_and_refuses_what_it_would_break(
    compiled: tuple[CompileResult, ...],
) -> None:
    algo = compiled[0].algorithm
    moved = renumbered(algo, ORDER)
    for gpu in algo.gpus:
        twin = moved.gpus[ORDER[gpu.id]]
        assert twin.id == ORDER[gpu.id] and len(twin.tbs) == len(gpu.tbs)
        for tb, other in zip(gpu.tbs, twin.tbs, strict=True):
            assert other.send == (ORDER[tb.send] if tb.send >= 0 else -1)
            assert other.recv == (ORDER[tb.recv] if tb.recv >= 0 else -1)
            assert other.steps == tb.steps
    with pytest.raises(InvariantError, match="not a permutation"):
        renumbered(algo, (0, 0, 1, 2, 3, 4))
    with pytest.raises(InvariantError, match="blocks follow the ranks"):
        renumbered(replace(algo, coll="allgather"), ORDER)
