"""Box-block forests (`collc.solver.blocks`): valid spanning trees, the network's load spread evenly,
and the fabric's bound reached where the network is the bottleneck."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collc.capacity import capacity_graph
from collc.solver.blocks import (
    box_block_forest,
    box_block_solution,
    box_layout,
    direct_merges_as_well,
    entry_roles,
    merged_steps,
    own_roles,
)
from collc.solver.bound import optimal_bound
from collc.solver.invariants import arc_loads, check_forest
from collc.solver.symmetry import automorphisms
from collc.topology import load


def _optimum(topology) -> Fraction:
    graph = capacity_graph(topology)
    return optimal_bound(graph, automorphisms(topology, graph)).allgather_algbw


@pytest.mark.parametrize(
    ("preset", "boxes"),
    [("dgx-h100-rail", 2), ("dgx-h100-rail", 3), ("dgx-a100", 4), ("dgx-h100", 2), ("mi300x", 2)],
)
def test_the_forest_meets_every_invariant_at_its_own_bound(preset: str, boxes: int) -> None:
    topology = load(preset, {"boxes": str(boxes)})
    solution = box_block_solution(topology)
    assert solution is not None and solution.forest.blocks
    check_forest(solution.forest, topology, solution.bound)
    assert max(tree.height() for tree in solution.forest.trees) <= 3


@pytest.mark.parametrize(("preset", "boxes"), [("dgx-h100-rail", 16), ("dgx-a100", 4), ("dgx-h100-rail", 9)])
def test_where_the_network_binds_the_trees_reach_the_fabrics_bound(preset: str, boxes: int) -> None:
    """Each GPU sends and receives B - 1 trees through its NIC or rail: the optimum's load there."""
    topology = load(preset, {"boxes": str(boxes)})
    forest = box_block_forest(topology)
    assert forest is not None
    assert forest.allgather_algbw == _optimum(topology)


def _shared_nic_fabric(tmp_path, boxes: int, nics_on: str) -> object:
    """``boxes`` boxes of 8 GPUs on an NVSwitch (300 GB/s) with 8 NICs of 25 GB/s, NIC ``i`` of every
    box on rail ``i``, written flat. ``nics_on``: ``switch``, all 8 NICs on the NVSwitch; ``pcie``, two
    GPUs and two NICs under each of 4 PCIe switches (64 GB/s), as in a DGX A100. Either way a GPU
    reaches several NICs in as many hops."""
    nodes, links = [], []
    for b in range(boxes):
        nodes.append(f"  - {{name: b{b}.nvswitch, kind: switch}}")
        for i in range(8):
            nodes += [f"  - {{name: b{b}.gpu{i}, kind: gpu}}", f"  - {{name: b{b}.nic{i}, kind: nic}}"]
            links.append(f"  - {{src: b{b}.gpu{i}, dst: b{b}.nvswitch, bandwidth: 300}}")
            links.append(f"  - {{src: b{b}.nic{i}, dst: rail{i}, bandwidth: 25}}")
            hub = f"b{b}.nvswitch" if nics_on == "switch" else f"b{b}.pcie{i // 2}"
            links.append(f"  - {{src: b{b}.nic{i}, dst: {hub}, bandwidth: 25}}")
            if nics_on == "pcie":
                links.append(f"  - {{src: b{b}.gpu{i}, dst: {hub}, bandwidth: 64}}")
        if nics_on == "pcie":
            nodes += [f"  - {{name: b{b}.pcie{p}, kind: switch}}" for p in range(4)]
    nodes += [f"  - {{name: rail{i}, kind: switch}}" for i in range(8)]
    path = tmp_path / f"{nics_on}.yaml"
    path.write_text("\n".join(["name: shared-nics", "nodes:", *nodes, "links:", *links, ""]))
    return load(path)


@pytest.mark.parametrize("nics_on", ["switch", "pcie"])
def test_gpus_that_reach_several_nics_alike_spread_over_them(tmp_path, nics_on: str) -> None:
    """Where a GPU reaches several NICs in as many hops, the trees' network pairs are spread over
    them by load (heaviest pairs first), and the forest reaches the fabric's bound, 266.7 GB/s. The
    first path by name sent a box through one NIC (33.3 with the NICs on the NVSwitch, 133.3 under
    PCIe switches), pairs in rank order reach 160.0."""
    topology = _shared_nic_fabric(tmp_path, 4, nics_on)
    forest = box_block_forest(topology)
    assert forest is not None
    check_forest(forest, topology, box_block_solution(topology).bound)
    assert forest.allgather_algbw == _optimum(topology)
    paths = [edge.path for tree in forest.trees for edge in tree.edges]
    crossing = [path for path in paths if any(node.startswith("rail") for node in path)]
    exits = {next(node for node in path if ".nic" in node) for path in crossing}
    assert len(exits) == 4 * 8  # every NIC of every box carries trees


