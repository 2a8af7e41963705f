"""Size sweeps in nccl-tests units and the crossover size (docs/cost-model.md §5).

A *predictor* is anything with ``time_us(collective, nbytes, proto) -> float``: the analytic forest
model, the discrete-event simulation of a program, the ring and tree baselines. The bound is not a
predictor but a line: ``time = S / algbw_bound``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple
from typing import Protocol as TypingProtocol

from collc.predict.params import PROTOCOLS, VENDOR_PROTOCOLS, Protocol, busbw_factor
from collc.progress import Report, silent
from collc.sizes import json_figure

# Crossover search: every size 2^(i/4) bytes from 1 B to 1 TiB, then bisection between grid points.
CROSSOVER_MAX_BYTES = 2**40
# Relative difference within which two predictions are a tie. A file can run what the runtime's own
# algorithm runs (two GPUs: one ring hop each way), and the two figures, reached along different float
# paths, then differ in their last bits; without a tie rule a file won or lost by that noise, and
# `compile` took 128 GiB and up while `simulate` said 1 MiB-4 GiB.
TIE = 1e-9
_GRID_STEPS_PER_OCTAVE = 4


class Predictor(TypingProtocol):
    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float: ...


class BestProtocol:
    """One of the runtime's algorithms at its fastest protocol for each call (:data:`VENDOR_PROTOCOLS`),
    whatever protocol it is asked at: what NCCL/RCCL run, which choose the protocol per size."""

    def __init__(self, inner: Predictor):
        self.inner = inner

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        return self.best_us(collective, nbytes)

    def best_us(self, collective: str, nbytes: int) -> float:
        """The call's time at the fastest of :data:`VENDOR_PROTOCOLS` (µs)."""
        return min(self.inner.time_us(collective, nbytes, PROTOCOLS[name]) for name in VENDOR_PROTOCOLS)


class Memo:
    """A predictor that remembers its answers (a sweep and its crossover search ask for the same sizes)."""

    def __init__(self, inner: Predictor):
        self.inner = inner
        self._seen: dict[tuple[str, int, Protocol], float] = {}

    def knows(self, collective: str, nbytes: int, proto: Protocol) -> bool:
        """Whether :meth:`time_us` would answer from memory."""
        return (collective, nbytes, proto) in self._seen

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        key = (collective, nbytes, proto)  # the protocol with its grain (a buffer size)
        if key not in self._seen:
            self._seen[key] = self.inner.time_us(collective, nbytes, proto)
        return self._seen[key]


@dataclass(frozen=True)
class Prediction:
    """One algorithm at one size: time (µs), algbw and busbw (GB/s, nccl-tests definitions)."""

    time_us: float
    algbw: float
    busbw: float

    def to_json(self) -> dict[str, float]:
        return {
            "time_us": json_figure(self.time_us),
            "algbw": json_figure(self.algbw),
            "busbw": json_figure(self.busbw),
        }


def prediction(collective: str, num_gpus: int, nbytes: int, time_us: float) -> Prediction:
    """Turn a time into nccl-tests algbw = S/t and busbw = algbw · factor (nccl-tests' units)."""
    algbw = nbytes / time_us / 1000
    return Prediction(time_us, algbw, algbw * float(busbw_factor(collective, num_gpus)))


@dataclass(frozen=True)
class Row:
    """One size of a sweep: collc, each baseline (by name) and the bound."""

    nbytes: int
    collc: Prediction
    baselines: Mapping[str, Prediction]
    bound: Prediction

    def to_json(self) -> dict[str, object]:
        row: dict[str, object] = {"bytes": self.nbytes, "collc": self.collc.to_json()}
        row.update({name: value.to_json() for name, value in self.baselines.items()})
        row["bound"] = self.bound.to_json()
        return row


@dataclass(frozen=True)
class Sweep:
    """A whole sweep: the rows and the crossover size (None if collc never wins)."""

    collective: str
    proto: str
    num_gpus: int
    rows: tuple[Row, ...]
    crossover_bytes: int | None
    bound_algbw: Fraction
    #: what no schedule of the collective exceeds (:meth:`collc.predict.model.TopologyModel.ceiling_algbw`):
    #: the bound, except for allreduce, whose overlapped halves can beat reduce-scatter then allgather
    ceiling_algbw: Fraction | None = None

    def winning_sizes(self) -> list[int]:
        """The sizes of the table where collc is at least as fast as every baseline."""
        return [
            row.nbytes
            for row in self.rows
            if all(no_slower(1 / row.collc.time_us, 1 / other.time_us) for other in row.baselines.values())
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "collective": self.collective,
            "proto": self.proto,
            "num_gpus": self.num_gpus,
            "bound_algbw": json_figure(self.bound_algbw),
            "ceiling_algbw": json_figure(self.ceiling_algbw),
            "rows": [row.to_json() for row in self.rows],
            "collc_wins": self.winning_sizes(),
            "crossover_bytes": self.crossover_bytes,
        }


