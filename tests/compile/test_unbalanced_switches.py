"""Compile on a fabric whose switches take in and send out different amounts (NICs whose uplink is
faster than their downlink): the cut bound may need a switch to copy data, and the trees are packed
on the fabric with those switches balanced (collc.solver.balance) instead of stopping the compile."""

from fractions import Fraction
from pathlib import Path

import pytest

from collc.compile import CompileOptions, compile_schedule
from collc.compile.report import report_lines
from collc.topology.presets import load
from collc.verify import verify

NIC_UP_DOWN = Path(__file__).parent / "fixtures" / "nic-up-down-3x2.yaml"
NIC_UP_DOWN_3X4 = Path(__file__).parent / "fixtures" / "nic-up-down-3x4.yaml"


def test_a_reduce_scatter_whose_cut_bound_needs_a_copying_switch_compiles_below_it() -> None:
    """Three boxes whose NICs send 25 GB/s up and take in 12.5: the reduce-scatter's cut bound (37.5
    GB/s) would need the network switch to copy data; what goes up comes down, so 18.75 is what any
    tree schedule can reach, and the file simulates at 0.99 of it, 1.25x NCCL's ring. The compile
    used to stop with "no tree schedule reaches the cut bound" (exit 1). The report calls the bound a
    cut bound, not optimal, and says why the trees stay below it."""
    result = compile_schedule(load(NIC_UP_DOWN), CompileOptions(coll="reducescatter"))
    assert result.solution.forest.balanced
    assert result.bound_algbw == Fraction(75, 2)
    assert result.file_bound_algbw == Fraction(75, 4)
    at = {row.nbytes: row for row in result.predicted}
    big = at[max(at)]
    assert 0.95 * 18.75 < big.algbw <= 18.75
    assert big.algbw > 1.2 * max(big.ring_algbw, big.tree_algbw or 0)
    assert not verify(result.algorithm, runtime=result.runtime, topology=result.topology).errors
    report = "\n".join(report_lines(result, "x.xml"))
    assert "algbw (cut bound of reducescatter on this fabric)" in report
    assert "(50.00 % below the bound above)" in report
    assert "switches b0nic, b1nic, b2nic, net take in and send out different amounts" in report


def test_an_allgather_that_splits_the_fabric_as_it_is_meets_its_cut_bound() -> None:
    """The same fabric's allgather splits without balancing (each box's uplink carries what it sends
    once): its trees meet the cut bound, and no balancing note is printed."""
    result = compile_schedule(load(NIC_UP_DOWN), CompileOptions(coll="allgather"))
    assert not result.solution.forest.balanced
    assert result.file_bound_algbw == result.bound_algbw == Fraction(75, 4)
    assert not any("take in and send out different amounts" in line for line in report_lines(result, "x.xml"))


def test_collc_bound_calls_the_figures_cut_bounds_where_a_switch_is_unbalanced() -> None:
    from collc.cli.bound import bounds_text, compute_bounds

    line = "switches b0nic, b1nic, b2nic, net take in and send out different amounts: these are cut bounds"
    assert line in bounds_text(compute_bounds(load(NIC_UP_DOWN)))
    assert "different amounts" not in bounds_text(compute_bounds(load("dgx-a100")))


def test_a_balanced_fabric_that_floors_unevenly_is_evened_out_and_the_program_lifts_the_bound() -> None:
    """Three boxes whose NICs' uplinks and downlinks differ, reduce-scatter. Water-filling balanced the
    fabric at 59.4 GB/s, and at k = 2 its tree capacities (floor(U·b) per arc) left the network switch
    unbalanced: that k had no forest. The cut program balances it at the cut bound, 75 (the NICs'
    excess taken off where no cut needs it), and at k = 2 the forest meets that fabric's bound for
    k = 2, 72 (its capacities floor unevenly too, and are evened out where a split needs it). The
    file simulates at 0.99 of the cut bound (63.8 GB/s before), 2.7x NCCL's ring."""
    from collc.solver.pipeline import solve

    topology = load(NIC_UP_DOWN_3X4)
    assert solve(topology, reverse=True).forest.allgather_algbw == 75
    forest = solve(topology, k=2, reverse=True).forest
    assert forest.balanced and forest.allgather_algbw == 72
    result = compile_schedule(topology, CompileOptions(coll="reducescatter"))
    assert result.bound_algbw == result.file_bound_algbw == 75
    at = {row.nbytes: row for row in result.predicted}
    big = at[max(at)]
    assert 0.99 * 75 < big.algbw <= 75
    assert big.algbw > 2.5 * big.ring_algbw
    assert not verify(result.algorithm, runtime=result.runtime, topology=result.topology).errors


def one_way_switch():
    """A switch fed 50 + 10 GB/s that sends 50 + 30, one way only, among three GPUs."""
    from collc.topology.model import Link, Node, Topology

    one_way = [
        ("g0", "s", 50), ("s", "g1", 50), ("g1", "s", 10),
        ("s", "g2", 30), ("g2", "g0", 40), ("g1", "g0", 20),
    ]  # fmt: skip
    nodes = (Node("g0", "gpu"), Node("g1", "gpu"), Node("g2", "gpu"), Node("s", "switch"))
    links = tuple(Link(a, b, Fraction(bw), directed=True) for a, b, bw in one_way)
    return Topology("one-way-switch", nodes, links, ("g0", "g1", "g2"))


def test_where_every_k_floors_unevenly_the_budget_is_raised_until_the_trees_fit() -> None:
    """The one-way switch balanced (water-filling lowers its 50 GB/s out-arc to 30) has a 45 GB/s
    bound at every k, but its tree capacities floor unevenly at every power of two, and evened out
    they leave a GPU short: the budget is raised until they do not, 37.5 GB/s at k = 1 (a fifth more
    trees per GB/s), 42.8 at k = 2 and 4, 44.4 at k = 8 and 16. No k had a forest, and compile
    stopped; its allgather file now verifies."""
    from collc.solver.pipeline import solve

    topology = one_way_switch()
    figures = {k: solve(topology, k=k).forest.allgather_algbw for k in (1, 2, 4, 8, 16)}
    assert figures == {
        1: Fraction(1536, 41),
        2: Fraction(10240, 239),
        4: Fraction(10240, 239),
        8: Fraction(24576, 553),
        16: Fraction(24576, 553),
    }
    result = compile_schedule(topology, CompileOptions(coll="allgather", force=True))
    assert result.solution.forest.balanced
    assert not verify(result.algorithm, runtime=result.runtime, topology=result.topology).errors


def test_a_fabric_with_no_forest_at_any_k_says_so_in_one_line(monkeypatch) -> None:
    """Where no k's balanced tree capacities can be evened out (as if none carried its bound), no
    candidate has a forest: the error names the switch once, with the k's tried grouped, instead of
    one clause per k under "no schedule fits"."""
    from collc.errors import InfeasibleError
    from collc.solver import pipeline

    monkeypatch.setattr(pipeline, "_evened", lambda bounded: None)
    with pytest.raises(InfeasibleError) as raised:
        compile_schedule(one_way_switch(), CompileOptions(coll="allgather"))
    message = raised.value.message
    assert message.startswith("no forest on one-way-switch: k = 1, 2, 4, 8, 16: no tree schedule reaches")
    assert message.count("switches s have unequal") == 1
    assert raised.value.exit_code == 1
