"""`compile_schedule` on every shipped preset with at most 32 GPUs: all collectives, both runtimes with
k = 1, and the automatically chosen k on the preset's own runtime (what `collc compile PRESET` writes:
it lowers and simulates the candidates) where :func:`_automatic` says. Every program passed
`collc.verify` inside `compile_schedule` (it refuses otherwise); the tests re-check the limits and
divisibility.
"""

from __future__ import annotations

from functools import cache

import pytest

from collc.compile import CompileOptions, compile_schedule
from collc.compile.driver import serving
from collc.topology import load
from compiled import preset_compile, same_worker

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


COLLECTIVES = ("allgather", "reducescatter", "allreduce")

#: with k = 1 only: the middle size of a family whose one- and four-box fabrics are compiled with the
#: automatic choice too. That choice simulates dozens of candidates (three quarters of this module's
#: time), these add no shape the others lack, and CI has 20 minutes on two cores.
K1_ONLY = {("dgx-h100", 2), ("dgx-h200", 2), ("dgx1", 2), ("mi300x", 2)}

#: the automatic compiles at 32 GPUs that other tests read too (tests/compiled.py makes each once)
SHARED_AT_32 = {
    ("dgx-a100", 4, "allgather"),  # tests/compile/test_box_blocks.py
    ("dgx-a100", 4, "allreduce"),  # tests/compile/test_ranges.py
    *(("dgx-h100-rail", 4, coll) for coll in COLLECTIVES),  # tests/predict/test_des.py
    ("mi250", 2, "allreduce"),  # tests/compile/test_compile_cli.py
    ("mi300x", 4, "allgather"),  # tests/compile/test_ranges.py
}


def _automatic(name: str, boxes: int, coll: str) -> bool:
    """Whether this module compiles the case with the automatic choice: up to 16 GPUs (but
    :data:`K1_ONLY`), and at 32 GPUs where other tests read the same compile. The other 32-GPU
    automatic compiles take 15-70 s each on CI's two cores; `make bench` (scripts/bench_predict.py)
    compiles and verifies every one of them."""
    if (name, boxes) in K1_ONLY:
        return False
    return _topology(name, boxes).num_gpus <= 16 or (name, boxes, coll) in SHARED_AT_32


@cache
def _topology(name: str, boxes: int):
    return load(name, {"boxes": str(boxes)})


def _cases():
    for name, boxes in PRESETS:
        for coll in COLLECTIVES:
            if _automatic(name, boxes, coll):
                shared = same_worker(name, boxes)
                yield pytest.param(
                    name, boxes, "auto", None, coll, id=f"{name}-{boxes}-kauto-{coll}", marks=shared
                )
            for runtime in ("msccl-executor", "rccl"):
                yield pytest.param(name, boxes, 1, runtime, coll, id=f"{name}-{boxes}-k1-{runtime}-{coll}")


@pytest.mark.parametrize(("name", "boxes", "k", "runtime", "coll"), list(_cases()))
def test_preset_compiles_to_a_verified_program_within_limits(name, boxes, k, runtime, coll):
    topology = _topology(name, boxes)
    if k == "auto":
        result = preset_compile(name, boxes, coll)
    else:
        result = compile_schedule(topology, CompileOptions(coll=coll, runtime=runtime, k=k, user_range=True))
    algo, used, limits = result.algorithm, result.lowered.usage, result.limits
    assert result.verification.ok
    assert algo.ngpus == topology.num_gpus and algo.coll == coll
    assert used.max_tbs <= limits.max_tbs <= min(topology.metadata.sms_per_gpu or 10**9, 128)
    assert limits.max_tbs <= (64 if result.runtime == "rccl" else 128)
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
