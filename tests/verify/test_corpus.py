"""Third-party files (RCCL's shipped and unit-test algorithms, in generated equivalents: corpus.py) get
the verdict the runtime's source gives them, and the call-size model has the runtime's constants."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.msccl.writer import to_xml
from collc.verify import verify, verify_text
from collc.verify.calls import call_model
from collc.verify.runtimes import PROFILES

from .corpus import allpairs_allreduce, alltoall, recursive_doubling_allgather
from .fixture_source import ring_allreduce

#: largest nBytes at which the 8-chunk exchange of the 512-chunk all-pairs files fits the Simple FIFO:
#: m >= 4 chunks per call makes the 8-chunk send 2 calls, which the 2-call FIFO holds without the
#: receiver; m = floor(2 MiB / ceil(nBytes / 512)) >= 4 up to 512 × 512 KiB
ALLPAIRS_LIMIT = 512 * (2 << 20) // 4


@pytest.mark.parametrize(
    ("min_bytes", "max_bytes"),
    [(524288, 11534336), (524288, 16777216), (14680065, 16777216)],
    ids=["allpairs-8n-simple", "allpairs-8n-simple-op", "allpairs-8n-simple_2"],
)
def test_rccl_simple_allpairs_files_are_valid_within_their_range(min_bytes: int, max_bytes: int) -> None:
    """At 16 MiB a chunk is 32 KiB, so a primitive call carries all 8 chunks of a block: each side's
    send is one call and fits the FIFO before the receive (the runtime's maxAllowedCount)."""
    report = verify(allpairs_allreduce(min_bytes=min_bytes, max_bytes=max_bytes), runtime="rccl")
    assert report.problems == [], "\n".join(map(str, report.problems))
    (note,) = [note for note in report.notes if note.startswith("safe up to")]
    assert note.startswith(f"safe up to {ALLPAIRS_LIMIT} bytes (256MiB) per call")
    assert "a call above that would deadlock" in note and "rank 0 tb 8 step 0 (s) waits for room" in note


def test_allpairs_without_a_size_bound_deadlocks_as_the_worst_case() -> None:
    report = verify(allpairs_allreduce(max_bytes=0), runtime="rccl")
    assert report.rules() == {"deadlock"}
    (problem,) = report.errors
    assert problem.message.startswith(f"safe up to {ALLPAIRS_LIMIT} bytes (256MiB) per call, but the file")
    assert "no maxBytes" in problem.message and "(FIFO depth 2, one chunk per call" in problem.message


def test_range_past_the_limit_names_the_size_and_the_blocked_threadblocks() -> None:
    report = verify(allpairs_allreduce(max_bytes=ALLPAIRS_LIMIT + 512), runtime="rccl")
    (problem,) = report.errors
    assert problem.rule == "deadlock"
    assert f"safe up to {ALLPAIRS_LIMIT} bytes" in problem.message
    assert "rank 0 tb 8 step 0 (s) waits for room in the FIFO to rank 1" in problem.message
    assert f"calls of {ALLPAIRS_LIMIT + 1}…{ALLPAIRS_LIMIT + 512} bytes" in problem.message
    assert verify(allpairs_allreduce(max_bytes=ALLPAIRS_LIMIT), runtime="rccl").ok


def test_connection_buffer_size_moves_the_limit() -> None:
    """NCCL_BUFFSIZE = 1 MiB halves the call payload (512 KiB): the 8-chunk send fits up to 64 MiB."""
    assert not verify(allpairs_allreduce(max_bytes=(64 << 20) + 512), runtime="rccl", buffer_bytes=1 << 20).ok
    report = verify(allpairs_allreduce(max_bytes=64 << 20), runtime="rccl", buffer_bytes=1 << 20)
    assert report.ok
    assert any(note.startswith(f"safe up to {64 << 20} bytes") for note in report.notes)


@pytest.mark.parametrize("channels", [4, 8])
def test_rccl_ll_allpairs_files_are_valid(channels: int) -> None:
    report = verify(
        allpairs_allreduce(channels=channels, proto="LL", min_bytes=0, max_bytes=65536), runtime="rccl"
    )
    assert report.problems == [] and report.ok


@pytest.mark.parametrize(("proto", "max_bytes"), [("LL", 9216), ("LL", 524288), ("Simple", 45088768)])
def test_rccl_alltoall_files_are_valid(proto: str, max_bytes: int) -> None:
    for runtime in ("rccl", "msccl-executor"):
        assert verify(alltoall(proto=proto, max_bytes=max_bytes), runtime=runtime).problems == []


@pytest.mark.parametrize("proto", ["LL", "LL128", "Simple"])
def test_unit_test_ring_files_are_rejected_by_rccl_only(proto: str) -> None:
    """RCCL's mscclSetupKernel refuses composite step types ("this version of MSCCL build doesn't
    support full Ops"); the executor runs them, and a ring needs only a FIFO of 2 calls."""
    ring = ring_allreduce(8, 3, proto)
    assert verify(ring, runtime="rccl").rules() == {"rccl-step-type"}
    assert verify(ring, runtime="msccl-executor").problems == []


@pytest.mark.parametrize(
    ("runtime", "proto", "call_bytes", "depth"),
    [
        ("msccl-executor", "Simple", 2 << 20, 2),
        ("msccl-executor", "LL", 32768, 8),
        ("msccl-executor", "LL128", 576000, 8),
        ("rccl", "Simple", 2 << 20, 2),
        ("rccl", "LL", 16384, 8),
        ("rccl", "LL128", 50176, 8),
    ],
)
def test_call_payload_and_fifo_depth_per_runtime(
    runtime: str, proto: str, call_bytes: int, depth: int
) -> None:
    """chunkEffectiveSize from the default buffers: Simple 4 of 8 slots of 4 MiB; LL half a slot
    (512 KiB buffer on the executor, 256 KiB on RCCL); LL128 one slot less its flag words."""
    model = call_model(PROFILES[runtime], proto, 512)
    assert (model.call_bytes, model.depth) == (call_bytes, depth)


def test_chunks_per_call_at_the_boundaries() -> None:
    model = call_model(PROFILES["rccl"], "Simple", 512)
    assert model.chunks_per_call(ALLPAIRS_LIMIT) == 4
    assert model.chunks_per_call(ALLPAIRS_LIMIT + 1) == 3
    assert model.chunks_per_call(1) == 71  # MSCCL_MAX_COUNT - 1
    assert model.chunks_per_call(1 << 40) == 1
    assert model.largest_call(4) == ALLPAIRS_LIMIT and model.largest_call(1) is None
    assert model.sizes(3) == (ALLPAIRS_LIMIT + 1, 512 * ((2 << 20) // 3))


def test_msccl_tools_recursive_doubling_allgather_is_safe_up_to_8_mib_on_simple() -> None:
    """Level 2 sends 4 chunks before receiving: on Simple's 2-call FIFO that needs at least 2 chunks
    per call, i.e. chunks of at most 1 MiB (8 MiB per call with 8 chunks); LL's 8-call FIFO holds it."""
    (problem,) = verify(recursive_doubling_allgather()).errors
    assert problem.rule == "deadlock" and problem.message.startswith(
        "safe up to 8388608 bytes (8MiB) per call"
    )
    assert "rank 0 tb 2 step 1 (s) waits for room in the FIFO to rank 4" in problem.message
    assert verify(recursive_doubling_allgather(max_bytes=8 << 20)).problems == []
    assert verify(recursive_doubling_allgather(max_bytes=(8 << 20) + 8)).rules() == {"deadlock"}
    assert verify(recursive_doubling_allgather(proto="LL")).problems == []


def test_msccl_tools_2023_headers_need_the_current_attributes(tmp_path) -> None:
    """That msccl-tools version writes only inplace: the current runtimes fail the load ("Attribute
    outofplace of node algo not found"); the legacy loader defaults the rest."""
    text = to_xml(recursive_doubling_allgather(proto="LL"))
    text = text.replace(' outofplace="0" minBytes="0" maxBytes="0"', "")
    for runtime in ("msccl-executor", "rccl"):
        (problem,) = verify_text(text, "rd.xml", runtime=runtime).problems
        assert problem.rule == "missing-attribute"
        # the runtime's loader fails on minBytes first; one run names every attribute to add
        assert (
            problem.message
            == "Attribute minBytes of node algo not found (also missing: maxBytes, outofplace)"
        )
        assert (
            problem.hint
            == 'add minBytes="…", maxBytes="…", outofplace="…" to <algo> (the runtime requires them)'
        )
    assert verify_text(text, "rd.xml", runtime="msccl-legacy").ok
    path = tmp_path / "rd.xml"
    path.write_text(text)
    assert CliRunner().invoke(main, ["verify", "--runtime", "msccl-legacy", str(path)]).exit_code == 0
