"""Every wait that feeders-first asks for is emitted: a send waits for *all* its GPU's NIC-feeding sends.

The emitter turns the first wait of a step into its ``depid``/``deps`` and every further wait into a
``nop`` right before it (docs/lowering.md §4-§5). This test watches :func:`collc.lowering.emit.emit`
during a real lowering and checks, send by send, that each feeding send named in ``after`` is waited
for, so dropping the second and later waits fails here.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Any

import pytest

from collc.lowering import LoweringOptions, lower, runtime_limits
from collc.lowering.plan import network_planes
from collc.msccl.program import STEP_TYPES, Algorithm
from collc.solver import solve
from collc.topology import load

emit_module = importlib.import_module("collc.lowering.emit")  # the modules, not the functions
lower_module = importlib.import_module("collc.lowering.lower")  # the package exports by those names

Position = tuple[int, int]  # (threadblock, step index) on one GPU


def _send_positions(plan, assignment, order, algo: Algorithm) -> dict[int, tuple[int, Position]]:
    """transfer index -> (GPU, position of its send step): a threadblock's non-nop steps are its
    events in emission order (:func:`collc.lowering.emit.events_in_order`)."""
    positions: dict[int, tuple[int, Position]] = {}
    events = emit_module.events_in_order(plan, assignment, order)
    steps_of = {
        (gpu.id, tb.id): [index for index, step in enumerate(tb.steps) if step.type != "nop"]
        for gpu in algo.gpus
        for tb in gpu.tbs
    }
    seen: dict[tuple[int, int], int] = {}
    for gpu, tb_id, kind, node in zip(events.gpu, events.tb, events.kind, events.node, strict=True):
        place = (int(gpu), int(tb_id))
        position = steps_of[place][seen.get(place, 0)]
        seen[place] = seen.get(place, 0) + 1
        assert algo.gpus[gpu].tbs[tb_id].steps[position].type == STEP_TYPES[kind]
        if STEP_TYPES[kind] == "s":
            positions[int(node)] = (int(gpu), (int(tb_id), position))
    return positions


def _waits(algo: Algorithm, gpu: int, at: Position) -> dict[int, int]:
    """threadblock -> latest step waited for by the step at ``at`` (its depid and the nops before it)."""
    tb_id, position = at
    steps = algo.gpus[gpu].tbs[tb_id].steps
    waits = {steps[position].depid: steps[position].deps}
    before = position - 1
    while before >= 0 and steps[before].type == "nop":
        waits[steps[before].depid] = max(waits.get(steps[before].depid, -1), steps[before].deps)
        before -= 1
    return waits


def test_a_send_waits_for_every_feeding_send_it_is_ordered_after(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[Any, ...], dict[str, Any], Algorithm]] = []

    def spy(*args: Any, **kwargs: Any) -> Algorithm:
        algo = emit_module.emit(*args, **kwargs)
        calls.append((args, kwargs, algo))
        return algo

    monkeypatch.setattr(lower_module, "emit", spy)
    topology = load("dgx-h100-rail", {"boxes": "2"})
    forest = solve(topology, k=2, reverse=True).forest
    limits = replace(runtime_limits("msccl-executor", 132), max_tbs=128)
    lowered = lower(forest, LoweringOptions(coll="reducescatter"), limits, planes=network_planes(topology))
    assert lowered.merged_tbs == 0
    (plan, assignment, order), kwargs, algo = next(call for call in calls if call[2] is lowered.algorithm)
    after: dict[int, list[int]] = kwargs["after"]
    positions = _send_positions(plan, assignment, order, algo)
    several = 0
    for send, feeders in after.items():
        gpu, at = positions[send]
        waits = _waits(algo, gpu, at)
        others = {positions[feeder][1] for feeder in feeders if positions[feeder][1][0] != at[0]}
        several += len({tb for tb, _step in others}) > 1
        for tb, step in others:
            assert waits.get(tb, -1) >= step, (
                f"send {send} on GPU {gpu} does not wait for tb {tb} step {step}"
            )
    assert several > 0  # sends that wait for feeders on two or more other threadblocks exist