def test_two_boxes_are_bound_by_the_switch_inside_the_box() -> None:
    """With two boxes every peer forwards 8 trees to 7 box-mates: 14 trees per GPU on a 450 GB/s
    NVSwitch port against 1 on a 50 GB/s rail, so these trees reach 16·450/14, below the optimum."""
    topology = load("dgx-h100-rail", {"boxes": "2"})
    forest = box_block_forest(topology)
    assert forest is not None
    assert forest.allgather_algbw == Fraction(16 * 450, 14) < _optimum(topology)


def _cyclic(boxes: int, per_box: int) -> list[list[int]]:
    """The ranks of every box where the ranks go round the boxes (rank r in box r mod B)."""
    return [list(range(box, boxes * per_box, boxes)) for box in range(boxes)]


def _consecutive(boxes: int, per_box: int) -> list[list[int]]:
    return [list(range(box * per_box, (box + 1) * per_box)) for box in range(boxes)]


@given(st.integers(2, 12), st.integers(1, 9), st.sampled_from([_consecutive, _cyclic]))
def test_every_gpu_sends_and_receives_as_many_trees_across_the_network(
    boxes: int, per_box: int, layout
) -> None:
    """The entry roles (module docstring), with boxes of consecutive ranks or ranks going round the
    boxes: every (box, role) receives B - 1 trees, and every GPU is the gateway of B - 1 (brute force
    over all roots and destination boxes)."""
    ranks = layout(boxes, per_box)
    box_of = {rank: b for b, box in enumerate(ranks) for rank in box}
    runs = entry_roles(ranks)
    received: Counter[tuple[int, int]] = Counter()
    sent: Counter[int] = Counter()
    for root in range(boxes * per_box):
        for destination in range(boxes):
            if destination != box_of[root]:
                role = runs[destination][root]
                assert 0 <= role < per_box
                received[(destination, role)] += 1
                sent[ranks[box_of[root]][role]] += 1
    assert set(received.values()) == {boxes - 1}
    assert set(sent.values()) == {boxes - 1}


def test_the_runs_of_boxes_of_consecutive_ranks_start_after_the_box() -> None:
    """Box 1 of 3 boxes of 2: the outside ranks from rank 4 on (4, 5, 0, 1) make runs of B - 1 = 2."""
    assert entry_roles(_consecutive(3, 2))[1] == {4: 0, 5: 0, 0: 1, 1: 1}


def test_rail_loads_are_even() -> None:
    topology = load("dgx-h100-rail", {"boxes": "5"})
    forest = box_block_forest(topology)
    assert forest is not None
    rails = {arc: load for arc, load in arc_loads(forest).items() if "rail" in arc[0] or "rail" in arc[1]}
    assert set(rails.values()) == {4}  # B - 1 on every arc to and from a rail switch


@pytest.mark.parametrize(("preset", "boxes"), [("mi250", 2), ("dgx1", 2), ("dgx-a100", 1)])
def test_no_forest_without_a_switch_inside_every_box_or_a_second_box(preset: str, boxes: int) -> None:
    """MI250 and DGX-1 boxes join some GPU pairs only through other GPUs."""
    assert box_block_forest(load(preset, {"boxes": str(boxes)})) is None


def _reordered(topology, order: list[list[int]]):
    """``topology`` with its ranks renumbered: rank r is the GPU of box-by-box rank ``order``'s r-th."""
    ranks = [None] * topology.num_gpus
    for box, members in enumerate(order):
        for role, rank in enumerate(members):
            ranks[rank] = topology.ranks[box * len(members) + role]
    return dataclasses.replace(topology, ranks=tuple(ranks))


def test_ranks_that_go_round_the_boxes_reach_the_fabrics_bound() -> None:
    """A launcher's cyclic distribution (rank r in box r mod B) keeps every rail's load at B - 1, so
    the trees still reach the optimum; before, such a fabric had no box blocks at all."""
    topology = _reordered(load("dgx-h100-rail", {"boxes": "5"}), _cyclic(5, 8))
    assert box_layout(topology) == _cyclic(5, 8)
    solution = box_block_solution(topology)
    assert solution is not None
    check_forest(solution.forest, topology, solution.bound)
    assert solution.forest.allgather_algbw == _optimum(topology)


def test_any_rank_order_with_the_same_roles_in_every_box_gets_valid_trees() -> None:
    topology = load("dgx-h100-rail", {"boxes": "2"})
    ranks = list(topology.ranks)
    ranks[7], ranks[8] = ranks[8], ranks[7]  # b1.gpu0 before b0.gpu7: roles still in the same order
    swapped = dataclasses.replace(topology, ranks=tuple(ranks))
    assert box_layout(swapped) == [[*range(7), 8], [7, *range(9, 16)]]
    solution = box_block_solution(swapped)
    assert solution is not None
    check_forest(solution.forest, swapped, solution.bound)
    assert box_layout(topology) == [list(range(8)), list(range(8, 16))]


