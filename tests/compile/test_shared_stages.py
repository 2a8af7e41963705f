"""Candidates whose tree depths share threadblocks, beside those that join a pair's nearest depths or
merge threadblocks (driver._lowering_steps): only for programs too large for the wide search."""

from __future__ import annotations

import gc
import re
from types import FrameType

import pytest

from collc.compile import CompileOptions, compile_schedule, driver
from collc.compile.report import report_json, report_lines
from collc.topology import load

SMALL_GPU = """\
name: small-gpus-x2
metadata: {sms_per_gpu: 16}
nodes:
  - {name: ib, kind: switch}
%s
links:
%s
"""


@pytest.fixture
def small_gpus(tmp_path):
    """2 boxes of 4 GPUs on an NVSwitch (100 GB/s), a 50 GB/s NIC each, GPUs of 16 SMs: an
    allreduce's lanes per tree depth need merged threadblocks."""
    nodes, links = [], []
    for box in range(2):
        nodes.append(f"  - {{name: u{box}nv, kind: switch}}")
        for gpu in range(4):
            name = f"u{box}g{gpu}"
            nodes += [f"  - {{name: {name}, kind: gpu}}", f"  - {{name: u{box}n{gpu}, kind: nic}}"]
            links += [
                f"  - {{src: {name}, dst: u{box}nv, bandwidth: 100}}",
                f"  - {{src: {name}, dst: u{box}n{gpu}, bandwidth: 64}}",
                f"  - {{src: u{box}n{gpu}, dst: ib, bandwidth: 50}}",
            ]
    path = tmp_path / "small.yaml"
    path.write_text(SMALL_GPU % ("\n".join(nodes), "\n".join(links)))
    return load(path)


def _candidates(notes: list[str]) -> str:
    return next(note for note in notes if note.startswith("chose k"))


def test_a_large_program_that_merges_threadblocks_is_also_tried_with_shared_depths(
    small_gpus, monkeypatch
) -> None:
    """As if every program were too large for the wide search (128 GPUs: the shared-depth k = 2
    file beats NCCL's tree from 256 KiB to 16 MiB, where the merging one wins nowhere). Short of
    threadblocks, the lanes per depth join a pair's nearest depths (and would merge what is left)."""
    monkeypatch.setattr(driver, "WIDE_SEARCH_STEPS", 0)
    monkeypatch.setattr(driver, "_blocks_candidates", lambda state, wide: [])  # the priced search alone
    result = compile_schedule(small_gpus, CompileOptions(coll="allreduce"))
    note = _candidates(result.notes)
    shared = set(re.findall(r"k = (\d+) \(tree depths sharing threadblocks\)", note))
    joined = set(re.findall(r"k = (\d+) \(a pair's nearest tree depths joined\): ", note))
    assert shared and shared == joined  # each lowering with lanes per depth is simulated beside it


def test_a_program_small_enough_for_the_wide_search_is_not(small_gpus) -> None:
    result = compile_schedule(small_gpus, CompileOptions(coll="allreduce"))
    assert "sharing threadblocks" not in _candidates(result.notes)
    assert result.lowered.stages_shared is None


def test_the_shared_depth_lowering_of_a_narrow_search_is_capped_in_emissions(small_gpus, monkeypatch) -> None:
    """Each emission of a 128-GPU program takes seconds, and one over the step limit only grows lanes
    and emits again (k = 4 on 16x8 H100 rail took 14): the narrow search's extra lowering with shared
    depths is given :data:`driver.SHARED_EMISSIONS`, every other lowering no cap."""
    monkeypatch.setattr(driver, "WIDE_SEARCH_STEPS", 0)
    monkeypatch.setattr(driver, "_blocks_candidates", lambda state, wide: [])  # the priced search alone
    caps: dict[bool, set[int | None]] = {True: set(), False: set()}
    real = driver.lower_steps

    def recording(forest, options, *args, **kwargs):
        caps[options.share_stages].add(options.max_emissions)
        return real(forest, options, *args, **kwargs)

    monkeypatch.setattr(driver, "lower_steps", recording)
    compile_schedule(small_gpus, CompileOptions(coll="allreduce"))
    assert caps[True] == {driver.SHARED_EMISSIONS} and caps[False] == {None}


def test_a_lowering_way_that_does_not_fit_leaves_no_cycle_to_collect(small_gpus) -> None:
    """A compile runs with the cyclic collector paused (compile_schedule), so every reference cycle
    it makes lives until the collector runs again. The lowering keeps the failure of a way that does
    not fit (a lane per transfer, a lane per tree depth) for its message: kept with its traceback,
    its frames held the plans and the list of failures (16x8 H100 rail: 1.05 GB peak instead of
    0.89)."""
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result = compile_schedule(small_gpus, CompileOptions(coll="allreduce", lanes="split"))
        gc.collect()
        frames = [
            item.f_code.co_name
            for item in gc.garbage
            if isinstance(item, FrameType) and item.f_code.co_filename.endswith("lowering/lower.py")
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert result.notes and frames == []


def test_the_report_counts_the_tree_depths_joined(small_gpus) -> None:
    """GPUs of 16 SMs: the allreduce's lanes per depth join a pair's nearest depths, and the report's
    threadblocks line and ``--json`` say how many, beside the merged threadblocks."""
    result = compile_schedule(small_gpus, CompileOptions(coll="allreduce", lanes="rate"))
    joined = result.lowered.joined_stages
    assert joined > 0 and result.lowered.usage.max_tbs <= 16
    line = next(line for line in report_lines(result, "x.xml") if line.startswith("  threadblocks"))
    merged = result.lowered.merged_tbs
    assert line.endswith(f"{merged} send+receive merged, {joined} tree depths joined to a nearer one's lanes")
    document = report_json(result, "x.xml")
    assert document["joined_stages"] == joined
    assert document["merged_threadblocks"] == result.lowered.merged_tbs
