"""Compile tries forests on the runtime's paths (collc.solver.routed) where the exact forest's routes
are not the runtime's, and only there."""

import pickle
from pathlib import Path

import pytest

from collc.compile import CompileOptions, CompileResult, compile_schedule, driver
from collc.compile.driver import _loses_route, _next_candidate, _runtime_paths, advance, begin, next_step
from collc.solver.pipeline import solve
from collc.solver.routed import on_route_algbw
from collc.topology.presets import load
from collc.verify import verify

FIXTURES = Path(__file__).parents[1] / "solver" / "fixtures"
TWO_SOCKETS = FIXTURES / "pcie-2socket-x2.yaml"  # a NIC per socket: the runtime picks the socket's NIC
ONE_NIC = FIXTURES / "pcie-2box.yaml"  # one NIC per box: every route into a box is the runtime's

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
    paths = _runtime_paths(begin(topology, compiled.options))
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
