"""What a written file is predicted to do, size by size, next to the runtime's own algorithms.

Every collc figure here is the event simulation of the program itself (:class:`collc.predict.des.
ProgramCost`), never the forest's bound: the file is what runs. The runtime's algorithms are NCCL/RCCL's
ring and (for allreduce) double binary tree, each at its fastest protocol for that size, since the
runtime tunes the protocol per call. A size counts only if the runtime would select the file for it:
:func:`collc.verify.select.explain` applies the runtime's own rule (collective, rank count, size range,
``nchunksperloop`` dividing the element count).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from math import lcm

from collc.msccl.program import Algorithm
from collc.predict.des import prefetch, runs_of
from collc.predict.model import TopologyModel
from collc.predict.params import PROTOCOLS, Protocol, busbw_factor
from collc.predict.sweep import BestProtocol, Memo, Predictor, no_slower
from collc.sizes import json_figure
from collc.verify.select import PER_RANK_COLLECTIVES, explain

#: Element size of the calls predicted: nccl-tests' default data type is float (4 bytes).
DTYPE_BYTES = 4
#: Sizes every compile report shows (nccl-tests sizes): a small call, one that is a single pipelining
#: iteration for typical files, and a large one.
REPORT_SIZES = (2**20, 2**26, 2**30)
#: The size grid on which a file's range is chosen: every power of two from 4 KiB to 1 TiB, the sizes of
#: an nccl-tests sweep with ``-f 2``. On powers of four (with each end of the range refined by one power
#: of two) a file that lost at a power of two inside a winning run was selected there: a 2x8 fabric
#: with one NVLink at 100 GB/s and one NIC at 12.5 wrote an allreduce file for 4 KiB and up, predicted
#: 24.3 GB/s at 2 MiB against NCCL's tree at 26.8 (it wins at 1 and 4 MiB).
#: Above the top the simulated time grows linearly with the size for the file and the baselines
#: alike, and no caller issues larger calls.
GRID_EXPONENTS = range(12, 41)


@dataclass(frozen=True)
class SizeOutlook:
    """One call size: the file's simulated algbw (None where the runtime cannot select the file at
    this size whatever its range), the runtime's ring and tree at their best protocol, the bound."""

    nbytes: int
    algbw: float | None
    busbw: float | None
    ring_algbw: float
    tree_algbw: float | None
    bound_algbw: float
    selected: bool  # within the file's [minBytes, maxBytes] and served

    @property
    def vendor_algbw(self) -> float:
        return max(self.ring_algbw, self.tree_algbw or 0.0)

    @property
    def wins(self) -> bool:
        """At least as fast as the runtime's best built-in algorithm at this size."""
        return self.algbw is not None and no_slower(self.algbw, self.vendor_algbw)

    def to_json(self) -> dict[str, object]:
        return {
            "bytes": self.nbytes,
            "algbw": json_figure(self.algbw),
            "busbw": json_figure(self.busbw),
            "ring_algbw": json_figure(self.ring_algbw),
            "tree_algbw": json_figure(self.tree_algbw),
            "bound_algbw": json_figure(self.bound_algbw),
            "selected": self.selected,
        }


