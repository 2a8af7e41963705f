"""The compile as steps (collc.compile.driver.advance): the forest solve, the lowering and the verifier
run in slices, the candidates' simulations one per step, so a service can stop a compile between
them; however the steps are cut or the state is pickled between them, the file written is the same."""

from __future__ import annotations

import math
import pickle

import pytest

from collc.compile import CompileOptions, compile_schedule, driver
from collc.compile.driver import _label, advance, begin, next_step
from collc.predict import des
from collc.topology import load

OPTIONS = CompileOptions(coll="allreduce", k=1, max_bytes=1 << 30, user_range=True)


@pytest.fixture(scope="module")
def fabric():
    topology = load("dgx-a100", {"boxes": "2"})
    return topology, compile_schedule(topology, OPTIONS).xml


def _steps(topology, *, pickled: str | None) -> tuple[list[str], str]:
    """The names of the steps a compile runs and its XML; the state makes a round trip through pickle
    after every step named ``pickled`` (``"every"``: after each, as a service that spills every state)."""
    state, names = begin(topology, OPTIONS), []
    for _ in range(1000):
        name = next_step(state)
        if name == "done":
            assert state.result is not None
            return names, state.result.xml
        names.append(name)
        advance(state)
        if pickled in (name, "every"):
            state = pickle.loads(pickle.dumps(state))
    raise AssertionError("the compile never ended")


def test_each_simulation_and_slice_of_a_solve_or_verification_is_a_step(fabric, monkeypatch):
    topology, expected = fabric
    monkeypatch.setattr(driver, "SLICE_SECONDS", 0.0)
    names, xml = _steps(topology, pickled=None)
    assert xml == expected
    assert names.count("forest") >= 3  # the bound, switch removal and the trees packed one by one
    assert names.count("lower") >= 4  # plan, hazards, each assignment and emission
    assert names.count("simulate") >= 2 and names.index("simulate") < names.index("choose")
    assert names.count("verify") >= 2 and names[-1] == "verify"


def test_a_step_dropped_by_pickling_runs_whole_next_time(fabric, monkeypatch):
    """A solve or a verification part way through cannot be pickled: the resumed compile starts that
    step again and runs every step whole from then on, so a compile pickled after every step still
    ends, with the same file."""
    topology, expected = fabric
    monkeypatch.setattr(driver, "SLICE_SECONDS", 0.0)
    names, xml = _steps(topology, pickled="every")
    assert xml == expected
    assert names.count("forest") == 2 and names.count("verify") == 1
    names, xml = _steps(topology, pickled="verify")
    assert xml == expected and names.count("verify") == 2


def test_a_candidate_is_lowered_once_however_its_lowering_is_sliced(monkeypatch):
    """A lowering cut into slices ends before any step reads the fitted candidates, so a search that
    reaches its first candidates while one is part way through does not lower it again: the same
    candidates, each once, and the same file as with every step run whole."""
    topology, options = load("dgx1"), CompileOptions(coll="reducescatter")

    def search(slice_seconds: float) -> tuple[list[str], str]:
        monkeypatch.setattr(driver, "SLICE_SECONDS", slice_seconds)
        state = begin(topology, options)
        while next_step(state) != "done":
            advance(state)
        assert state.result is not None
        return [_label(item) for item in state.fitted], state.result.xml

    labels, xml = search(math.inf)
    assert len(labels) == len(set(labels)) >= 6  # k = 2, 4, 8, 16, lanes split, two instances, paced
    assert search(0.0) == (labels, xml)


def test_the_simulations_of_a_fitted_candidate_start_while_the_next_is_lowered(monkeypatch):
    """Each lowering ends by starting the simulations the simulate step will ask of what it fitted,
    on a spare thread (collc.predict.des.start_ahead): by the first simulate step every one of them
    is made or in flight."""
    monkeypatch.setattr(des, "_threads", 2)
    state = begin(load("dgx-a100", {"boxes": "1"}), CompileOptions(coll="allgather"))
    while next_step(state) != "simulate":
        advance(state)
    wanted = [
        run
        for item in driver.buffer_variants(state.options, state.fitted)
        for run in item.runs([state.reference])
    ]
    costs = {id(item.predictor.inner): item.predictor.inner for item in state.fitted}
    assert len(state.fitted) > 1 and all(cost._runs or cost._ahead for cost in costs.values())
    assert all(run in cost._ahead for cost, run in wanted)
