"""Trees that carry both allreduce halves at once, priced by a linear program (`collc.solver.overlap`)."""

from __future__ import annotations

from fractions import Fraction as F

from collc.capacity import capacity_graph
from collc.solver.bound import optimal_bound
from collc.solver.ceiling import allreduce_ceiling
from collc.solver.cutprogram import CutProgram
from collc.solver.overlap import overlap_algbw
from collc.topology.model import Link, Node, Topology
from collc.topology.presets import load


def leaf_spine(leaves: list[tuple[int, F]]) -> Topology:
    """One spine switch over a leaf switch per ``(gpus, uplink)`` of ``leaves``: each GPU on a NIC of
    its own (32 GB/s), each NIC on its leaf at 50 GB/s, each leaf on the spine at ``uplink``."""
    nodes, links, ranks = [Node("spine", "switch")], [], []
    for leaf, (gpus, uplink) in enumerate(leaves):
        nodes.append(Node(f"leaf{leaf}", "switch"))
        links.append(Link(f"leaf{leaf}", "spine", uplink))
        for g in range(gpus):
            gpu, nic = f"l{leaf}g{g}", f"l{leaf}nic{g}"
            ranks.append(gpu)
            nodes += [Node(gpu, "gpu"), Node(nic, "nic")]
            links += [Link(gpu, nic, F(32)), Link(nic, f"leaf{leaf}", F(50))]
    return Topology("leaf-spine", tuple(nodes), tuple(links), tuple(ranks))


def one_switch() -> Topology:
    """Eight GPUs on one switch at 300 GB/s."""
    nodes = (Node("sw", "switch"), *(Node(f"g{i}", "gpu") for i in range(8)))
    links = tuple(Link(f"g{i}", "sw", F(300)) for i in range(8))
    return Topology("box", nodes, links, tuple(f"g{i}" for i in range(8)))


def one_after_the_other(topology: Topology) -> F:
    graph = capacity_graph(topology)
    gather, scatter = optimal_bound(graph), optimal_bound(graph.reversed())
    return 1 / (1 / gather.allgather_algbw + 1 / scatter.allgather_algbw)


def test_a_narrow_leaf_uplink_is_filled_both_ways_at_once() -> None:
    """Two GPUs behind a 12.5 GB/s uplink take in 6/8 of the buffer in the allgather and send 6/8 in
    the reduce-scatter: 8.3 GB/s one half after the other. The allgather sends out only their own 2/8
    and the reduce-scatter takes in 2/8, so at once the halves move one buffer each way: 12.5, the
    allreduce ceiling of that cut."""
    topology = leaf_spine([(2, F("12.5")), (2, F(50)), (4, F(50))])
    assert one_after_the_other(topology) == F(25, 3)
    assert overlap_algbw(capacity_graph(topology)) == F(25, 2) == allreduce_ceiling(capacity_graph(topology))


def test_a_switch_does_not_replicate_so_one_box_gains_nothing() -> None:
    """Eight GPUs on one 300 GB/s switch: every GPU sends as much as it takes in, so each half needs
    7/8 of a buffer each way per GPU and running them at once gains nothing (171.4 GB/s). Without the
    switch's balance the program would let each GPU send 1/8 and take in 7/8: the 300 of the cut."""
    topology = one_switch()
    assert overlap_algbw(capacity_graph(topology)) == one_after_the_other(topology) == F(1200, 7)


def test_asked_whether_a_figure_is_reached_it_stops_once_decided(monkeypatch) -> None:
    """Compile asks whether the halves at once beat one after the other by 3 %: on the leaves, the
    first split that reaches it answers yes; on one switch, the program's own x falls below it and
    answers no, and on 8 boxes of 8 A100 (64 GPUs) it does so within a dozen rounds."""
    leaves = leaf_spine([(2, F("12.5")), (2, F(50)), (4, F(50))])
    target = one_after_the_other(leaves) * F(103, 100)
    assert target <= overlap_algbw(capacity_graph(leaves), enough=target) <= F(25, 2)
    target = F(1200, 7) * F(103, 100)
    assert overlap_algbw(capacity_graph(one_switch()), enough=target) < target
    boxes = load("dgx-a100", {"boxes": "8"})
    target = one_after_the_other(boxes) * F(103, 100)
    rounds = []
    solve = CutProgram.solve

    def counted(program):
        rounds.append(1)
        return solve(program)

    monkeypatch.setattr(CutProgram, "solve", counted)
    assert overlap_algbw(capacity_graph(boxes), enough=target) < target
    assert len(rounds) <= 16
