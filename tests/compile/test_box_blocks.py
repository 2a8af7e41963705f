"""The box-block forest as a compile candidate (docs/compile.md §3, `driver._blocks_next`)."""

from __future__ import annotations

import dataclasses
import json
import random

from click.testing import CliRunner

from collc.cli import main
from collc.cli.common import load_topology
from collc.compile import CompileOptions, compile_schedule, driver
from collc.compile.driver import begin
from collc.compile.report import report_json
from collc.solver.pipeline import solve
from collc.topology import Topology, load
from collc.topology.degrade import Degradation
from compiled import preset_compile, same_worker


def _json(tmp_path, *args: str) -> dict:
    out = tmp_path / "out.xml"
    result = CliRunner().invoke(main, ["compile", *args, "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _shared_report(name: str, boxes: int, coll: str) -> tuple[dict, str]:
    """The ``--json`` report of ``collc compile NAME --set boxes=BOXES --coll COLL``, and its program's
    name (tests/compiled.py: the compile is shared with the other tests that read it)."""
    result = preset_compile(name, boxes, coll)
    return report_json(result, "out.xml"), result.algorithm.name


@same_worker("dgx-a100", 4)
def test_on_4x8_a100_allgather_the_direct_box_block_file_is_chosen_and_verified():
    """Its trees reach the bound (266.7 GB/s) and pipeline in 2 hops: at 1 MiB 62.0 GB/s, 3.6x NCCL's
    ring, against 52.6 for the box blocks (3 hops) and 35.3 for the priced k (bench_predict)."""
    report, program = _shared_report("dgx-a100", 4, "allgather")
    chosen = next(note for note in report["notes"] if note.startswith("chose"))
    assert chosen.startswith("chose k = 1 (direct box blocks")
    assert "k = 1 (box blocks)" in chosen  # both layouts were simulated
    assert report["warnings"] == 0 and report["k"] == 1 and report["layout"] == "direct box blocks"
    assert "-k1-blocks-direct-" in program
    by_size = {row["bytes"]: row for row in report["predicted"]}
    assert by_size[2**20]["algbw"] > 3.3 * by_size[2**20]["ring_algbw"]


def test_a_users_k_leaves_the_box_blocks_out(tmp_path):
    report = _json(tmp_path, "dgx-a100", "--set", "boxes=2", "--coll", "allgather", "--k", "1")
    assert not any("box blocks" in note for note in report["notes"]) and report["layout"] == "trees"


def test_the_box_blocks_come_first_where_one_candidate_is_tried_anyway():
    """Allreduce on 512 GPUs: any forest moved a tree per step has at least 512·(5·511 + 1) = 1.31
    million steps, above the lone-candidate threshold; on 256 it has 0.33 million."""
    options = CompileOptions(coll="allreduce")
    assert driver._at_lone_scale(load("dgx-h100-rail", {"boxes": "64"}), options)
    assert not driver._at_lone_scale(load("dgx-h100-rail", {"boxes": "32"}), options)
    state = begin(load("dgx-h100-rail", {"boxes": "2"}), options)
    driver._price_step(state)
    assert state.candidates[-1].blocks and not driver._blocks_first(state)
    assert driver._search_width(state) == driver.SIMULATED_CANDIDATES
    assert state.candidates[-1].solve_k == driver.BLOCKS  # two boxes: the direct ones are the same trees


def test_direct_box_blocks_are_tried_after_the_box_blocks_where_the_search_can_be_wide():
    """Their steps are not merged (a peer forwards roots G ranks apart), so not at a narrow scale."""
    state = begin(load("dgx-a100", {"boxes": "4"}), CompileOptions(coll="allreduce"))
    driver._price_step(state)
    assert [c.solve_k for c in state.candidates[-2:]] == [driver.BLOCKS, driver.BLOCKS_DIRECT]
    assert state.solutions[driver.BLOCKS_DIRECT].forest.direct
    state = begin(load("dgx-a100", {"boxes": "16"}), CompileOptions(coll="allreduce"))
    driver._price_step(state)
    assert [c.solve_k for c in state.candidates if c.blocks] == [driver.BLOCKS]


def _cyclic(topology: Topology, boxes: int) -> Topology:
    """``topology`` with rank r in box r mod ``boxes`` (a launcher's cyclic distribution)."""
    per_box = topology.num_gpus // boxes
    order = [(rank % boxes) * per_box + rank // boxes for rank in range(topology.num_gpus)]
    return dataclasses.replace(topology, ranks=tuple(topology.ranks[rank] for rank in order))


def test_at_scale_ranks_round_the_boxes_get_the_direct_box_blocks_first():
    """32x8 A100 allgather with ranks going round the boxes: the direct box blocks merge about as
    well there and are 2 hops high (docs/solver.md §9)."""
    state = begin(_cyclic(load("dgx-a100", {"boxes": "32"}), 32), CompileOptions(coll="allgather"))
    driver._price_step(state)
    assert driver._blocks_first(state) and state.candidates[0].solve_k == driver.BLOCKS_DIRECT


def test_an_allreduce_with_ranks_round_the_boxes_is_searched_box_by_box():
    """driver.box_major: with its cyclic ranks, 16x8 A100 allreduce took the direct box blocks, 83.5
    GB/s at 1 GiB against 105.2 for the box blocks of box-major ranks (13x8: 79.6 against 97.2)."""
    topology = load("dgx-a100", {"boxes": "16"})
    state = begin(_cyclic(topology, 16), CompileOptions(coll="allreduce"))
    assert state.topology.ranks == topology.ranks
    driver._price_step(state)
    assert driver._blocks_first(state) and state.candidates[0].solve_k == driver.BLOCKS


def test_no_box_blocks_where_the_boxes_do_not_join_every_pair_inside(tmp_path):
    state = begin(load("mi250", {"boxes": "2"}), CompileOptions(coll="allgather"))
    driver._price_step(state)
    assert not any(candidate.blocks for candidate in state.candidates)


def test_where_no_k_serves_power_of_two_counts_the_box_blocks_are_not_left_out():
    """Six GPUs (three boxes of two): no k makes nchunksperloop divide powers of two, so every
    candidate is tried for the counts it serves, the box blocks too (their k = 1 serves the most)."""
    two_per_box = Degradation(gpus="b0.gpu0,b0.gpu1,b1.gpu0,b1.gpu1,b2.gpu0,b2.gpu1")
    topology = load_topology("dgx-h100-rail", ["boxes=3"], two_per_box)
    state = begin(topology, CompileOptions(coll="allreduce"))
    driver._price_step(state)
    assert state.candidates[-1].blocks


def test_from_128_gpus_the_box_blocks_go_first_and_alone_where_their_file_is_used(tmp_path):
    """16x8 A100 allreduce: any one-tree-per-step file has at least 81,408 steps (above a wide
    search), so the box blocks are lowered first; their file beats NCCL's tree from 128 MiB up, so
    no priced k is solved or lowered (4.1 s on two cores instead of 17.2, the same file)."""
    options = CompileOptions(coll="allreduce")
    assert driver._at_narrow_scale(load("dgx-a100", {"boxes": "16"}), options)
    assert not driver._at_narrow_scale(load("dgx-a100", {"boxes": "8"}), options)
    report = _json(tmp_path, "dgx-a100", "--set", "boxes=16")
    assert report["layout"] == "box blocks" and report["min_bytes"] > 0
    (note,) = [note for note in report["notes"] if note.startswith("only k = 1 (box blocks)")]
    assert "81,408 steps" in note and "is used at a size" in note


def test_where_the_box_blocks_file_is_not_used_the_priced_search_follows():
    state = begin(load("dgx-a100", {"boxes": "16"}), CompileOptions(coll="allreduce"))
    driver._price_step(state)
    assert driver._blocks_first(state) and driver._search_width(state) == 1  # undecided: blocks alone
    state.blocks_alone = False
    assert driver._search_width(state) == driver.SIMULATED_CANDIDATES
    state.blocks_alone = True
    assert driver._search_width(state) == 1


def test_box_blocks_that_are_a_forest_already_lowered_are_not_lowered_again(tmp_path):
    """3 boxes of 4 H100s on rails: the direct box blocks are the exact k = 1 forest's trees (edges
    in another order), so they are not lowered and simulated a second time (8x8: 13.1 -> 11.0 s)."""
    gpus = ",".join(f"b{box}.gpu{gpu}" for box in range(3) for gpu in range(4))
    topology = load_topology("dgx-h100-rail", ["boxes=3"], Degradation(gpus=gpus))
    state = begin(topology, CompileOptions(coll="allreduce"))
    driver._price_step(state)
    assert state.solutions[driver.BLOCKS_DIRECT].forest.same_trees(solve(topology, k=1).forest)
    report = _json(tmp_path, "dgx-h100-rail", "--set", "boxes=3", "--gpus", gpus)
    chosen = next(note for note in report["notes"] if note.startswith("chose"))
    assert "k = 1 (box blocks" in chosen and "direct box blocks" not in chosen


def test_the_direct_box_blocks_are_tried_where_the_box_blocks_bound_rules_those_out():
    """Seeded random ranks on 3x8 A100: the box blocks' runs follow the ranks and load the NICs
    unevenly (150 GB/s allgather bound), the direct ones pair GPUs by role (300, the fabric's bound).
    The first box-block candidate failing the bound test had ended the search for both."""
    topology = load("dgx-a100", {"boxes": "3"})
    order = list(range(24))
    random.Random(12345).shuffle(order)
    shuffled = dataclasses.replace(topology, ranks=tuple(topology.ranks[i] for i in order))
    result = compile_schedule(shuffled, CompileOptions(coll="allgather"))
    assert result.solution.forest.layout == "direct box blocks"
    assert result.solution.forest.allgather_algbw == 300


@same_worker("dgx1", 1)
def test_on_1x8_v100_allgather_both_packing_orders_are_simulated_and_the_breadth_first_file_wins():
    """DGX-1's single and double NVLinks: the breadth-first trees of k = 16 simulate at 162.4 GB/s at
    1 GiB (0.95 of the power-of-two bound), the usual packings at most 160.8 (bench_predict)."""
    report, program = _shared_report("dgx1", 1, "allgather")
    chosen = next(note for note in report["notes"] if note.startswith("chose"))
    assert chosen.startswith("chose k = 16 (breadth-first trees")
    assert "k = 16: " in chosen and "k = 8 (breadth-first trees): " in chosen  # both orders simulated
    assert report["layout"] == "breadth-first trees" and report["warnings"] == 0
    assert "-k16-bfs-" in program


def test_no_breadth_first_candidates_for_a_users_k_or_where_the_reduce_forest_is_solved_apart():
    state = begin(load("dgx1", {}), CompileOptions(coll="allgather", k=2))
    driver._price_step(state)
    assert not any(candidate.breadth_first for candidate in state.candidates)
    state = begin(load("dgx1", {}), CompileOptions(coll="allgather"))
    driver._price_step(state)
    # the k's own forests again, not their twins on the runtime's paths (packed another way)
    priced = [c for c in state.candidates if not (c.breadth_first or c.routed)]
    assert [c.solve_k for c in state.candidates if c.breadth_first] == [c.solve_k for c in priced]
    state.separate_reduce = True  # an allreduce on a fabric whose two directions differ
    assert driver._breadth_first_candidates(state) == []


@same_worker("dgx-a100", 2)
def test_a_k_whose_usual_packing_simulates_well_below_the_fastest_gets_no_breadth_first_try():
    """2x8 A100 allreduce: k = 8's usual lowerings simulate at most 156.3 GB/s at 1 GiB against k = 1's
    171.0 (more than 3 % below), so its breadth-first trees (164.0) are not lowered."""
    report, _ = _shared_report("dgx-a100", 2, "allreduce")
    chosen = next(note for note in report["notes"] if note.startswith("chose"))
    assert "k = 8: " in chosen and "breadth-first" not in chosen


PARALLEL_UNEQUAL = """name: parallel-unequal
nodes:
  - {name: gpu, kind: gpu, count: 4}
links:
  - {src: "gpu{i}", dst: "gpu{j}", bandwidth: 25, where: i < j}
  - {src: gpu0, dst: gpu1, bandwidth: 75, directed: true}
  - {src: gpu2, dst: gpu3, bandwidth: 75, directed: true}
"""


def test_on_unequal_one_way_links_the_rank_order_no_longer_decides_the_file(tmp_path):
    """4 GPUs, 25 GB/s every pair plus a 75 GB/s one-way link 0->1 and 2->3: widest first, gpu0's tree
    took 0->1->... before the direct 25 GB/s arcs and was taller, 43.3 GB/s allgather at 1 MiB against
    NCCL's ring 52.5, while the same fabric with ranks 1, 0, 3, 2 got 61.7. Breadth first, both get it."""
    figures = []
    for ranks in ("", "ranks: [gpu1, gpu0, gpu3, gpu2]\n"):
        path = tmp_path / "fabric.yaml"
        path.write_text(PARALLEL_UNEQUAL + ranks)
        report = _json(tmp_path, str(path), "--coll", "allgather")
        by_size = {row["bytes"]: row for row in report["predicted"]}
        figures.append(by_size[2**20]["algbw"])
        assert by_size[2**20]["algbw"] > 1.15 * by_size[2**20]["ring_algbw"]
    assert abs(figures[0] - figures[1]) < 0.01 * figures[1]
