"""A job's request, cache key and slices, in process (the server tests run them in workers)."""

from __future__ import annotations

import pickle
import re

import pytest

from collc.compile import compile_schedule
from collc.compile.flags import CompileFlags
from collc.errors import InputError
from collc.serve import steps
from collc.serve.policy import MLFQConfig
from collc.serve.steps import (
    SUBMITTED,
    HeldStates,
    cache_key,
    checked_start,
    first_stage_estimate,
    load_topology,
    progress,
    run_slice,
    spec_from_json,
)
from collc.topology.export import to_flat_yaml

from .jobs import FAST, TINY


def spec(**options: object):
    return spec_from_json({"topology": TINY, "options": options})


def test_slices_of_one_step_each_compile_what_compile_schedule_writes():
    """Each slice runs one step (quantum 0), its state is pickled, and the chain ends with the same XML
    as an uninterrupted compile; progress never goes back."""
    request = spec(**FAST)
    expected = compile_schedule(load_topology(request, 64), CompileFlags(**FAST).options()).xml
    blob, shares, stages = None, [], []
    for _ in range(100):
        outcome = run_slice("j", request, blob, 0.0, 64, lambda: False)
        assert outcome.error is None and outcome.steps == 1
        shares.append(outcome.progress)
        stages.append(outcome.stage)
        if outcome.xml is not None:
            break
        blob = outcome.state
    assert outcome.xml == expected
    assert shares == sorted(shares) and shares[-1] == 1.0
    assert stages[0] == "forest" and stages[-1] == "done" and "verify" in stages


def test_a_slice_stops_when_asked_and_runs_to_the_end_otherwise():
    request = spec(**FAST)
    stopped = run_slice("j", request, None, 1e9, 64, lambda: True)
    assert stopped.steps == 1 and stopped.state is not None and stopped.xml is None
    whole = run_slice("j", request, pickle.loads(pickle.dumps(stopped.state)), 1e9, 64, lambda: False)
    assert whole.xml is not None and whole.steps > 1


def test_a_worker_resumes_its_own_preempted_job_from_the_live_state(monkeypatch):
    """One step per slice through a worker's held states: no slice pickles or unpickles the state (both
    are made to fail), and the chain writes the same file as an uninterrupted compile."""
    request = spec(**FAST)
    expected = compile_schedule(load_topology(request, 64), CompileFlags(**FAST).options()).xml
    held = HeldStates()

    def no_pickling(*_: object, **__: object) -> object:
        raise AssertionError("a held state was pickled or unpickled")

    monkeypatch.setattr(steps.pickle, "loads", no_pickling)
    monkeypatch.setattr(steps.pickle, "dumps", no_pickling)
    slices = 0
    while slices < 100:
        slices += 1
        outcome = run_slice("j", request, None, 0.0, 64, lambda: False, held=held)
        assert outcome.error is None, outcome.error
        if outcome.xml is not None:
            break
        assert outcome.held and outcome.state is None and not outcome.spilled
    assert outcome.xml == expected and slices > 3


def test_states_beyond_the_capacity_spill_as_bytes_and_resume_from_them():
    """Two jobs preempted in turn on a worker that holds one live state: each preemption spills the
    other job's state as bytes, from which it resumes; both write what an uninterrupted compile does."""
    request = spec(**FAST)
    expected = compile_schedule(load_topology(request, 64), CompileFlags(**FAST).options()).xml
    held = HeldStates(capacity=1)
    blobs: dict[str, bytes | None] = {"a": None, "b": None}
    done: dict[str, str] = {}
    for _ in range(200):
        for job in [job for job in blobs if job not in done]:
            outcome = run_slice(job, request, blobs[job], 0.0, 64, lambda: False, held=held)
            assert outcome.error is None, outcome.error
            if outcome.xml is not None:
                done[job] = outcome.xml
                continue
            assert outcome.held
            blobs[job] = None
            for other, blob in outcome.spilled:
                assert other != job
                blobs[other] = blob
        if len(done) == 2:
            break
    assert done == {"a": expected, "b": expected}


def test_held_states_keep_the_most_recent_and_spill_the_rest():
    state = checked_start(spec(**FAST), 64)
    held = HeldStates(capacity=2)
    assert held.keep("a", state) == [] and held.keep("b", state) == []
    assert held.keep("c", state) == [("a", state)]  # the least recently kept goes first
    assert held.take("a") is None and held.take("b") is state
    assert held.take("b") is None  # taken: forgotten
    assert HeldStates(capacity=0).keep("big", state) == [("big", state)]  # nothing is held
    held.drop("c")
    assert held.take("c") is None


def test_a_failing_job_reports_the_clis_message_and_exit_code():
    outcome = run_slice("j", spec(k=2, max_k=3), None, 1e9, 64, lambda: False)
    assert (
        outcome.exit_code == 2
        and outcome.error
        == "error: --k and --max-k cannot be combined\n  hint: " + ("give either a fixed k or a budget")
    )