def test_boxes_whose_ranks_hold_the_roles_in_other_orders_pair_gpus_by_role() -> None:
    """Random ranks (a seeded shuffle) on 3x8 A100: every box is listed in the first box's role order,
    so the direct box blocks still join the GPUs of one role across the network, on its NIC, and reach
    the fabric's bound. Boxes whose ranks held the roles in different orders had no box blocks."""
    topology = load("dgx-a100", {"boxes": "3"})
    order = list(range(24))
    random.Random(12345).shuffle(order)
    shuffled = dataclasses.replace(topology, ranks=tuple(topology.ranks[i] for i in order))
    boxes = box_layout(shuffled)
    assert boxes is not None
    roles = [[shuffled.node(shuffled.ranks[rank]).role for rank in box] for box in boxes]
    assert roles == [roles[0]] * 3 and sorted(boxes[1]) != boxes[1]  # not in rank order
    solution = box_block_solution(shuffled, direct=True)
    assert solution is not None
    check_forest(solution.forest, shuffled, solution.bound)
    assert solution.forest.allgather_algbw == _optimum(shuffled)
    role = {rank: shuffled.node(shuffled.ranks[rank]).role for box in boxes for rank in box}
    for tree in solution.forest.trees:
        across = [edge for edge in tree.edges if any(".nic" in node for node in edge.path)]
        assert all(role[edge.src] == role[edge.dst] for edge in across)


@pytest.mark.parametrize(("preset", "boxes"), [("dgx-a100", 4), ("dgx-h100-rail", 5), ("mi300x", 3)])
def test_direct_box_blocks_are_two_hops_high_at_the_same_load(preset: str, boxes: int) -> None:
    """Every root sends to its own role in every other box itself: trees 2 GPU hops high instead of 3,
    every arc at the box blocks' load, so the same U."""
    topology = load(preset, {"boxes": str(boxes)})
    direct, runs = box_block_solution(topology, direct=True), box_block_solution(topology)
    assert direct is not None and runs is not None and direct.forest.direct
    check_forest(direct.forest, topology, direct.bound)
    assert max(tree.height() for tree in direct.forest.trees) == 2
    assert max(tree.height() for tree in runs.forest.trees) == 3
    assert direct.forest.U == runs.forest.U
    per_box = topology.num_gpus // boxes
    for tree in direct.forest.trees:  # the network pairs join GPUs of one role
        crossing = [edge for edge in tree.edges if edge.src // per_box != edge.dst // per_box]
        assert len(crossing) == boxes - 1
        assert all(edge.src == tree.root and edge.dst % per_box == tree.root % per_box for edge in crossing)


def test_with_two_boxes_direct_box_blocks_are_the_box_blocks() -> None:
    topology = load("dgx-h100-rail", {"boxes": "2"})
    assert box_block_forest(topology, direct=True).trees == box_block_forest(topology).trees


def test_direct_box_blocks_merge_as_well_only_where_the_ranks_go_round_the_boxes() -> None:
    """Boxes of consecutive ranks: a peer forwards the roots of one role, G ranks apart, one step
    each (B - 1 per box-mate); ranks round the boxes: one round per role, cut once by the box's own
    rank. Brute-force count on 13x8."""
    boxes, per_box = 13, 8
    consecutive, cyclic = _consecutive(boxes, per_box), _cyclic(boxes, per_box)
    assert merged_steps(consecutive, own_roles(consecutive)) > 4 * merged_steps(
        consecutive, entry_roles(consecutive)
    )
    assert (
        merged_steps(cyclic, own_roles(cyclic)) <= merged_steps(cyclic, entry_roles(cyclic)) + boxes * per_box
    )
    rails = load("dgx-h100-rail", {"boxes": "13"})
    assert not direct_merges_as_well(rails)
    assert direct_merges_as_well(_reordered(rails, _cyclic(boxes, per_box)))


def test_same_trees_ignores_the_order_of_trees_and_edges_but_not_a_path() -> None:
    forest = box_block_forest(load("dgx-h100-rail", {"boxes": "3"}))
    shuffled = dataclasses.replace(
        forest,
        trees=tuple(dataclasses.replace(tree, edges=tree.edges[::-1]) for tree in reversed(forest.trees)),
    )
    assert forest.same_trees(shuffled) and forest.trees != shuffled.trees
    first = forest.trees[0]
    moved = dataclasses.replace(first.edges[0], path=(*first.edges[0].path[:-1], "elsewhere"))
    changed = dataclasses.replace(
        forest, trees=(dataclasses.replace(first, edges=(moved, *first.edges[1:])), *forest.trees[1:])
    )
    assert not forest.same_trees(changed)
