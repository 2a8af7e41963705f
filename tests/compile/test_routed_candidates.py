"""Compile tries forests on the runtime's paths (collc.solver.routed) where the exact forest's routes
are not the runtime's, and only there."""

import pickle
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from collc.capacity import capacity_graph
from collc.compile import CompileOptions, CompileResult, compile_schedule, driver
from collc.compile.driver import _loses_route, _next_candidate, _runtime_routes, advance, begin, next_step
from collc.compile.report import report_lines
from collc.lowering.layout import equal_shares
from collc.lowering.lower import coll_algbw
from collc.solver.bound import MAX_K, fixed_k_bound, optimal_bound
from collc.solver.pipeline import solve
from collc.solver.routed import on_route_algbw
from collc.topology.presets import load
from collc.verify import verify

FIXTURES = Path(__file__).parents[1] / "solver" / "fixtures"
TWO_SOCKETS = FIXTURES / "pcie-2socket-x2.yaml"  # a NIC per socket: the runtime picks the socket's NIC
ONE_NIC = FIXTURES / "pcie-2box.yaml"  # one NIC per box: every route into a box is the runtime's
LEAF_SPINE = Path(__file__).parent / "fixtures" / "oversubscribed-leaves.yaml"  # flat, two spines
RAILS_SLOW_DOWN = Path(__file__).parent / "fixtures" / "rails-slow-down-2x4.yaml"  # NICs taking in less

pytestmark = pytest.mark.xdist_group("routed")  # one worker compiles the module's fixture once


@pytest.fixture(scope="module")
def compiled() -> CompileResult:
    """The dual-socket allgather as compile writes it."""
    return compile_schedule(load(TWO_SOCKETS), CompileOptions(coll="allgather"))


def test_the_routed_forest_is_chosen_and_beats_every_exact_forest(compiled: CompileResult) -> None:
    """No file of an exact forest carries more than that forest on the runtime's paths (at most 33.3
    GB/s here, k = 1); the routed file simulates above all of them at 1 GiB."""
    forest = compiled.solution.forest
    assert forest.routed and forest.layout == "trees on the runtime's paths"
    assert "-routed-" in compiled.algorithm.name
    topology = compiled.topology
    paths = _runtime_routes(begin(topology, compiled.options))
    exact = max(
        on_route_algbw(solve(topology, k=k).forest, "allgather", paths, topology.arc_bandwidths())
        for k in (1, 2, 4, 8)
    )
    at = {row.nbytes: row.algbw for row in compiled.predicted}
    assert float(exact) < at[1 << 30] <= float(compiled.bound_algbw)
    assert not verify(compiled.algorithm, runtime=compiled.runtime, topology=topology).errors
    assert "trees on the runtime's paths" in " ".join(compiled.notes)


@pytest.mark.parametrize(
    ("fabric", "k", "loses"), [(TWO_SOCKETS, 2, True), (ONE_NIC, 1, False), (ONE_NIC, 4, False)]
)
def test_a_routed_forest_is_solved_only_where_the_exact_one_loses_on_the_runtime_paths(
    fabric, k, loses
) -> None:
    state = begin(load(fabric), CompileOptions(coll="allgather"))
    assert _loses_route(state, solve(state.topology, k=k).forest) is loses


@pytest.mark.parametrize("pickled", [False, True])
def test_the_routed_solve_runs_in_slices_and_writes_the_same_file(compiled, monkeypatch, pickled) -> None:
    """Like the exact solve, the routed one is cut into steps a service can stop between (its
    generation's rounds, integer programs and descents; on 64 GPUs it runs for about a minute in
    all): with every slice as short as can be, the routed forests take many forest steps and the
    file is the one written whole. A state pickled after every step (a service that spills it) drops
    a routed solve part way through and runs it whole, with the same file."""
    monkeypatch.setattr(driver, "SLICE_SECONDS", 0.0)
    state = begin(compiled.topology, compiled.options)
    routed_steps = 0
    while (name := next_step(state)) != "done":
        if name == "forest":
            assert state.candidates is not None
            index = _next_candidate(state)
            routed_steps += index is not None and state.candidates[index].routed
        advance(state)
        if pickled:
            state = pickle.loads(pickle.dumps(state))
    assert state.result is not None and state.result.xml == compiled.xml
    assert routed_steps >= 10 or pickled