def _wins(
    collc: Predictor, baselines: Mapping[str, Predictor], collective: str, nbytes: int, proto: Protocol
) -> bool:
    mine = collc.time_us(collective, nbytes, proto)
    return all(
        no_slower(1 / mine, 1 / other.time_us(collective, nbytes, proto)) for other in baselines.values()
    )


def crossover_bytes(
    collc: Predictor,
    baselines: Mapping[str, Predictor],
    collective: str,
    proto: Protocol,
    grid: list[int] | None = None,
) -> int | None:
    """Smallest byte count from which collc is at least as fast as every baseline (:func:`no_slower`)
    at every larger size.

    Searched on ``grid`` (default: 4 sizes per octave from 1 B to 1 TiB; an expensive predictor such as
    the event simulation passes the sweep's sizes) and refined by bisection; 0 if collc wins from 1 byte
    on, the grid's first size if it wins there, None if it does not win at the grid's last size.
    """
    custom_grid = grid
    grid = sorted(set(grid or [])) or sorted(
        {round(2 ** (i / _GRID_STEPS_PER_OCTAVE)) for i in range(40 * _GRID_STEPS_PER_OCTAVE + 1)}
    )
    first_win = None
    for nbytes in reversed(grid):
        if not _wins(collc, baselines, collective, nbytes, proto):
            break
        first_win = nbytes
    if first_win is None:
        return None
    if first_win == grid[0]:
        return 0 if grid[0] <= 1 else grid[0]
    low = grid[grid.index(first_win) - 1]  # loses here
    high = first_win
    # Exact bisection on the fine grid; on a caller's (coarse, expensive) grid to 1/256 of the gap.
    tolerance = 1 if custom_grid is None else max(1, (high - low) // 256)
    while high - low > tolerance:
        middle = (low + high) // 2
        if _wins(collc, baselines, collective, middle, proto):
            high = middle
        else:
            low = middle
    return high


def no_slower(algbw: float, other: float) -> bool:
    """Whether ``algbw`` is at least ``other``, ties (:data:`TIE`) included: "at least as fast", the
    rule of every range, table and summary sentence that says where collc wins. Times compare as
    their reciprocals."""
    return algbw * (1 + TIE) >= other


class Lookahead(NamedTuple):
    """Work a sweep starts ahead of the sizes it reports: ``make(sizes)`` prepares collc's
    predictions of ``sizes`` (the event simulation runs them side by side), ``width`` sizes at a time
    so that progress still moves size by size."""

    width: int
    make: Callable[[Sequence[int]], None]


def sweep(
    collective: str,
    sizes: list[int],
    proto: Protocol,
    num_gpus: int,
    collc: Predictor,
    baselines: Mapping[str, Predictor],
    best: Fraction,
    crossover_grid: list[int] | None = None,
    progress: Report = silent,
    lookahead: Lookahead | None = None,
) -> Sweep:
    """Predict every size for collc, the baselines and the bound (``best``: optimal algbw, GB/s).

    ``crossover_grid``: sizes to search the crossover on (default: the fine grid of
    :func:`crossover_bytes`). ``progress`` hears ``"simulate: sizes"`` after each size.
    """
    collc = Memo(collc)
    baselines = {name: Memo(model) for name, model in baselines.items()}
    rows = []
    for done, nbytes in enumerate(sizes):
        progress("simulate: sizes", done, len(sizes))
        if lookahead is not None and done % lookahead.width == 0:
            lookahead.make(sizes[done : done + lookahead.width])
        rows.append(
            Row(
                nbytes,
                prediction(collective, num_gpus, nbytes, collc.time_us(collective, nbytes, proto)),
                {
                    name: prediction(collective, num_gpus, nbytes, model.time_us(collective, nbytes, proto))
                    for name, model in baselines.items()
                },
                prediction(collective, num_gpus, nbytes, nbytes / float(best) / 1000),
            )
        )
    progress("simulate: sizes", len(sizes), len(sizes))
    crossover = crossover_bytes(collc, baselines, collective, proto, crossover_grid)
    return Sweep(collective, proto.name, num_gpus, tuple(rows), crossover, best)
