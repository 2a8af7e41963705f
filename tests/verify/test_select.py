"""Selection: every condition the internal scheduler checks, with its reason."""

from __future__ import annotations

from collc.verify import explain
from collc.verify.select import overlapping

from .programs import fixture

MIB = 1 << 20


def test_allreduce_is_selected_for_a_fitting_call() -> None:
    selection = explain(fixture("ring_allreduce_4x2"), nranks=4, nbytes=64 * MIB, dtype_size=2, inplace=False)
    assert selection.selected and selection.reasons == []
    assert "one chunk = 4194304 elements = 8388608 bytes" in selection.details


def test_count_times_multiplier_must_divide_by_nchunksperloop() -> None:
    algo = fixture("ring_allreduce_4x2")  # N = 8
    selection = explain(algo, nranks=4, nbytes=2 * 12, dtype_size=2, inplace=False)  # 12 elements
    assert not selection.selected
    assert selection.reasons == [
        "count × sizeMultiplier = 12 is not divisible by nchunksperloop=8; "
        "use a size that is a multiple of 16 bytes"
    ]


def test_allgather_sizes_are_per_rank_counts_times_ranks() -> None:
    algo = fixture("ring_allgather_4")  # N = 4, G = 4
    assert explain(algo, nranks=4, nbytes=4 * 2 * 3, dtype_size=2, inplace=False).selected  # count 3 × 4
    selection = explain(algo, nranks=4, nbytes=2 * 6, dtype_size=2, inplace=False)  # 1.5 elements per rank
    assert not selection.selected and "per rank" in selection.reasons[0]


def test_every_failed_condition_is_listed() -> None:
    algo = fixture("tree_allreduce_3")  # LL, maxBytes 65536, out-of-place only, 3 ranks
    selection = explain(algo, nranks=4, nbytes=MIB, dtype_size=4, inplace=True)
    assert selection.reasons == [
        "the file is for ngpus=3 but the communicator has 4 ranks",
        'the call is in-place but the file has inplace="0"',
        "1048576 bytes is above maxBytes=65536 (0 would mean unbounded)",
    ]
    algo.min_bytes = 2 * MIB
    assert (
        "1048576 bytes is below minBytes=2097152"
        in explain(algo, nranks=3, nbytes=MIB, dtype_size=4, inplace=False).reasons
    )


def test_legacy_collective_name_is_not_loaded_by_the_executor() -> None:
    algo = fixture("ring_allgather_4")
    algo.coll = "reduce_scatter"
    reasons = explain(algo, nranks=4, nbytes=MIB, dtype_size=2, inplace=False).reasons
    assert reasons[0] == 'msccl-executor does not load files with coll="reduce_scatter"'
    legacy = explain(algo, nranks=4, nbytes=MIB, dtype_size=2, inplace=False, runtime="msccl-legacy")
    assert legacy.selected


def test_legacy_max_bytes_is_exclusive() -> None:
    algo = fixture("tree_allreduce_3")  # maxBytes 65536
    assert explain(algo, nranks=3, nbytes=65536, dtype_size=4, inplace=False).selected
    legacy = explain(algo, nranks=3, nbytes=65536, dtype_size=4, inplace=False, runtime="msccl-legacy")
    assert legacy.reasons == ["65536 bytes is not below maxBytes=65536 (exclusive on the legacy loader)"]


def test_overlapping_files() -> None:
    small, large, other = (
        fixture("tree_allreduce_3"),
        fixture("tree_allreduce_3"),
        fixture("ring_allgather_4"),
    )
    large.min_bytes = 65537
    assert overlapping([("a", small), ("b", large), ("c", other)]) == []
    large.min_bytes = 65536
    (overlap,) = overlapping([("a", small), ("b", large), ("c", other)])
    assert not overlap.fallback
    assert overlap.message.startswith(
        "a and b both match out-of-place allreduce calls on 3 ranks of 65536…65536 bytes"
    )


def test_a_fallback_with_fewer_chunks_per_loop_is_a_note() -> None:
    """A later file whose nchunksperloop divides the first's takes the counts the first does not
    divide (a bundle's fallback): intended. Equal or non-dividing loops stay a conflict."""
    primary, fallback = fixture("tree_allreduce_3"), fixture("tree_allreduce_3")
    primary.nchunksperloop, fallback.nchunksperloop = 12, 3
    (overlap,) = overlapping([("a", primary), ("b", fallback)])
    assert overlap.fallback and overlap.message.startswith("b is a fallback of a")
    (first_loaded,) = overlapping([("b", fallback), ("a", primary)])  # it would run every count
    assert not first_loaded.fallback
    fallback.nchunksperloop = 5
    assert not overlapping([("a", primary), ("b", fallback)])[0].fallback


def test_negative_bounds_are_compared_as_the_scheduler_does() -> None:
    """nBytes is a size_t and the bounds int64: C++ compares them unsigned, so minBytes=-5 selects no
    call (explain used to say the call was selected) and maxBytes=-1 bounds nothing (it used to say
    the call was above it)."""
    algo = fixture("ring_allreduce_4x2")
    algo.min_bytes = -5
    selection = explain(algo, nranks=4, nbytes=64 * MIB, dtype_size=2, inplace=False)
    assert selection.reasons == [
        "67108864 bytes is below minBytes=-5 (compared as an unsigned 64-bit number: 18446744073709551611)"
    ]
    assert overlapping([("a", algo), ("b", fixture("ring_allreduce_4x2"))]) == []  # a is never selected
    algo.min_bytes, algo.max_bytes = 0, -1
    assert explain(algo, nranks=4, nbytes=64 * MIB, dtype_size=2, inplace=False).selected
    (overlap,) = overlapping([("a", algo), ("b", fixture("ring_allreduce_4x2"))])
    assert "calls on 4 ranks of 0…unbounded bytes" in overlap.message
