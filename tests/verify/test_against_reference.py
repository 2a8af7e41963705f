"""The event-driven simulator agrees with a naive round-robin reference on mutated small programs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from collc.verify import simulation_cases
from collc.verify.fold import fold_threadblock
from collc.verify.lint import BLOCKS_SIMULATION, lint
from collc.verify.runtimes import profile
from collc.verify.simulate import simulate

from . import reference
from .programs import mutate, mutation

# Two threadblocks on one connection hang or corrupt data (lint's duplicate-connection error): which one
# a message meets is a race the runtime leaves open, so the simulator and the reference, which order
# those threadblocks differently, may each report a different failure of the same broken program.
UNDEFINED = BLOCKS_SIMULATION | {"duplicate-connection"}


@settings(max_examples=200, deadline=None, derandomize=True)  # the same examples in every run
@given(
    st.sampled_from(["ring_allgather_4", "ring_allreduce_4x2", "tree_allreduce_3"]),
    st.lists(mutation, max_size=3),
)
def test_simulator_agrees_with_the_reference(name: str, mutations) -> None:
    algo = mutate(name, mutations)
    algo.inplace, algo.outofplace = 0, 1
    folded = {(gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs}
    problems = lint(algo, profile("msccl-executor"), folded)
    if any(p.rule in UNDEFINED for p in problems if p.severity == "error"):
        return
    for case in simulation_cases(algo):
        rules = {p.rule for p in simulate(algo, algo.coll, folded, case)}
        outcome = reference.run(algo, folded, case.depth, case.call_chunks)
        assert outcome.mismatch == ("cnt-mismatch" in rules), (case, rules)
        if outcome.mismatch:
            continue
        assert (not outcome.finished) == ("deadlock" in rules), (case, rules)
        if outcome.finished:
            assert outcome.leftover == ("leftover-message" in rules), (case, rules)
            if case.placements and "race" not in rules:
                assert outcome.postcondition_holds == ("postcondition" not in rules), (case, rules)