SLOW_GPU = Path(__file__).parent / "fixtures" / "slow-gpu-2x4.yaml"  # b1g2's switch link at 50 GB/s


@pytest.fixture(scope="module")
def slow_gpu() -> CompileResult:
    """The allreduce of two boxes with one slow GPU, on even/odd network planes, as compile writes it."""
    return compile_schedule(load(SLOW_GPU), CompileOptions(coll="allreduce"))


def test_a_slow_gpus_allreduce_runs_on_trees_packed_for_both_halves(slow_gpu: CompileResult) -> None:
    """Reduce-scatter then allgather allows 42.9 GB/s; the slow GPU's links allow 75 each way. The
    written trees are on the runtime's paths, packed for both halves at once (72.7 GB/s at most at
    k = 4), and the file simulates at 68.7 at 1 GiB (44.8 with the allgather trees run both ways,
    NCCL's ring 28.5). Every edge between boxes stays on one plane, the even or the odd GPUs', and
    never relays through a GPU. Fails if the halves are not packed together (:func:`driver.
    halves_overlap`) or planes keep the routed forests out."""
    forest = slow_gpu.solution.forest
    assert forest.routed and forest.allreduce_U is not None
    assert slow_gpu.bound_algbw == Fraction(300, 7)
    assert slow_gpu.file_bound_algbw == forest.num_gpus * forest.k / forest.allreduce_U > 70
    equal = equal_shares(forest.num_gpus, forest.k)  # the same loop, counted by the roots' shares
    bandwidths = slow_gpu.topology.arc_bandwidths()
    by_shares = coll_algbw(forest, "allreduce", shares=equal, arc_bandwidths=bandwidths)
    assert by_shares == slow_gpu.file_bound_algbw
    at = {row.nbytes: row.algbw for row in slow_gpu.predicted}
    assert 66 < at[1 << 30] <= slow_gpu.model.ceiling_algbw("allreduce") == 75
    assert at[64 << 20] > 55
    topology = slow_gpu.topology
    planes = {"even": {0, 2}, "odd": {1, 3}}
    for tree in forest.trees:
        for edge in tree.edges:
            src, dst = topology.ranks[edge.src], topology.ranks[edge.dst]
            if src[:2] != dst[:2]:  # between boxes: through the plane of both ends' GPU index
                (plane,) = [name for name in planes if name in edge.path]
                assert {int(src[-1]), int(dst[-1])} <= planes[plane]
    assert not verify(slow_gpu.algorithm, runtime=slow_gpu.runtime, topology=topology).errors
    report = "\n".join(report_lines(slow_gpu, "x.xml"))
    assert "(69.70 % over the bound above: these trees carry both halves at once" in report
    assert "above the reduce-scatter + allgather bound; no allreduce exceeds 75.0 GB/s algbw" in report


def test_a_fabric_whose_gpus_are_alike_solves_no_forest_for_both_halves() -> None:
    """Where every GPU's links add up alike, packing for both halves is worth no more than for one
    (every preset: the linear program gives the reduce-scatter + allgather figure), so it is not
    solved; with one GPU slower it is."""
    healthy = begin(load("dgx-a100", {"boxes": "2"}), CompileOptions(coll="allreduce"))
    assert not healthy.overlapping
    assert begin(load(SLOW_GPU), CompileOptions(coll="allreduce")).overlapping
    assert not begin(load(SLOW_GPU), CompileOptions(coll="allgather")).overlapping


@pytest.fixture(scope="module")
def leaf_spine() -> CompileResult:
    """The allreduce of two oversubscribed leaves under two spines, as compile writes it."""
    return compile_schedule(load(LEAF_SPINE), CompileOptions(coll="allreduce"))