def test_the_cache_key_is_the_fabric_not_its_spelling():
    preset = checked_start(spec_from_json({"preset": "dgx-a100", "set": {"boxes": "2"}}), 64)
    flat = to_flat_yaml(preset.topology)
    exported = checked_start(spec_from_json({"topology": flat}), 64)
    assert cache_key(preset) == cache_key(exported)
    other = checked_start(spec_from_json({"preset": "dgx-a100", "set": {"boxes": "2"}, "options": FAST}), 64)
    assert cache_key(other) != cache_key(preset)
    # ranks round the boxes: the allreduce is searched box-major, but its file is for these ranks
    ranks = ", ".join(f"b{i % 2}.gpu{i // 2}" for i in range(16))
    cyclic = flat.replace("nodes:", f"ranks: [{ranks}]\nnodes:")
    renumbered = checked_start(spec_from_json({"topology": cyclic}), 64)
    assert renumbered.topology.ranks == preset.topology.ranks and renumbered.given is not None
    assert cache_key(renumbered) != cache_key(preset)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the request must be a JSON object"),
        ({"preset": "dgx-a100", "topology": TINY}, "give either 'preset'"),
        ({}, "give either 'preset'"),
        ({"preset": 3}, "must be strings"),
        ({"preset": "dgx-a100", "colour": 1}, "unknown request field 'colour'"),
        ({"preset": "dgx-a100", "options": {"kk": 1}}, "unknown option 'kk'"),
        ({"preset": "dgx-a100", "options": {"force": "yes"}}, "options.force must be bool"),
        ({"preset": "dgx-a100", "options": {"k": True}}, "options.k must be int or null"),
        ({"preset": "dgx-a100", "set": ["boxes=2"]}, "'set' must map"),
        ({"preset": "dgx-a100", "output": ""}, "'output' must be a file name"),
    ],
)
def test_malformed_requests_are_input_errors(body, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        spec_from_json(body)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": -1}, "--k must be a number of trees per root from 1 to 1024, got -1"),
        ({"k": 10**26}, f"--k must be a number of trees per root from 1 to 1024, got {10**26}"),
        ({"max_k": 0}, "--max-k must be a number of trees per root from 1 to 1024, got 0"),
        ({"instances": -1}, "--instances must be at least 1, got -1"),
        ({"align": 0}, "--align must be a positive element count, got 0"),
        ({"min_bytes": "2GiB", "max_bytes": "1GiB"}, "--min-bytes 2147483648 is above --max-bytes"),
        ({"coll": "gather"}, "unknown collective 'gather'"),
        ({"lanes": "wide"}, "--lanes 'wide' is not one of"),
    ],
)
def test_every_option_the_compile_refuses_is_refused_before_the_job_is_accepted(options, message):
    """The service admits a job after :func:`checked_start`: an option the compile would refuse at
    any step must be refused there, with the CLI's message."""
    with pytest.raises(InputError, match=re.escape(message)):
        checked_start(spec(**options), 64)


def test_the_topology_is_located_as_submitted_and_limited_in_gpus():
    with pytest.raises(InputError) as error:
        load_topology(spec_from_json({"topology": TINY.replace("bandwidth", "bandwith")}), 64)
    assert str(error.value).startswith(f"{SUBMITTED}:6:")
    with pytest.raises(InputError, match="this service compiles at most 2"):
        load_topology(spec(), 2)
    assert spec(proto="ll128").flags.proto == "LL128"


def test_the_first_stage_estimate_grows_with_the_fabric_and_places_big_jobs_low():
    config = MLFQConfig()
    levels = [config.join_level(first_stage_estimate(gpus)) for gpus in (8, 16, 32, 64, 128, 256, 1024)]
    assert levels == [0, 0, 0, 1, 2, 3, 3]
    assert progress(checked_start(spec(), 64)) == 0.0


def test_an_empty_gpu_selection_is_refused_as_on_the_command_line():
    """``"gpus": ""`` selects no GPU; read as "every GPU" it would compile the whole fabric."""
    request = spec_from_json({"preset": "dgx-a100", "set": {"boxes": "2"}, "gpus": ""})
    with pytest.raises(InputError, match="selects nothing"):
        load_topology(request, 64)


def test_a_job_held_by_a_busy_worker_waits_for_that_worker():
    from collc.serve.backend import ProcessBackend, Worker

    backend = ProcessBackend(2)
    busy, idle = Worker(), Worker()
    busy.job, busy.holding = "other", {"held"}
    backend._pool = [busy, idle]
    assert not backend.placeable("held") and backend.placeable("new")
    busy.job = None
    assert backend.placeable("held")
