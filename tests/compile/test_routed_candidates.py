"""Compile tries forests on the runtime's paths (collc.solver.routed) where the exact forest's routes
are not the runtime's, and only there."""

from pathlib import Path

import pytest

from collc.compile import CompileOptions, CompileResult, compile_schedule, driver
from collc.compile.driver import advance, begin
from collc.topology.presets import load
from collc.verify import verify

FIXTURES = Path(__file__).parents[1] / "solver" / "fixtures"
TWO_SOCKETS = FIXTURES / "pcie-2socket-x2.yaml"  # a NIC per socket: the runtime picks the socket's NIC
ONE_NIC = FIXTURES / "pcie-2box.yaml"  # one NIC per box: every route into a box is the runtime's

pytestmark = pytest.mark.xdist_group("routed")  # one worker compiles the module's fixture once


@pytest.fixture(scope="module")
def compiled() -> dict[str, CompileResult]:
    """The dual-socket allgather compiled as shipped and with the routed candidates turned off."""
    options = CompileOptions(coll="allgather", force=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "ROUTED_MAX_GPUS", 0)
        without = compile_schedule(load(TWO_SOCKETS), options)
    return {"with": compile_schedule(load(TWO_SOCKETS), options), "without": without}


def test_the_routed_forest_is_chosen_and_is_faster(compiled: dict[str, CompileResult]) -> None:
    routed, exact = compiled["with"], compiled["without"]
    forest = routed.solution.forest
    assert forest.routed and forest.layout == "trees on the runtime's paths"
    assert "-routed-" in routed.algorithm.name
    assert not exact.solution.forest.routed
    at = {row.nbytes: row.algbw for row in routed.predicted}
    before = {row.nbytes: row.algbw for row in exact.predicted}
    assert at[1 << 30] > 1.03 * before[1 << 30]
    assert at[1 << 30] <= float(routed.bound_algbw)
    assert not verify(routed.algorithm, runtime=routed.runtime, topology=routed.topology).errors


def test_the_report_names_the_routed_trees(compiled: dict[str, CompileResult]) -> None:
    notes = " ".join(compiled["with"].notes)
    assert "trees on the runtime's paths" in notes


def test_no_routed_forest_is_solved_where_the_runtime_takes_the_exact_routes() -> None:
    state = begin(load(ONE_NIC), CompileOptions(coll="allgather"))
    while state.result is None:
        advance(state)
    assert state.candidates is not None and any(candidate.routed for candidate in state.candidates)
    assert not any(str(key).startswith("routed-") for key in state.solutions)