def test_oversubscribed_leaves_get_trees_for_both_halves_and_beat_the_runtime(leaf_spine) -> None:
    """The GPUs' own links are alike, but the allgather fills the leaves' uplinks inward and the
    reduce-scatter outward: one after the other 15.0 GB/s, both at once priced at 17.8
    (:func:`collc.solver.overlap.overlap_algbw`). The routed trees packed for both halves simulate at
    16.4 at 1 GiB against NCCL's ring at 15.0 (the exact forests reach 14.4, and compile wrote
    nothing), and the file takes 64 MiB and up. Its trees' bound is a bound of the file: counted
    with the halves apart on the roots' shares (12.5) or on the trees' own paths rather than over both
    spines as the network spreads them (12.5), the file would beat it."""
    assert begin(leaf_spine.topology, leaf_spine.options).overlapping
    forest = leaf_spine.solution.forest
    assert forest.routed and forest.allreduce_U is not None
    assert leaf_spine.bound_algbw == 15
    at = {row.nbytes: row for row in leaf_spine.predicted}
    big, mid = at[1 << 30], at[64 << 20]
    assert big.selected and mid.selected
    assert big.algbw > 1.05 * big.vendor_algbw and mid.algbw > mid.vendor_algbw
    assert 16 < big.algbw <= leaf_spine.file_bound_algbw <= leaf_spine.model.ceiling_algbw("allreduce") == 25
    assert not verify(leaf_spine.algorithm, runtime=leaf_spine.runtime, topology=leaf_spine.topology).errors


def test_a_pair_between_boxes_has_a_route_per_plane_and_none_through_another_gpu() -> None:
    """Even and odd planes, no spine: b0g0 reaches b1g2 on the even plane only (on the odd one the
    runtime relays through an odd GPU), b1g1 on neither; GPUs of one box have their switch path."""
    state = begin(load(SLOW_GPU), CompileOptions(coll="allreduce"))
    routes, rank = _runtime_routes(state), state.topology.ranks.index
    assert state.planes == {"even": 0, "odd": 1}
    assert routes[(rank("b0g0"), rank("b1g2"))] == (("b0g0", "b0nic0", "even", "b1nic2", "b1g2"), None)
    assert routes[(rank("b0g0"), rank("b1g1"))] == (None, None)
    assert routes[(rank("b0g0"), rank("b0g1"))] == (("b0g0", "b0sw", "b0g1"),)


def test_routes_that_cut_a_gpu_off_leave_the_exact_forests_alone(monkeypatch) -> None:
    """Where the runtime would relay every route to some GPU through other GPUs, no forest can be
    packed on the routes: compile keeps to the exact forests instead of failing in the program."""
    state = begin(load(SLOW_GPU), CompileOptions(coll="allreduce"))
    assert driver._routes_span(state)
    routes = dict(_runtime_routes(state))
    for u in range(state.topology.num_gpus):
        for pair in ((u, 7), (7, u)):
            if pair in routes:
                routes[pair] = (None,) * len(routes[pair])
    state.pair_paths = routes
    assert not driver._routes_span(state)
    monkeypatch.setattr(driver, "_loses_route", lambda state, forest: True)
    solved = state.solutions
    state.candidates = [driver.Candidate(1, None, None), driver.Candidate(1, None, None, routed=True)]
    solved[None] = solve(state.topology, k=1)
    assert not driver._worth_routing(state, state.candidates[1])


def test_a_slow_gpu_on_a_fabric_whose_directions_differ_also_gets_trees_for_both_halves(tmp_path) -> None:
    """The slow GPU's switch link at 50 GB/s up and 70 down: an allreduce there reduces over a forest of
    its own, and the routed trees, packed for both halves on each direction's bandwidth, replace both
    forests: 66.5 GB/s at 1 GiB against 47.4 for the two exact forests (bound 47.9, ceiling 75)."""
    text = SLOW_GPU.read_text().replace(
        "  - {src: b1g2, dst: b1sw, bandwidth: 50}\n",
        "  - {src: b1g2, dst: b1sw, bandwidth: 50, directed: true}\n"
        "  - {src: b1sw, dst: b1g2, bandwidth: 70, directed: true}\n",
    )
    (tmp_path / "asym.yaml").write_text(text)
    topology = load(tmp_path / "asym.yaml")
    state = begin(topology, CompileOptions(coll="allreduce"))
    assert state.separate_reduce and state.overlapping
    result = compile_schedule(topology, CompileOptions(coll="allreduce"))
    assert result.solution.forest.routed
    at = {row.nbytes: row.algbw for row in result.predicted}
    assert 60 < at[1 << 30] <= 75
    assert not verify(result.algorithm, runtime=result.runtime, topology=topology).errors


