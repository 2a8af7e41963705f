"""An allreduce on a fabric whose two directions differ may run both halves on trees packed on the
fabric with each link at its faster direction, where the slower directions cost nothing
(collc.solver.both_ways): a candidate beside k's forest per half."""

from pathlib import Path

import pytest

from collc.capacity import capacity_graph
from collc.compile import CompileOptions, CompileResult, compile_schedule, driver
from collc.compile.driver import advance, begin
from collc.solver.both_ways import faster_way
from collc.solver.bound import fixed_k_bound
from collc.solver.pipeline import solve
from collc.topology.presets import load
from collc.verify import verify

MI250_ONE_WAY = Path(__file__).parent / "fixtures" / "mi250-xgmi-one-way.yaml"  # 2 xGMI links 37.5 one way
GIB = 1 << 30

pytestmark = pytest.mark.xdist_group("both-ways")  # one worker compiles the module's fixture once


@pytest.fixture(scope="module")
def compiled() -> CompileResult:
    """The allreduce at k = 8 (the k the symmetric preset's file has)."""
    return compile_schedule(load(MI250_ONE_WAY), CompileOptions(k=8))


def test_both_halves_run_on_the_trees_of_the_faster_way_at_both_halves_bound(compiled: CompileResult) -> None:
    """The file is k = 8's trees for both halves: the reduce half runs on the allgather trees read
    backwards, and the file's bound is the one of a forest per half at k = 8 (1/(1/AG + 1/RS), each
    half's bound from the solver), which is also the symmetric preset's: the slowed directions cost
    nothing."""
    forest, reduce_forest = compiled.solution.forest, compiled.reduce_forest
    assert forest.both_ways and forest.layout == "trees for both halves"
    assert "-k8-both-" in compiled.algorithm.name
    assert reduce_forest is not None and reduce_forest.reversed
    assert reduce_forest.trees == forest.trees
    graph = capacity_graph(compiled.topology)
    ag, rs = (fixed_k_bound(g, 8).allgather_algbw for g in (graph, graph.reversed()))
    assert compiled.file_bound_algbw == 1 / (1 / ag + 1 / rs)
    preset = capacity_graph(load("mi250", {"boxes": "1"}))
    assert compiled.file_bound_algbw == fixed_k_bound(preset, 8).allgather_algbw / 2
    assert not verify(compiled.algorithm, runtime=compiled.runtime, topology=compiled.topology).errors


def test_the_file_on_one_forest_beats_the_runtime_at_1_gib(compiled: CompileResult) -> None:
    """164.7 GB/s at 1 GiB, 0.98 of its bound, against RCCL's ring at 158.3; k's forest per half
    simulates at 154.1 at best, below the ring."""
    row = next(row for row in compiled.predicted if row.nbytes == GIB)
    assert row.algbw >= 0.96 * float(compiled.file_bound_algbw)
    assert row.algbw > max(row.ring_algbw, row.tree_algbw)


def test_a_forest_that_loses_on_the_real_fabric_is_solved_again_per_half(monkeypatch) -> None:
    """Planted: the trees of the faster way priced at twice their load. Compile then drops them and
    writes k's forest per half: the allgather forest the solver packs on the real fabric (other
    trees than the faster way's), and the reduce forest packed on its reverse."""
    priced = driver.priced_both_ways

    def losing(forest, topology):
        allgather, reduce_forest = priced(forest, topology)
        return allgather.__class__(**{**allgather.__dict__, "U": 2 * allgather.U}), reduce_forest

    monkeypatch.setattr(driver, "priced_both_ways", losing)
    topology = load(MI250_ONE_WAY)
    result = compile_schedule(topology, CompileOptions(k=8, force=True))
    assert not result.solution.forest.both_ways
    assert result.solution.forest.same_trees(solve(topology, k=8).forest)
    assert result.reduce_forest is not None
    assert result.reduce_forest.same_trees(solve(topology, k=8, reverse=True).forest)
    assert not result.solution.forest.same_trees(solve(faster_way(topology), k=8).forest)


@pytest.mark.parametrize(("slow", "twins"), [("37.5", [False, True]), ("12.5", [False])])
def test_trees_for_both_halves_are_a_candidate_only_where_the_slower_directions_cost_nothing(
    tmp_path: Path, slow: str, twins: list[bool]
) -> None:
    """A user's k (unpriced) gets its twin at the price of both halves' bounds at k; at 12.5 GB/s the
    slowed links bind, and k has only its forest per half (nothing is solved on the faster way)."""
    path = tmp_path / "mi250.yaml"
    path.write_text(MI250_ONE_WAY.read_text().replace("bandwidth: 37.5", f"bandwidth: {slow}"))
    state = advance(begin(load(path), CompileOptions(k=8)))
    assert state.candidates is not None and state.faster is not None
    assert [candidate.both_ways for candidate in state.candidates] == twins
    graph = capacity_graph(state.topology)
    ag, rs = (fixed_k_bound(g, 8).allgather_algbw for g in (graph, graph.reversed()))
    priced = [candidate.bound for candidate in state.candidates if candidate.both_ways]
    assert priced == [1 / (1 / ag + 1 / rs)] * len(priced)
