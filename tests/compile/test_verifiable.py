"""Compile writes only what the verifier takes: where the verifier's limit on threadblocks × ranks
leaves fewer threadblocks per GPU than the runtime allows (from 1,025 GPUs on), the lowering is given
that many. Planted here on 8 DGX-1 GPUs, whose k = 1 allgather file uses 14 threadblocks per GPU."""

from __future__ import annotations

import pytest

import collc.verify
from collc.compile import CompileOptions, compile_schedule
from collc.errors import InputError
from collc.topology import load

OPTIONS = CompileOptions(coll="allgather", k=1, force=True)


@pytest.fixture
def topology():
    return load("dgx1", {"boxes": "1"})


def test_the_verifier_s_threadblock_limit_caps_the_lowering(topology, monkeypatch) -> None:
    monkeypatch.setattr(collc.verify, "MAX_SIMULATED_CLOCK_ENTRIES", 6 * topology.num_gpus**2)
    result = compile_schedule(topology, OPTIONS)
    assert result.verification.ok
    assert result.limits.max_tbs == 6
    assert max(len(gpu.tbs) for gpu in result.algorithm.gpus) <= 6
    capped = "threadblocks capped at 6 per GPU (the runtime allows 80)"
    assert any(note.startswith(capped) for note in result.notes)


def test_uncapped_the_same_file_would_be_refused(topology, monkeypatch) -> None:
    """What the cap prevents: the file lowered to the runtime's limit (14 threadblocks per GPU) is more
    than the planted verifier takes, and compile fails after the whole search."""
    uncapped = compile_schedule(topology, OPTIONS)
    assert max(len(gpu.tbs) for gpu in uncapped.algorithm.gpus) == 14
    assert not any("capped" in note for note in uncapped.notes)
    monkeypatch.setattr(collc.verify, "MAX_SIMULATED_CLOCK_ENTRIES", 6 * topology.num_gpus**2)
    with pytest.raises(InputError, match="threadblocks × ranks"):
        collc.verify.verify(uncapped.algorithm)


def test_the_cap_binds_from_1025_ranks() -> None:
    assert collc.verify.verifiable_threadblocks(1024) == 128
    assert collc.verify.verifiable_threadblocks(1025) == 127
    assert collc.verify.verifiable_threadblocks(1365) == 72
