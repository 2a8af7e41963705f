"""What each collective means for a program: real buffer sizes, in-place aliasing, initial data and the
postcondition.

Data is symbolic: a value is the multiset of input chunks ``in_q[j]`` it is made of. It is stored as
``(j, ranks, duplicates)`` — the input chunk index, a bit mask of the ranks that contributed it, and a
mask of those that contributed it more than once — because a correct program only ever combines
contributions of one chunk index, which keeps values G bits wide. A value mixing chunk indices (a wrong
program) becomes ``(MIXED, mask, duplicates)`` over the global bits ``q * N + j``. Reduction ORs the
masks and records every overlap as a duplicate, so "each rank exactly once" is an equality test.
``None`` stands for never-written memory.
"""

from __future__ import annotations

from dataclasses import dataclass

Value = tuple[int, int, int] | None

#: chunk index of a value that mixes contributions of different input chunks
MIXED = -1

#: collectives whose postcondition the verifier knows (the others are lint-only)
CHECKED_COLLECTIVES = ("allreduce", "allgather", "reducescatter", "alltoall", "broadcast", "reduce")


@dataclass(frozen=True)
class Layout:
    """Sizes in chunks of the user buffers of one rank and where each name lives under an aliasing.

    ``storages`` maps a storage name to its size; ``names`` maps ``i``/``o``/``s`` to
    ``(storage, base offset)``. Out of place, each name is its own storage; in place, ``i`` and ``o``
    share one.
    """

    storages: dict[str, int]
    names: dict[str, tuple[str, int]]


def real_sizes(coll: str, nchunks: int, ngpus: int) -> tuple[int, int] | None:
    """``(i chunks, o chunks)`` of the user buffers, or None for collectives the table does not cover."""
    per_rank = nchunks // ngpus if ngpus else 0
    return {
        "allreduce": (nchunks, nchunks),
        "allgather": (per_rank, nchunks),
        "reducescatter": (nchunks, per_rank),
        "alltoall": (nchunks, nchunks),
        "broadcast": (nchunks, nchunks),
        "reduce": (nchunks, nchunks),
    }.get(coll)


def layout(coll: str, nchunks: int, ngpus: int, rank: int, scratch: int, *, inplace: bool) -> Layout | None:
    """The buffers of ``rank`` for one call; None when the collective's sizes are unknown."""
    sizes = real_sizes(coll, nchunks, ngpus)
    if sizes is None:
        return None
    i_size, o_size = sizes
    per_rank = nchunks // ngpus
    if not inplace:
        return Layout({"i": i_size, "o": o_size, "s": scratch}, {"i": ("i", 0), "o": ("o", 0), "s": ("s", 0)})
    if coll == "allgather":  # i[j] is o[r*k + j]
        return Layout(
            {"o": o_size, "s": scratch}, {"i": ("o", rank * per_rank), "o": ("o", 0), "s": ("s", 0)}
        )
    if coll == "reducescatter":  # o[j] is i[r*k + j]
        return Layout(
            {"i": i_size, "s": scratch}, {"i": ("i", 0), "o": ("i", rank * per_rank), "s": ("s", 0)}
        )
    return Layout({"o": o_size, "s": scratch}, {"i": ("o", 0), "o": ("o", 0), "s": ("s", 0)})


def initial_memory(coll: str, nchunks: int, ngpus: int, rank: int, buffers: Layout) -> dict[str, list[Value]]:
    """Every storage of ``rank`` before the call: the input where the input lives, None elsewhere."""
    memory: dict[str, list[Value]] = {name: [None] * size for name, size in buffers.storages.items()}
    input_storage, base = buffers.names["i"]
    i_size = (real_sizes(coll, nchunks, ngpus) or (0, 0))[0]
    own = 1 << rank
    for chunk in range(i_size):
        memory[input_storage][base + chunk] = (chunk, own, 0)
    return memory


def combine(left: Value, right: Value, nchunks: int) -> Value:
    """The symbolic reduction ``left ⊕ right``: union of contributions, overlaps become duplicates."""
    if left is None or right is None:
        return None
    if left[0] == right[0]:
        return (left[0], left[1] | right[1], left[2] | right[2] | (left[1] & right[1]))
    a, b = _global(left, nchunks), _global(right, nchunks)
    return (MIXED, a[1] | b[1], a[2] | b[2] | (a[1] & b[1]))


