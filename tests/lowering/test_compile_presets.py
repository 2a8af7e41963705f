"""`compile_schedule` on every shipped preset with at most 32 GPUs: all collectives, both runtimes with
k = 1 and the executor with the automatically chosen k (which lowers and simulates the candidates;
every preset but the middle sizes of :data:`K1_ONLY`; RCCL's automatic choice is covered on 2x16 MI250
by tests/compile). Every program passed `collc.verify` inside `compile_schedule` (it refuses
otherwise); the tests re-check the limits and divisibility.
"""

from __future__ import annotations

from functools import cache

import pytest

from collc.compile import CompileOptions, compile_schedule
from collc.compile.driver import serving
from collc.topology import load

PRESETS = [
    ("dgx-a100", 1),
    ("dgx-a100", 2),
    ("dgx-a100", 4),
    ("mi250", 1),
    ("mi250", 2),
    ("dgx-h100-rail", 1),
    ("dgx-h100-rail", 4),
    ("dgx-h100", 1),
    ("dgx-h100", 2),
    ("dgx-h100", 4),
    ("dgx-h200", 1),
    ("dgx-h200", 2),
    ("dgx1", 1),
    ("dgx1", 2),
    ("dgx1", 4),
    ("mi300x", 1),
    ("mi300x", 2),
    ("mi300x", 4),
]


#: with k = 1 only: the middle size of a family whose one- and four-box fabrics are compiled with the
#: automatic choice too. That choice simulates dozens of candidates (three quarters of this module's
#: time), these add no shape the others lack, and CI has 20 minutes on two cores.
K1_ONLY = {("dgx-h100", 2), ("dgx-h200", 2), ("dgx1", 2), ("mi300x", 2)}


@cache
def _topology(name: str, boxes: int):
    return load(name, {"boxes": str(boxes)})


def _cases():
    for name, boxes in PRESETS:
        for k, runtime in (("auto", "msccl-executor"), (1, "msccl-executor"), (1, "rccl")):
            if k == "auto" and (name, boxes) in K1_ONLY:
                continue
            yield pytest.param(name, boxes, k, runtime, id=f"{name}-{boxes}-k{k}-{runtime}")


@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
@pytest.mark.parametrize(("name", "boxes", "k", "runtime"), list(_cases()))
def test_preset_compiles_to_a_verified_program_within_limits(name, boxes, k, runtime, coll):
    topology = _topology(name, boxes)
    options = CompileOptions(coll=coll, runtime=runtime, k=None if k == "auto" else k, user_range=True)
    result = compile_schedule(topology, options)
    algo, used, limits = result.algorithm, result.lowered.usage, result.limits
    assert result.verification.ok
    assert algo.ngpus == topology.num_gpus and algo.coll == coll
    assert used.max_tbs <= limits.max_tbs <= min(topology.metadata.sms_per_gpu or 10**9, 128)
    assert limits.max_tbs <= (64 if runtime == "rccl" else 128)
    assert used.nchannels <= limits.max_channels == 32
    assert used.max_steps_per_tb <= 64
    assert used.max_elements_per_rank <= 4096
    assert used.max_reduce_chain <= 15
    assert all(step.cnt <= 71 for gpu in algo.gpus for tb in gpu.tbs for step in tb.steps)
    assert algo.nchunksperloop == topology.num_gpus * result.solution.forest.k * result.instances
    assert result.file_bound_algbw <= result.bound_algbw
    if k == 1:
        assert result.solution.forest.k == 1
    elif serving(topology.num_gpus, coll, topology.num_gpus, None).satisfied:
        assert result.serving.satisfied  # a power-of-two count is served whenever k = 1 could serve one