def nccl_tests_bytes(coll: str, nbytes: int, nranks: int) -> int:
    """The bytes nccl-tests moves when asked for ``nbytes`` (``-b``/``-e``, float): whole elements,
    and for allgather and reduce-scatter a multiple of 16 bytes per rank (its ``GetCollByteCount``:
    ``(count / nranks) & -(16 / eltSize)``), so on 72 ranks "1 MiB" is 1,048,320 bytes; 0 where the
    size is too small for one such unit."""
    count = nbytes // DTYPE_BYTES
    if coll not in PER_RANK_COLLECTIVES:
        return count * DTYPE_BYTES
    per_rank = (count // nranks) & -(16 // DTYPE_BYTES)
    return per_rank * nranks * DTYPE_BYTES


def served_size(algo: Algorithm, nbytes: int) -> int:
    """The smallest size >= ``nbytes`` whose element count the file's ``nchunksperloop`` divides.

    For a power-of-two ``nchunksperloop`` that is ``nbytes`` itself (from one chunk per slot up), so
    reports show the familiar sizes; a file with ``nchunksperloop = 72`` is shown at the nearest
    multiple it can serve instead of at a size the runtime would never give it. Allgather and
    reduce-scatter sizes are also whole elements per rank.
    """
    per_rank = algo.ngpus if algo.coll in PER_RANK_COLLECTIVES else 1
    quantum = lcm(algo.nchunksperloop * DTYPE_BYTES, per_rank * DTYPE_BYTES)
    return max(quantum, -(-nbytes // quantum) * quantum)


def selects(algo: Algorithm, nbytes: int, runtime: str) -> bool:
    """Whether the runtime would take ``algo`` for an in-place or out-of-place call of ``nbytes``."""
    return explain(
        algo,
        nranks=algo.ngpus,
        nbytes=nbytes,
        dtype_size=DTYPE_BYTES,
        inplace=bool(algo.inplace),
        runtime=runtime,
    ).selected


def vendor_algbw(model: TopologyModel, collective: str, nbytes: int) -> dict[str, float]:
    """algbw (GB/s) of each of the runtime's algorithms at its fastest protocol for ``nbytes``."""
    return {
        name: nbytes / BestProtocol(predictor).best_us(collective, nbytes) / 1000
        for name, predictor in model.baselines(collective).items()
    }


def outlook(
    model: TopologyModel,
    algo: Algorithm,
    sizes: Iterable[int],
    runtime: str,
    predictor: Predictor | None = None,
    proto: Protocol | None = None,
) -> list[SizeOutlook]:
    """The file ``algo`` at each size (moved to the nearest size it serves), simulated.

    ``predictor`` lets callers share one memoised simulation across calls (the same program is
    asked for the same sizes by the range choice and the report). ``proto`` is the model of the file's
    protocol as deployed (a Simple file tuned for a smaller ``NCCL_BUFFSIZE`` pipelines at its grain);
    by default the runtime's default buffers. The runtime's own ring and tree are predicted at their
    default buffers: what the cluster runs without collc.
    """
    cost = predictor or Memo(model.collc(algo))
    proto = proto or PROTOCOLS[algo.proto]
    bound = float(model.bound_algbw(algo.coll))
    factor = float(busbw_factor(algo.coll, algo.ngpus))
    whole = replace(algo, min_bytes=0, max_bytes=0)
    served = sorted({served_size(algo, size) for size in sizes})
    simulated = {nbytes for nbytes in served if selects(whole, nbytes, runtime)}
    prefetch(runs_of(cost, algo.coll, sorted(simulated), proto))  # side by side; same answers
    rows = []
    for nbytes in served:
        algbw = nbytes / cost.time_us(algo.coll, nbytes, proto) / 1000 if nbytes in simulated else None
        vendor = vendor_algbw(model, algo.coll, nbytes)
        rows.append(
            SizeOutlook(
                nbytes=nbytes,
                algbw=algbw,
                busbw=None if algbw is None else algbw * factor,
                ring_algbw=vendor["ring"],
                tree_algbw=vendor.get("tree"),
                bound_algbw=bound,
                selected=algbw is not None and selects(algo, nbytes, runtime),
            )
        )
    return rows


def grid() -> list[int]:
    """The sizes on which a file's range is chosen (:data:`GRID_EXPONENTS`)."""
    return [2**exponent for exponent in GRID_EXPONENTS]


def losses(rows: Sequence[SizeOutlook]) -> list[SizeOutlook]:
    """Sizes where the runtime would select the file and it is predicted slower than the vendor."""
    return [row for row in rows if row.selected and not row.wins]


@dataclass(frozen=True)
class DeployedFile:
    """One algorithm file of a deployed directory (``MSCCL_ALGO_DIR``), with the model of its protocol
    as it runs there (a Simple file at the NCCL_BUFFSIZE its name records or the user gives)."""

    name: str
    algo: Algorithm
    proto: Protocol


@dataclass(frozen=True)
class CallOutlook:
    """One call size of a collective on a deployed directory: the file the runtime selects for it
    (None: no file takes the call, the runtime's own algorithms run it) and that file's simulated
    algbw, next to the runtime's ring and tree at their best protocol and the bound."""

    nbytes: int
    file: str | None
    algbw: float | None
    busbw: float | None
    ring_algbw: float
    tree_algbw: float | None
    bound_algbw: float
    takers: int  # files that would take the call: above one, a runtime that scans unsorted may pick another

    @property
    def vendor_algbw(self) -> float:
        return max(self.ring_algbw, self.tree_algbw or 0.0)

    @property
    def loses(self) -> bool:
        """A file takes the call and is predicted slower than the runtime's best would be."""
        return self.algbw is not None and not no_slower(self.algbw, self.vendor_algbw)

    def to_json(self) -> dict[str, object]:
        return {
            "bytes": self.nbytes,
            "file": self.file,
            "algbw": json_figure(self.algbw),
            "busbw": json_figure(self.busbw),
            "ring_algbw": json_figure(self.ring_algbw),
            "tree_algbw": json_figure(self.tree_algbw),
            "bound_algbw": json_figure(self.bound_algbw),
            "takers": self.takers,
        }


def directory_outlook(
    model: TopologyModel, files: Sequence[DeployedFile], coll: str, sizes: Iterable[int], runtime: str
) -> list[CallOutlook]:
    """Each call of ``coll`` of ``sizes`` bytes on a directory of ``files`` in the runtime's priority
    order: the first file whose collective, rank count (the fabric's GPUs), size range and
    ``nchunksperloop`` take the call exactly as the runtime checks it (:func:`selects`; no size is
    moved), simulated at that size.

    msccl-executor scans the directory in sorted path order and takes the first match; RCCL scans it
    in ``readdir`` order, so where two files take one call the outcome there depends on the file
    system (a collc bundle's files of one collective overlap only as an optimal file and its fallback).
    """
    sizes = list(sizes)
    ours = [item for item in files if item.algo.coll == coll and item.algo.ngpus == model.topology.num_gpus]
    takers = {size: [item for item in ours if selects(item.algo, size, runtime)] for size in sizes}
    chosen = {size: found[0] if found else None for size, found in takers.items()}
    used = {item.name: item for item in chosen.values() if item is not None}
    costs = {name: Memo(model.collc(item.algo)) for name, item in used.items()}
    runs = [
        run
        for size, item in chosen.items()
        if item
        for run in runs_of(costs[item.name], coll, [size], item.proto)
    ]
    prefetch(runs)
    bound = float(model.bound_algbw(coll))
    factor = float(busbw_factor(coll, model.topology.num_gpus))
    rows = []
    for size in sizes:
        item = chosen[size]
        algbw = None if item is None else size / costs[item.name].time_us(coll, size, item.proto) / 1000
        vendor = vendor_algbw(model, coll, size)
        rows.append(
            CallOutlook(
                nbytes=size,
                file=None if item is None else item.name,
                algbw=algbw,
                busbw=None if algbw is None else algbw * factor,
                ring_algbw=vendor["ring"],
                tree_algbw=vendor.get("tree"),
                bound_algbw=bound,
                takers=len(takers[size]),
            )
        )
    return rows