def _global(value: tuple[int, int, int], nchunks: int) -> tuple[int, int, int]:
    """``value`` over the global bits ``q * N + j`` (the representation of mixed values)."""
    chunk, ranks, duplicates = value
    if chunk == MIXED:
        return value
    return (MIXED, _spread(ranks, chunk, nchunks), _spread(duplicates, chunk, nchunks))


def _spread(ranks: int, chunk: int, nchunks: int) -> int:
    return sum(1 << (rank * nchunks + chunk) for rank in _bits(ranks))


def expected_outputs(coll: str, nchunks: int, ngpus: int, rank: int, root: int | None) -> list[Value | str]:
    """The value every output chunk of ``rank`` must hold; ``"any"`` where the postcondition is silent."""
    per_rank = nchunks // ngpus
    every_rank = (1 << ngpus) - 1
    if coll == "allreduce":
        return [(j, every_rank, 0) for j in range(nchunks)]
    if coll == "allgather":
        return [(j % per_rank, 1 << (j // per_rank), 0) for j in range(nchunks)]
    if coll == "reducescatter":
        return [(rank * per_rank + j, every_rank, 0) for j in range(per_rank)]
    if coll == "alltoall":
        return [(rank * per_rank + j % per_rank, 1 << (j // per_rank), 0) for j in range(nchunks)]
    if coll == "broadcast":
        assert root is not None
        return [(j, 1 << root, 0) for j in range(nchunks)]
    if coll == "reduce":
        return [(j, every_rank, 0) if rank == root else "any" for j in range(nchunks)]
    raise ValueError(f"no postcondition for {coll}")


def infer_root(coll: str, outputs: list[list[Value]], ngpus: int) -> int | None:
    """The root a rooted file implements ("a rooted file is picked for any root"): for broadcast the
    rank whose input rank 0 ends up with, for reduce the rank that holds a full reduction."""
    if coll == "broadcast":
        first = outputs[0][0] if outputs and outputs[0] else None
        if first is not None and first[0] == 0 and first[1] and first[1] & (first[1] - 1) == 0:
            return first[1].bit_length() - 1
        return 0
    if coll == "reduce":
        for rank, values in enumerate(outputs):
            if values and values[0] == (0, (1 << ngpus) - 1, 0):
                return rank
        return 0
    return None


def describe(value: Value | str, nchunks: int) -> str:
    """A readable form of a symbolic value: ``in_0[3] + in_1[3]``, abbreviated for large sums."""
    if value == "any":
        return "anything"
    if value is None:
        return "nothing (never written)"
    terms = _terms(value, nchunks, which=1)  # type: ignore[arg-type]
    if not terms:
        return "an empty value"
    shown = " + ".join(terms) if len(terms) <= 6 else " + ".join(terms[:4]) + f" + … ({len(terms)} terms)"
    twice = _terms(value, nchunks, which=2)  # type: ignore[arg-type]
    if twice:
        shown += f", with {', '.join(twice[:6])} more than once"
    return shown


def difference(expected: tuple[int, int, int], found: tuple[int, int, int], nchunks: int) -> str:
    """What ``found`` lacks, has extra, or has more than once compared with ``expected``."""
    want, have = _global(expected, nchunks), _global(found, nchunks)
    parts = []
    for label, mask in (
        ("missing", want[1] & ~have[1]),
        ("unexpected", have[1] & ~want[1]),
        ("more than once", have[2]),
    ):
        if mask:
            parts.append(f"{label} " + ", ".join(_term(bit, nchunks) for bit in _bits(mask)[:6]))
    return "; ".join(parts)


def _terms(value: tuple[int, int, int], nchunks: int, which: int) -> list[str]:
    return [_term(bit, nchunks) for bit in _bits(_global(value, nchunks)[which])]


def _bits(mask: int) -> list[int]:
    bits = []
    while mask:
        low = mask & -mask
        bits.append(low.bit_length() - 1)
        mask ^= low
    return bits


def _term(bit: int, nchunks: int) -> str:
    rank, chunk = divmod(bit, nchunks)
    return f"in_{rank}[{chunk}]"
