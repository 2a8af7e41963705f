"""Which call sizes a file takes: only those where it is predicted to beat the runtime's own algorithms.

The runtime picks the first loaded file whose ``[minBytes, maxBytes]`` holds the call, and otherwise
keeps its own algorithm. So the range is the product's promise: inside it collc's file is predicted at
least as fast as the runtime's best ring or tree at its best protocol, outside it the runtime keeps
its own choice. The range is read off the simulated outlook on a grid of sizes
(:func:`collc.compile.outlook.grid`, every power of two): a file holds one interval, so among the
runs of winning grid sizes the one reaching the top of the grid is taken (large calls carry most of a
job's bytes), else the longest (ties: the larger sizes). The bounds sit on sizes where the file was
simulated to win, so sizes between a losing and a winning point are left to the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol, TypeVar

from collc.compile.outlook import SizeOutlook
from collc.verify.runtimes import profile


@dataclass(frozen=True)
class ByteRange:
    """``minBytes``/``maxBytes`` as written in the file (``max_bytes = 0``: unbounded)."""

    min_bytes: int
    max_bytes: int

    def holds(self, nbytes: int) -> bool:
        return self.min_bytes <= nbytes and (self.max_bytes == 0 or nbytes <= self.max_bytes)


def inside_end(nbytes: int, end: str | None, given: ByteRange) -> bool:
    """Whether a call of ``nbytes`` lies on the side of the one end of the range the user gave
    (``end``: ``min`` or ``max``, the value in ``given``; None: no end given, every size does)."""
    if end == "min":
        return nbytes >= given.min_bytes
    return end != "max" or given.max_bytes == 0 or nbytes <= given.max_bytes


def at_end(chosen: ByteRange, end: str | None, given: ByteRange) -> ByteRange:
    """``chosen`` (where the file wins, on the user's side of ``end``) starting or ending at the end the
    user gave: ``--min-bytes`` alone is the smallest size the file takes and the top is predicted,
    ``--max-bytes`` alone the largest and the start predicted."""
    if end == "min":
        return ByteRange(given.min_bytes, chosen.max_bytes)
    return ByteRange(chosen.min_bytes, given.max_bytes) if end == "max" else chosen


class Contest(Protocol):
    """A call size and whether the file wins there (:class:`SizeOutlook` is one)."""

    @property
    def nbytes(self) -> int: ...

    @property
    def wins(self) -> bool: ...


Row = TypeVar("Row", bound=Contest)


def winning_runs(rows: Sequence[Row]) -> list[tuple[Row, ...]]:
    """Maximal runs of consecutive grid sizes where the file wins, smallest sizes first."""
    runs: list[tuple[Row, ...]] = []
    current: list[Row] = []
    for row in sorted(rows, key=lambda item: item.nbytes):
        if row.wins:
            current.append(row)
        elif current:
            runs.append(tuple(current))
            current = []
    if current:
        runs.append(tuple(current))
    return runs


def taken_run(rows: Sequence[Row]) -> tuple[Row, ...]:
    """The run of winning sizes a file's one interval takes (module docstring): the run that reaches
    the largest size, else the longest (ties: the larger sizes); empty where the file wins nowhere."""
    runs = winning_runs(rows)
    largest = max((row.nbytes for row in rows), default=0)
    return max(runs, key=lambda run: (run[-1].nbytes == largest, len(run), run[-1].nbytes), default=())


def choose_range(rows: Sequence[SizeOutlook], runtime: str) -> ByteRange | None:
    """The file's range on the outlook grid ``rows``, or None when it wins at no grid size."""
    run = taken_run(rows)
    if not run:
        return None
    low, high = run[0].nbytes, run[-1].nbytes
    if high == max(row.nbytes for row in rows):
        return ByteRange(low, 0)
    # The legacy loader compares maxBytes exclusively: one byte more keeps the last winning size in.
    inclusive = profile(runtime).max_bytes_inclusive
    return ByteRange(low, high + (0 if inclusive else 1))


def predicted_range(
    rows: Sequence[SizeOutlook],
    runtime: str,
    probe: Callable[[int], SizeOutlook],
    end: str | None,
    given: ByteRange,
) -> tuple[ByteRange | None, list[SizeOutlook]]:
    """:func:`choose_range` on the grid sizes on the user's side of the one end they gave
    (:func:`inside_end`), with that end simulated itself where it is off the grid (1x8 V100
    allreduce wins at ``--min-bytes 1.5MiB`` and loses at 4 MiB, the next grid size); and the rows it
    chose from. The caller moves the chosen range to the user's end (:func:`at_end`)."""
    inside = [row for row in rows if inside_end(row.nbytes, end, given)]
    size = {"min": given.min_bytes, "max": given.max_bytes}.get(end or "", 0)
    if size and size not in {row.nbytes for row in inside}:
        inside = sorted([*inside, probe(size)], key=attrgetter("nbytes"))
    return choose_range(inside, runtime), inside