def test_the_wide_search_reaches_the_routed_forests_of_an_allreduce_with_a_reduce_forest_of_its_own() -> None:
    """Rails whose GPUs take in less than they send (two of eight, tests/compile/fixtures): the
    allreduce reduces over a forest of its own, and its exact k's balanced forests allow at most
    100-101 GB/s. They and the routed k = 4 fill the first simulated places; the wide search then goes
    on (the exact k priced by both forests' bounds, the routed twins at the fabric's ceiling), and the
    routed k = 2 simulates at 148.7 GB/s at 1 GiB of its trees' 150.0 (where the search stopped after
    the first places, the file was the routed k = 4 at 135.4)."""
    topology = load(RAILS_SLOW_DOWN)
    state = begin(topology, CompileOptions(coll="allreduce"))
    assert state.separate_reduce and state.overlapping
    result = compile_schedule(topology, CompileOptions(coll="allreduce"))
    forest = result.solution.forest
    assert forest.routed and forest.k == 2
    at = {row.nbytes: row for row in result.predicted}
    assert 145 < at[1 << 30].algbw <= result.file_bound_algbw == 150
    assert at[1 << 30].selected and at[64 << 20].selected
    assert not verify(result.algorithm, runtime=result.runtime, topology=topology).errors


def test_an_allreduce_with_a_reduce_forest_of_its_own_prices_every_k_by_both_forests() -> None:
    """Where the two directions differ, each exact k is priced by both halves' bounds at that k: one
    after the other, 1 / (1 / AG_k + 1 / RS_k), the reduce-scatter's on the reversed fabric. The wide
    search compares these prices with the fastest simulated; unpriced, they were passed over."""
    topology = load(RAILS_SLOW_DOWN)
    candidates, _, _ = driver._k_candidates(topology, CompileOptions(coll="allreduce"), 1)
    graph = capacity_graph(topology)
    assert driver.two_forests(topology, "allreduce") and candidates
    for candidate in candidates:
        assert candidate.k is not None
        gather = fixed_k_bound(graph, candidate.k).allgather_algbw
        scatter = fixed_k_bound(graph.reversed(), candidate.k).allgather_algbw
        assert candidate.bound == 1 / (1 / gather + 1 / scatter)


def test_an_allreduce_whose_optimum_k_the_reduce_half_cannot_take_is_priced_at_the_other_k() -> None:
    """2x8 MI300X with one xGMI link slowed to 0.9 one way: the optimum is k = 1,229, above the
    solver's MAX_K, so the reduce half cannot be solved there; the other k are priced (before, the
    compile failed with an error about a --k the user never gave)."""
    topology = load("mi300x", {"boxes": "2"})
    slowed = next(link for link in topology.links if (link.src, link.dst) == ("b1.gpu0", "b1.gpu1"))
    one_way = [replace(slowed, directed=True), replace(slowed, src=slowed.dst, dst=slowed.src, directed=True)]
    one_way[1] = replace(one_way[1], bandwidth=slowed.bandwidth * Fraction(9, 10))
    links = tuple(link for link in topology.links if link is not slowed) + tuple(one_way)
    topology = replace(topology, links=links)
    assert optimal_bound(capacity_graph(topology)).k > MAX_K
    candidates, notes, _ = driver._k_candidates(topology, CompileOptions(coll="allreduce"), 1)
    assert candidates and all(candidate.k is not None and candidate.k <= MAX_K for candidate in candidates)
    assert any("k = 1229 (the optimum)" in note for note in notes)
