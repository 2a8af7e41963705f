"""What each collective means for a program: real buffer sizes, in-place aliasing, initial data and the
postcondition (msccl-xml.md §3.2).

Data is symbolic. Input chunk ``j`` of rank ``q`` is the contribution ``bit(q * N + j)``; a value in
memory is a pair ``(mask, duplicates)`` of the contributions it contains and of those it contains more
than once. Reduction ORs the masks and records every overlap as a duplicate, so "each rank exactly
once" is ``mask == expected and duplicates == 0``. ``None`` stands for never-written memory.
"""

from __future__ import annotations

from dataclasses import dataclass

Value = tuple[int, int] | None

#: collectives whose postcondition the verifier knows (the others are lint-only)
CHECKED_COLLECTIVES = ("allreduce", "allgather", "reducescatter", "alltoall", "broadcast", "reduce")


@dataclass(frozen=True)
class Layout:
    """Sizes in chunks of the user buffers of one rank and where each name lives under an aliasing.

    ``storages`` maps a storage name to its size; ``names`` maps ``i``/``o``/``s`` to
    ``(storage, base offset)``. Out of place, each name is its own storage; in place, ``i`` and ``o``
    share one (§3.2, "in-place aliasing").
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


def contribution(rank: int, chunk: int, nchunks: int) -> int:
    """The symbolic bit of input chunk ``chunk`` of ``rank``."""
    return 1 << (rank * nchunks + chunk)


def initial_memory(coll: str, nchunks: int, ngpus: int, rank: int, buffers: Layout) -> dict[str, list[Value]]:
    """Every storage of ``rank`` before the call: the input where the input lives, None elsewhere."""
    memory: dict[str, list[Value]] = {name: [None] * size for name, size in buffers.storages.items()}
    input_storage, base = buffers.names["i"]
    i_size = (real_sizes(coll, nchunks, ngpus) or (0, 0))[0]
    for chunk in range(i_size):
        memory[input_storage][base + chunk] = (contribution(rank, chunk, nchunks), 0)
    return memory


def expected_outputs(coll: str, nchunks: int, ngpus: int, rank: int, root: int | None) -> list[Value | str]:
    """The value every output chunk of ``rank`` must hold; ``"any"`` where the postcondition is silent."""
    per_rank = nchunks // ngpus

    every_rank = _every_rank(nchunks, ngpus)

    def reduced(chunk: int) -> Value:
        return (every_rank << chunk, 0)

    if coll == "allreduce":
        return [reduced(j) for j in range(nchunks)]
    if coll == "allgather":
        return [(contribution(j // per_rank, j % per_rank, nchunks), 0) for j in range(nchunks)]
    if coll == "reducescatter":
        return [reduced(rank * per_rank + j) for j in range(per_rank)]
    if coll == "alltoall":
        return [
            (contribution(j // per_rank, rank * per_rank + j % per_rank, nchunks), 0) for j in range(nchunks)
        ]
    if coll == "broadcast":
        assert root is not None
        return [(contribution(root, j, nchunks), 0) for j in range(nchunks)]
    if coll == "reduce":
        return [reduced(j) if rank == root else "any" for j in range(nchunks)]
    raise ValueError(f"no postcondition for {coll}")


def infer_root(coll: str, outputs: list[list[Value]], nchunks: int, ngpus: int) -> int | None:
    """The root a rooted file implements ("whatever the file implements", §3.2): for broadcast the
    rank whose input rank 0 ends up with, for reduce the rank that holds a full reduction."""
    if coll == "broadcast":
        first = outputs[0][0] if outputs and outputs[0] else None
        if first is not None:
            for q in range(ngpus):
                if first[0] == contribution(q, 0, nchunks):
                    return q
        return 0
    if coll == "reduce":
        full = _every_rank(nchunks, ngpus)
        for rank, values in enumerate(outputs):
            if values and values[0] is not None and values[0][0] == full:
                return rank
        return 0
    return None


def _every_rank(nchunks: int, ngpus: int) -> int:
    """The contributions of input chunk 0 of every rank (shift left by j for chunk j)."""
    return sum(contribution(q, 0, nchunks) for q in range(ngpus))


def describe(value: Value | str, nchunks: int, ngpus: int) -> str:
    """A readable form of a symbolic value: ``in_0[3] + in_1[3]``, abbreviated for large sums."""
    if value == "any":
        return "anything"
    if value is None:
        return "nothing (never written)"
    mask, duplicates = value
    terms = [_term(bit, nchunks) for bit in _bits(mask)]
    if not terms:
        return "an empty value"
    shown = " + ".join(terms) if len(terms) <= 6 else " + ".join(terms[:4]) + f" + … ({len(terms)} terms)"
    if duplicates:
        twice = ", ".join(_term(bit, nchunks) for bit in _bits(duplicates)[:6])
        shown += f", with {twice} more than once"
    return shown


def difference(expected: Value, found: Value, nchunks: int) -> str:
    """What ``found`` lacks, has extra, or has more than once compared with ``expected``."""
    assert expected is not None
    if found is None:
        return "never written"
    parts = []
    missing = _bits(expected[0] & ~found[0])
    extra = _bits(found[0] & ~expected[0])
    if missing:
        parts.append("missing " + ", ".join(_term(bit, nchunks) for bit in missing[:6]))
    if extra:
        parts.append("unexpected " + ", ".join(_term(bit, nchunks) for bit in extra[:6]))
    if found[1]:
        parts.append("more than once " + ", ".join(_term(bit, nchunks) for bit in _bits(found[1])[:6]))
    return "; ".join(parts)


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
