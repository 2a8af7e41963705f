"""Discrete-event simulation of an MSCCL program on a topology (docs/cost-model.md §4).

What is modelled (the MSCCL executor's interpreter):

* Every threadblock runs its step list once per pipeline iteration, in order. An iteration moves one
  primitive call's worth (``Protocol.call_bytes``: 2 MiB on Simple) of every chunk, so a step with
  ``cnt = c`` sends ``c`` of them and a call of ``S`` bytes on ``N`` chunks runs
  ``ceil(S / (N · call_bytes))`` iterations, as the runtime's loop does. At most :data:`STEP_BUDGET`
  steps are simulated (never fewer than :data:`MIN_ITERATIONS` iterations); the remaining iterations
  are added at the slope of the end time over the iterations, from a second run of half as many
  (so the pipelining grain stays the runtime's).
* A step starts when the previous step of its threadblock is done, its dependency ``(depid, deps)`` of
  the same iteration is done, for a receive: the matching message (k-th send ↔ k-th receive on the
  connection ``(sender, receiver, chan)``) has arrived, and for a send: the connection's FIFO has room
  (at most ``fifo_calls`` messages sent and not yet consumed).
* A send is a flow over the physical path of its GPU pair (shortest by hops, moved onto the network
  plane its channel selects as collc's lowering assigns them, or the path given by the caller).
  Concurrent flows share every arc max-min fairly (progressive filling,
  :mod:`collc.predict.fairshare`), and no flow runs faster than one threadblock copies with the
  connection's handshakes between its slices (``Protocol.tb_rate_gbps``). The step ends when its
  flow has drained; the message arrives ``path latency + step overhead`` later. Composite steps
  (``rcs``, ``rrs``, ``rrcs``) forward only after their receive: store-and-forward per
  slice. Local steps (``r``, ``rrc``, ``cpy``, ``re``, ``nop``) take no time.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from fractions import Fraction
from functools import partial
from math import ceil, inf
from operator import attrgetter
from queue import SimpleQueue
from typing import NamedTuple

import numpy as np
from numba import njit

from collc.errors import CollcError, InputError
from collc.heaps import heap_pop, heap_push
from collc.kernels import kernel
from collc.lowering.plan import network_planes
from collc.msccl.program import RECV_TYPES, SEND_TYPES, Algorithm
from collc.predict.fairshare import Shares, shares_of, update
from collc.predict.network import Arc, Network
from collc.predict.params import LAUNCH_US, Protocol
from collc.predict.sweep import Memo
from collc.predict.tournament import tree_at_most, tree_of, tree_set


class Deadlock(CollcError):
    """The simulated program cannot finish: a verdict on the file, exit 1 as ``collc verify``'s
    ``deadlock`` (not bad input, exit 2)."""


# What a run made ahead of need leaves unmade, to raise where the run is needed: the program is not
# one the simulation takes, or it deadlocks.
UNSIMULATED = (InputError, Deadlock)
STEP_BUDGET = 200_000  # simulated steps (all threadblocks, all iterations) per call (docs/cost-model.md §4)
MIN_ITERATIONS = 4  # simulated even above the budget, so that a period can be measured
_EPS = 1e-9
DRAINED = 1e-6  # share of one unit of cnt's bytes below which a flow counts as drained

Connection = tuple[int, int, int]  # (sender rank, receiver rank, channel)


class _Tb(NamedTuple):
    """A threadblock: its rank, id and connections (its steps are in :class:`_Steps`)."""

    gpu: int
    tb: int
    send: Connection | None
    recv: Connection | None


class _Steps(NamedTuple):
    """Every threadblock's steps as columns, threadblocks in order, each one's steps in order."""

    nsteps: np.ndarray  # per threadblock
    owner: np.ndarray  # per step: the index of its threadblock
    is_send: np.ndarray  # per step: whether it sends, receives
    is_recv: np.ndarray
    cnt: np.ndarray
    depid: np.ndarray
    deps: np.ndarray

    def sent(self) -> np.ndarray:
        """Per threadblock, the chunks its send steps move in one iteration."""
        return np.bincount(self.owner, weights=self.cnt * self.is_send, minlength=len(self.nsteps))


class _StepTable(NamedTuple):
    """The threadblocks' steps as flat arrays, for the simulation's compiled loop.

    The steps of threadblock ``i`` are ``first[i] .. first[i] + nsteps[i] - 1``. Connections are
    numbered; a dependency names the index of the threadblock it waits for.
    """

    nsteps: np.ndarray
    first: np.ndarray
    is_send: np.ndarray  # per step
    is_recv: np.ndarray
    cnt: np.ndarray
    dep_tb: np.ndarray  # -1: no dependency
    deps: np.ndarray
    send_conn: np.ndarray  # per threadblock; -1: it sends nothing
    recv_conn: np.ndarray
    sender: np.ndarray  # per connection: the threadblock that sends on it
    receiver: np.ndarray
    dep_ptr: np.ndarray  # the other threadblocks whose steps wait for ``i``: dep_idx[dep_ptr[i]:dep_ptr[i+1]]
    dep_idx: np.ndarray


_STEP_COLUMNS = tuple(attrgetter(name) for name in ("type", "cnt", "depid", "deps"))


def _threadblocks(algo: Algorithm) -> tuple[list[_Tb], _Steps]:
    """The program's threadblocks, rank by rank, and their steps as columns."""
    tbs: list[_Tb] = []
    nsteps: list[int] = []
    columns: tuple[list, ...] = ([], [], [], [])
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            send = (gpu.id, tb.send, tb.chan) if tb.send >= 0 else None
            tbs.append(_Tb(gpu.id, tb.id, send, (tb.recv, gpu.id, tb.chan) if tb.recv >= 0 else None))
            nsteps.append(len(tb.steps))
            for column, field in zip(columns, _STEP_COLUMNS, strict=True):
                column.extend(map(field, tb.steps))
    kinds, cnt, depid, deps = columns
    counts = np.array(nsteps, dtype=np.int64)
    types = np.array(kinds, dtype=str)
    return tbs, _Steps(
        counts,
        np.repeat(np.arange(len(counts)), counts),
        np.isin(types, sorted(SEND_TYPES)),
        np.isin(types, sorted(RECV_TYPES)),
        np.array(cnt, dtype=np.int64),
        np.array(depid, dtype=np.int64),
        np.array(deps, dtype=np.int64),
    )


def _named_tbs(tbs: list[_Tb], gpus: np.ndarray, depid: np.ndarray) -> np.ndarray:
    """Per step of rank ``gpus[i]`` naming threadblock id ``depid[i]``, the index of that threadblock
    in ``tbs``; -1 where the rank has none of that id. The table is ranks × distinct ids, whatever the
    ids' values (a file's ids need not be dense before it is checked)."""
    ids = np.array([tb.tb for tb in tbs], dtype=np.int64)
    known = np.unique(ids)
    table = np.full((max(tb.gpu for tb in tbs) + 1, len(known)), -1, dtype=np.int64)
    table[[tb.gpu for tb in tbs], np.searchsorted(known, ids)] = np.arange(len(tbs))
    column = np.minimum(np.searchsorted(known, depid), len(known) - 1)
    found = table[gpus, column]
    return np.where(known[column] == depid, found, -1)


def _dependencies(tbs: list[_Tb], steps: _Steps) -> np.ndarray:
    """Per step, the index of the threadblock its dependency names (-1: none), after checking that
    connections pair up and that every dependency names a threadblock of the same GPU (else the
    input is bad)."""
    sends = {tb.send for tb in tbs if tb.send is not None}
    receives = {tb.recv for tb in tbs if tb.recv is not None}
    problems = [
        f"gpu {s[0]} sends to {s[1]} on channel {s[2]} but nobody receives" for s in sorted(sends - receives)
    ]
    problems += [
        f"gpu {r[1]} receives from {r[0]} on channel {r[2]} but nobody sends"
        for r in sorted(receives - sends)
    ]
    dep_tb = np.full(len(steps.depid), -1, dtype=np.int64)
    if tbs:
        gpus = np.array([tb.gpu for tb in tbs], dtype=np.int64)[steps.owner]
        named = steps.depid >= 0
        dep_tb[named] = _named_tbs(tbs, gpus[named], steps.depid[named])
        missing = np.flatnonzero(named & (dep_tb < 0))
        problems += [
            f"gpu {gpus[i]} tb {tbs[owner].tb} depends on tb {steps.depid[i]}, which does not exist"
            for i, owner in zip(missing, steps.owner[missing], strict=True)
        ]
    if problems:
        raise InputError(
            f"the schedule cannot run: {'; '.join(problems[:5])}",
            hint="run `collc verify` on the file for every problem with its location",
        )
    return dep_tb


def _step_table(tbs: list[_Tb], steps: _Steps, dep_tb: np.ndarray) -> _StepTable:
    connections = sorted({tb.send for tb in tbs if tb.send is not None})
    conn_index = {connection: c for c, connection in enumerate(connections)}
    send_conn = np.array([conn_index[tb.send] if tb.send is not None else -1 for tb in tbs], dtype=np.int64)
    recv_conn = np.array([conn_index[tb.recv] if tb.recv is not None else -1 for tb in tbs], dtype=np.int64)
    sender = np.zeros(len(connections), dtype=np.int64)
    receiver = np.zeros(len(connections), dtype=np.int64)
    sender[send_conn[send_conn >= 0]] = np.flatnonzero(send_conn >= 0)
    receiver[recv_conn[recv_conn >= 0]] = np.flatnonzero(recv_conn >= 0)
    # the threadblocks whose steps wait for each other one, each once, in increasing order
    owners = steps.owner
    waits = (dep_tb >= 0) & (dep_tb != owners)
    pairs = np.unique(dep_tb[waits] * len(tbs) + owners[waits])
    dep_ptr = np.zeros(len(tbs) + 1, dtype=np.int64)
    dep_ptr[1:] = np.cumsum(np.bincount(pairs // max(len(tbs), 1), minlength=len(tbs)))
    first = np.zeros(len(tbs), dtype=np.int64)
    first[1:] = np.cumsum(steps.nsteps)[:-1]
    return _StepTable(
        nsteps=steps.nsteps,
        first=first,
        is_send=steps.is_send,
        is_recv=steps.is_recv,
        cnt=steps.cnt,
        dep_tb=dep_tb,
        deps=steps.deps,
        send_conn=send_conn,
        recv_conn=recv_conn,
        sender=sender,
        receiver=receiver,
        dep_ptr=dep_ptr,
        dep_idx=(pairs % max(len(tbs), 1)).astype(np.int64),
    )


def _route(
    network: Network, connection: Connection, planes: list[str], load: dict[Arc, float], amount: float
) -> tuple[str, ...]:
    """The physical path of a connection: the runtime's path of its GPU pair, moved onto the rail
    its channel selects, or between boxes through the NICs the runtime gives the two GPUs.

    The runtime maps channels to NICs; collc's lowering puts a transfer that crosses network plane
    ``p`` of ``P`` on a channel ``≡ p (mod P)`` (docs/lowering.md, Rails), so a connection whose
    path crosses a plane is routed through plane ``chan mod P`` instead. Without planes, a connection
    that leaves its box through a NIC leaves through the sender's NIC for that channel and enters
    through the receiver's (:meth:`Network.nic_for`), where that makes a path that does not loop.
    Through the shared network, the connection takes the least loaded of the equal-cost paths that
    keep its plane (:meth:`Network.spread`; ``load``: what the connections routed before it put on
    each arc, ``amount``: the chunks per iteration it sends).
    """
    return network.spread(runtime_path(network, connection, planes), load, amount, frozenset(planes))


def runtime_path(network: Network, connection: Connection, planes: list[str]) -> tuple[str, ...]:
    """:func:`_route` before the network's switches spread it: the path the runtime gives the
    connection (its GPU pair and channel)."""
    src, dst, chan = connection
    ranks = network.topology.ranks
    path = network.path(ranks[src], ranks[dst])
    if planes and any(node in planes for node in path):
        return network.path_via(ranks[src], planes[chan % len(planes)], ranks[dst])
    nics = {node for node in path if network.topology.node(node).kind == "nic"}
    if not nics:
        return path
    ends = (network.nic_for(ranks[src], chan), network.nic_for(ranks[dst], chan))
    if None in ends or ends[0] == ends[1]:
        return path
    through = network.path_via(ranks[src], ends[0], ends[1])
    through += network.path(ends[1], ranks[dst])[1:]
    return through if len(set(through)) == len(through) else path


class ArcLoad(NamedTuple):
    """An arc and the chunks of one iteration that cross it (every send of every threadblock, on the
    runtime's paths), at its bandwidth (GB/s)."""

    arc: Arc
    chunks: float
    bandwidth: float


class ProgramCost:
    """Predicts the time of one MSCCL program on a topology by discrete-event simulation.

    ``busiest_arc`` is the arc whose chunks per iteration take longest at its bandwidth (None when
    nothing is sent): no iteration is shorter (:meth:`arc_limit_algbw`).
    """

    def __init__(
        self,
        network: Network,
        algo: Algorithm,
        paths: Mapping[tuple[int, int], tuple[str, ...]] | None = None,
    ):
        self.network = network
        self.algo = algo
        self.tbs, steps = _threadblocks(algo)
        ranks = network.topology.ranks
        if algo.ngpus != len(ranks):
            raise InputError(
                f"the schedule is for {algo.ngpus} GPUs but {network.topology.name!r} has {len(ranks)}",
                hint="simulate the schedule on the topology it was compiled for",
            )
        self._table = _step_table(self.tbs, steps, _dependencies(self.tbs, steps))
        plane_index = network_planes(network.topology)
        planes = sorted(plane_index, key=plane_index.get)
        arcs = sorted(network.bandwidth)
        arc_index = {arc: i for i, arc in enumerate(arcs)}
        self._bandwidth = np.array([float(network.bandwidth[arc]) for arc in arcs])
        self._routes: list[list[int]] = []  # per threadblock: the arcs its sends cross
        latency = []
        spread: dict[Arc, float] = {}  # chunks per iteration routed over each shared-network arc
        sent = steps.sent().tolist()
        for tb, amount in zip(self.tbs, sent, strict=True):
            if tb.send is None:
                self._routes.append([])
                latency.append(0.0)
                continue
            path = (paths or {}).get(tb.send[:2]) or _route(network, tb.send, planes, spread, amount)
            self._routes.append([arc_index[arc] for arc in network.arcs_of(path)])
            latency.append(network.path_latency_us(path))
        self._latency = np.array(latency)
        self._runs: dict[Run, float] = {}  # end times of the runs made (:meth:`ensure`)
        self._ahead: dict[Run, Future[None]] = {}  # runs started ahead of need (:func:`start_ahead`)
        arc_cnt = np.zeros(len(arcs))  # chunks per iteration over every arc
        for amount, route in zip(sent, self._routes, strict=True):
            arc_cnt[route] += amount
        # the busiest arc's chunks per iteration over its bandwidth: the floor of every iteration
        per_gbps = arc_cnt / self._bandwidth
        busiest = int(per_gbps.argmax()) if len(arcs) else None
        self._busiest = 0.0 if busiest is None else float(per_gbps[busiest])
        self.busiest_arc = (
            None
            if busiest is None or arc_cnt[busiest] == 0
            else ArcLoad(arcs[busiest], float(arc_cnt[busiest]), float(self._bandwidth[busiest]))
        )

    def iterations(self, nbytes: int, proto: Protocol) -> tuple[int, int, float]:
        """(simulated iterations, real iterations, payload bytes per chunk per iteration) of ``nbytes``."""
        chunk = nbytes / self.algo.nchunksperloop
        real = max(1, ceil(chunk / proto.call_bytes))
        steps = max(1, int(self._table.nsteps.sum()))  # one iteration's steps, all threadblocks
        simulated = min(real, max(MIN_ITERATIONS, STEP_BUDGET // steps))
        return simulated, real, chunk / real

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        """Simulated time (µs) of one call of ``nbytes`` (nccl-tests size) with protocol ``proto``."""
        if collective != self.algo.coll:
            raise InputError(
                f"the schedule implements {self.algo.coll}, not {collective}",
                hint=f"use --coll {self.algo.coll}",
            )
        return LAUNCH_US + self._simulate(nbytes, proto)

    def _simulate(self, nbytes: int, proto: Protocol) -> float:
        """Run the simulated iterations; above the budget, add the rest at the slope of the end time.

        The slope is ``(T(n) - T(n/2)) / (n - n/2)`` from a second run of half the ``n`` simulated
        iterations: how much later a call ends for each iteration it has, drift and drain included.
        Reading a period off the last iterations of one run instead is optimistic where some
        threadblocks fall behind the others a little every iteration: the run's last iterations are
        then its laggards catching up with the arcs to themselves (4x8 V100 allgather, k = 1: 62.6
        GB/s extrapolated that way from 99 of 256 iterations, 57.2 simulating all 256; the slope
        gives 57.2). The two runs are independent and run side by side (:func:`prefetch`).
        """
        iterations, real, call_bytes = self.iterations(nbytes, proto)
        prefetch([(self, key) for key in self.runs_for(nbytes, proto)], strict=True)
        end = self._runs[Run(iterations, call_bytes, proto)]
        if real == iterations:
            return end
        half = iterations // 2  # >= 2: at least MIN_ITERATIONS are simulated when some are left over
        slope = (end - self._runs[Run(half, call_bytes, proto)]) / (iterations - half)
        return end + (real - iterations) * max(slope, self.busiest_arc_us(call_bytes, proto))

    def runs_for(self, nbytes: int, proto: Protocol) -> list[Run]:
        """The runs a call of ``nbytes`` needs that have not run yet. A run is made once per program:
        every size whose simulated iterations move the same bytes shares it (all power-of-two sizes
        above the step budget)."""
        iterations, real, call_bytes = self.iterations(nbytes, proto)
        counts = (iterations,) if real == iterations else (iterations, iterations // 2)
        return [
            Run(count, call_bytes, proto)
            for count in counts
            if Run(count, call_bytes, proto) not in self._runs
        ]

    def ensure(self, run: Run) -> None:
        """Simulate ``run`` unless it has run: when its last iteration ends (µs). A run started ahead
        (:func:`start_ahead`) is waited for, and one still queued there is taken back and run here (the
        spare thread runs one at a time, the caller may have more threads); a run that failed ahead
        runs again here and raises."""
        ahead = self._ahead.pop(run, None)
        if ahead is not None and not ahead.cancel():
            ahead.result()
        if run not in self._runs:
            self._runs[run] = self._end(run)

    def _end(self, run: Run) -> float:
        """When the last iteration of ``run`` ends (µs)."""
        return float(self._run(run.iterations, run.call_bytes, run.proto)[-1])

    def _run_ahead(self, run: Run) -> None:
        """Make ``run`` on the spare thread (:func:`start_ahead`); a failure leaves it unmade."""
        with suppress(*UNSIMULATED):
            self._runs[run] = self._end(run)

    def __getstate__(self) -> dict[str, object]:
        """Everything once the runs started ahead are done (a future cannot be pickled)."""
        for ahead in list(self._ahead.values()):
            ahead.result()
        return {**self.__dict__, "_ahead": {}}

    def arc_limit_algbw(self, proto: Protocol) -> float:
        """An algbw (GB/s) no call of this program exceeds with ``proto``: every iteration moves one call
        of each of the ``nchunksperloop`` chunks and its busiest arc carries its share of them, so an
        iteration takes at least that arc's time. Both halves of an allreduce count, on the arcs they
        use: where they use opposite directions (a line of GPUs) this is above the reduce-scatter plus
        allgather figure, which is no ceiling for such a file."""
        return (
            inf if self._busiest == 0 else self.algo.nchunksperloop * float(proto.efficiency) / self._busiest
        )

    def busiest_arc_algbw(self) -> Fraction | None:
        """:meth:`arc_limit_algbw` in wire bytes, exactly: the ``nchunksperloop`` chunks of an
        iteration over the time the busiest arc needs for its chunks at its bandwidth (None when
        nothing is sent)."""
        if self.busiest_arc is None:
            return None
        arc = self.busiest_arc
        return self.algo.nchunksperloop * self.network.bandwidth[arc.arc] / Fraction(arc.chunks)

    def busiest_arc_us(self, call_bytes: float, proto: Protocol) -> float:
        """Time the busiest arc needs for one iteration's bytes: no slope can be smaller.

        A slope measured between two short runs can come out below this when the shorter run's fill
        weighs more than the longer one's, which would extrapolate to a time below the bound.
        """
        return self._busiest * call_bytes / float(proto.efficiency) / 1000

    def _run(self, iterations: int, call_bytes: float, proto: Protocol) -> np.ndarray:
        """Simulate ``iterations`` iterations; the time each one was finished by every threadblock."""
        return self._record(iterations, call_bytes, proto, np.zeros((0, 0)))

    def threadblock_finishes(self, nbytes: int, proto: Protocol) -> np.ndarray:
        """When each threadblock (rows, in :attr:`tbs` order) finished each simulated iteration of a
        call of ``nbytes`` (µs, columns). The call's period is set by the threadblocks that finish
        last: this shows which ones lag and by how much (``scripts/laggards.py``)."""
        iterations, _, call_bytes = self.iterations(nbytes, proto)
        by_tb = np.zeros((len(self.tbs), iterations))
        self._record(iterations, call_bytes, proto, by_tb)
        return by_tb

    def _record(self, iterations: int, call_bytes: float, proto: Protocol, by_tb: np.ndarray) -> np.ndarray:
        """One run of the event loop: the time each iteration was finished by every threadblock, and
        per threadblock in ``by_tb`` where it has rows."""
        wire = call_bytes / float(proto.efficiency) / 1000  # µs·GB/s per unit of cnt
        shares = shares_of(self._routes, self._bandwidth, proto.tb_rate_gbps)
        finished = np.zeros(iterations)
        position = _events(
            self._table,
            shares,
            self._latency,
            Timing(iterations, wire, proto.fifo_calls, proto.step_overhead_us),
            finished,
            by_tb,
        )
        stuck = [
            f"gpu {tb.gpu} tb {tb.tb}"
            for tb, done, n in zip(self.tbs, position, self._table.nsteps, strict=True)
            if done < n * iterations
        ]
        if stuck:
            raise Deadlock(
                f"the schedule deadlocks in simulation: {', '.join(stuck[:5])} cannot finish",
                hint="run `collc verify` on the file for the exact cause",
            )
        return np.maximum.accumulate(finished)


class Timing(NamedTuple):
    """What one simulated call runs: its iterations, the µs·GB/s one unit of ``cnt`` sends
    (``wire``), the calls a sender may run ahead (``fifo``) and the fixed cost of a step (µs,
    ``overhead``)."""

    iterations: int
    wire: float
    fifo: int
    overhead: float


class Run(NamedTuple):
    """One simulation of a program: ``iterations`` iterations of ``call_bytes`` per chunk."""

    iterations: int
    call_bytes: float
    proto: Protocol


class _SpareThread:
    """One daemon thread that runs queued calls in order (:func:`start_ahead`). Not a thread pool's:
    at exit the interpreter joins a pool's threads after they have run everything queued (seconds
    after a Ctrl-C at 128 GPUs), and a daemon thread is dropped instead."""

    def __init__(self) -> None:
        self._queue: SimpleQueue[tuple[Future[None], Callable[[], None]]] = SimpleQueue()
        threading.Thread(target=self._work, name="collc-simulate-ahead", daemon=True).start()

    def submit(self, call: Callable[[], None]) -> Future[None]:
        future: Future[None] = Future()
        self._queue.put((future, call))
        return future

    def _work(self) -> None:
        while True:
            future, call = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue  # taken back (ProgramCost.ensure)
            try:
                call()
            except BaseException as error:  # handed to whoever waits for it
                future.set_exception(error)
            else:
                future.set_result(None)


_spare: _SpareThread | None = None  # made on first use


def start_ahead(runs: Iterable[tuple[ProgramCost, Run]]) -> None:
    """Start the runs not made or started yet on one spare thread and return at once, so that they
    overlap what the caller does next in Python (a compile lowers its next candidate while the
    simulations of the last one run: the compiled event loop releases the GIL). Only where more than
    one simulation may run at once (:func:`simulation_threads`): a service worker held to one CPU
    keeps to it. A run is deterministic, so which thread makes it changes no answer;
    :meth:`ProgramCost.ensure` waits for one in flight.
    """
    global _spare
    if simulation_threads() < 2:
        return
    for cost, run in runs:
        if run in cost._runs or run in cost._ahead:
            continue
        if _spare is None:
            _spare = _SpareThread()
        cost._ahead[run] = _spare.submit(partial(cost._run_ahead, run))


def prefetch(runs: Sequence[tuple[ProgramCost, Run]], *, strict: bool = False) -> None:
    """Make the runs not made yet, side by side on up to :func:`simulation_threads` threads (the
    compiled event loop releases the GIL). Every run is deterministic and independent of the others, so
    the answers are the same on any number of threads.

    A caller that only may need the runs (``strict=False``: the next candidates of a search, which a
    faster one found meanwhile may spare) loses nothing if one fails: it is left unmade, and the
    simulation that needs it raises then. With ``strict``, a failure is raised here.
    """
    todo = list(dict.fromkeys((cost, run) for cost, run in runs if run not in cost._runs))
    if not todo:
        return
    workers = min(len(todo), simulation_threads())
    if workers == 1:
        for cost, run in todo:
            _make(cost, run, strict)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: _make(*job, strict), todo))


def runs_of(
    predictor: object, collective: str, sizes: Iterable[int], proto: Protocol
) -> list[tuple[ProgramCost, Run]]:
    """The runs not made yet that ``predictor`` (a :class:`ProgramCost`, or a memo of one) needs for
    calls of ``sizes`` (sizes the program serves); none for other predictors."""
    cost = predictor.inner if isinstance(predictor, Memo) else predictor
    if not isinstance(cost, ProgramCost) or collective != cost.algo.coll:
        return []
    return [(cost, run) for size in sizes for run in cost.runs_for(size, proto)]


def _make(cost: ProgramCost, run: Run, strict: bool) -> None:
    try:
        cost.ensure(run)
    except UNSIMULATED:
        if strict:
            raise


_threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def simulation_threads() -> int:
    """How many simulations run at once (:func:`prefetch`): the CPUs this process may use, unless
    :func:`set_simulation_threads` said otherwise."""
    return _threads


def set_simulation_threads(count: int) -> None:
    """Run at most ``count`` simulations at once (a service with a process per CPU asks for one)."""
    global _threads
    _threads = max(1, count)


@kernel
def _complete(
    table: _StepTable,
    i: int,
    position: np.ndarray,
    finished: np.ndarray,
    now: float,
    dirty: np.ndarray,
    num_dirty: int,
    in_dirty: np.ndarray,
    order: np.ndarray,
    by_tb: np.ndarray,
) -> int:
    """Threadblock ``i`` completed a step at ``now``: note an iteration it finished (in ``by_tb`` too,
    per threadblock, unless it has no rows), and mark the threadblocks that wait for it to be examined
    again; the new size of the ``dirty`` heap."""
    position[i] += 1
    if position[i] % table.nsteps[i] == 0:
        iteration = position[i] // table.nsteps[i] - 1
        finished[iteration] = max(finished[iteration], now)
        if by_tb.shape[0]:
            by_tb[i, iteration] = now
    for p in range(table.dep_ptr[i], table.dep_ptr[i + 1]):
        j = table.dep_idx[p]
        if not in_dirty[j]:
            in_dirty[j] = True
            num_dirty = heap_push(dirty, num_dirty, j, order, order)
    return num_dirty


@kernel
def _schedule(
    f: int,
    left: float,
    now: float,
    rate: np.ndarray,
    tolerance: float,
    amount_left: np.ndarray,
    stamp: np.ndarray,
    speed: np.ndarray,
    ends: np.ndarray,
    due: np.ndarray,
) -> None:
    """Flow ``f`` has ``left`` to send from ``now`` on at its current rate (a flow that drained within
    the tolerance, but after another flow ended, ends now). Rates are positive: every arc and the cap
    have capacity."""
    left = max(left, 0.0)
    amount_left[f], stamp[f], speed[f] = left, now, rate[f]
    tree_set(ends, f, now + left / rate[f])
    tree_set(due, f, now + (left - tolerance) / rate[f])


@njit(cache=True, nogil=True)
def _events(
    table: _StepTable,
    shares: Shares,
    latency: np.ndarray,
    timing: Timing,
    finished: np.ndarray,
    by_tb: np.ndarray,
):
    """The event loop: run every threadblock's steps ``timing.iterations`` times; record in
    ``finished`` when each iteration was finished by every threadblock, and in ``by_tb`` (threadblock
    × iteration; no rows: not recorded) when each threadblock finished it; return each threadblock's
    completed steps (fewer than all of them: it deadlocked).

    A busy flow's bytes (µs·GB/s) left at time ``stamp``, drained at ``speed`` since: a flow is only
    touched when its own rate changes. It ends at ``ends`` and counts as drained from ``due`` on, when
    at most the tolerance is left (both infinite while it is idle); both are min-tournament trees over
    the threadblocks. A message arrives its path's latency and then the step overhead after its flow
    drained; arrivals wait in a heap ordered by (time, sequence).
    """
    nsteps, first = table.nsteps, table.first
    num_tbs = len(nsteps)
    iterations, wire, fifo = timing.iterations, timing.wire, timing.fifo
    tolerance = DRAINED * wire  # a flow with at most this left (µs·GB/s) has drained
    num_conns = len(table.sender)
    position = np.zeros(num_tbs, dtype=np.int64)
    total = nsteps * iterations
    busy = np.zeros(num_tbs, dtype=np.bool_)
    in_active = np.zeros(num_tbs, dtype=np.bool_)
    num_busy = 0
    amount_left = np.zeros(num_tbs)
    stamp = np.zeros(num_tbs)
    speed = np.zeros(num_tbs)
    ends = tree_of(num_tbs)
    due = tree_of(num_tbs)
    starts = np.zeros(num_tbs, dtype=np.int64)  # sends started since the rates were last updated
    start_amount = np.zeros(num_tbs)
    num_starts = 0
    drained = np.zeros(num_tbs, dtype=np.int64)  # flows that drained since then
    num_drained = 0
    removed = np.zeros(num_tbs, dtype=np.int64)
    added = np.zeros(num_tbs, dtype=np.int64)
    changed = np.zeros(num_tbs, dtype=np.int64)
    started = np.zeros(num_conns, dtype=np.int64)  # per connection: messages sent, arrived, received
    arrived = np.zeros(num_conns, dtype=np.int64)
    consumed = np.zeros(num_conns, dtype=np.int64)
    # arrivals in flight: (time, sequence, connection) in slots of these arrays
    # at most every send of the call is in flight, and at most ``fifo`` per connection
    sends = iterations * np.count_nonzero(table.is_send)
    capacity = min(sends, num_conns * min(fifo, sends)) + 1
    arrival_time = np.zeros(capacity)
    arrival_seq = np.zeros(capacity, dtype=np.int64)
    arrival_conn = np.zeros(capacity, dtype=np.int64)
    free = np.arange(capacity)[::-1].copy()  # unused slots
    num_free = capacity
    arrival_heap = np.zeros(capacity, dtype=np.int64)  # slots, by (time, sequence)
    num_arrivals = 0
    sequence = 0
    now = 0.0
    busy_changed = False
    rate = shares.rate
    dirty = np.arange(num_tbs)  # a heap: threadblocks to re-examine, smallest index first
    order = np.arange(num_tbs)  # the dirty heap's key: the index itself
    num_dirty = num_tbs
    in_dirty = np.ones(num_tbs, dtype=np.bool_)
    while True:
        while num_dirty:
            i = dirty[0]
            num_dirty = heap_pop(dirty, num_dirty, order, order)
            in_dirty[i] = False
            while not busy[i] and position[i] < total[i]:
                k = first[i] + position[i] % nsteps[i]
                other = table.dep_tb[k]
                if (
                    other >= 0
                    and position[other] < (position[i] // nsteps[i]) * nsteps[other] + table.deps[k] + 1
                ):
                    break
                receives, sends = table.is_recv[k], table.is_send[k]
                rc, sc = table.recv_conn[i], table.send_conn[i]
                if receives and arrived[rc] <= consumed[rc]:
                    break
                if sends and started[sc] - consumed[sc] >= fifo:
                    break
                if receives:
                    consumed[rc] += 1
                    j = table.sender[rc]
                    if not in_dirty[j]:
                        in_dirty[j] = True
                        num_dirty = heap_push(dirty, num_dirty, j, order, order)
                if sends:
                    started[sc] += 1
                    busy[i] = True
                    num_busy += 1
                    busy_changed = True
                    starts[num_starts] = i
                    start_amount[num_starts] = table.cnt[k] * wire
                    num_starts += 1
                else:
                    num_dirty = _complete(
                        table, i, position, finished, now, dirty, num_dirty, in_dirty, order, by_tb
                    )
        if busy_changed:
            busy_changed = False
            num_removed = 0
            for d in range(num_drained):
                i = drained[d]
                if not busy[i]:
                    in_active[i] = False
                    removed[num_removed] = i
                    num_removed += 1
            num_added = 0
            for d in range(num_starts):
                i = starts[d]
                if not in_active[i]:
                    in_active[i] = True
                    added[num_added] = i
                    num_added += 1
            if num_removed or num_added:
                num_changed = update(shares, busy, removed[:num_removed], added[:num_added], changed)
                for c in range(num_changed):
                    f = changed[c]
                    _schedule(
                        f,
                        amount_left[f] - speed[f] * (now - stamp[f]),
                        now,
                        rate,
                        tolerance,
                        amount_left,
                        stamp,
                        speed,
                        ends,
                        due,
                    )
            for d in range(num_starts):
                _schedule(
                    starts[d], start_amount[d], now, rate, tolerance, amount_left, stamp, speed, ends, due
                )
            num_starts = 0
            num_drained = 0
        if not num_busy and not num_arrivals:
            break
        flow_end = ends[1] if num_busy else np.inf
        arrival_end = arrival_time[arrival_heap[0]] if num_arrivals else np.inf
        now = min(flow_end, arrival_end)
        if num_busy:
            num_drained = tree_at_most(due, now, drained)
            for d in range(num_drained):
                i = drained[d]
                tree_set(ends, i, np.inf)
                tree_set(due, i, np.inf)
        if num_drained:
            busy_changed = True
            for d in range(num_drained):
                i = drained[d]
                busy[i] = False
                num_busy -= 1
                sequence += 1
                num_free -= 1
                slot = free[num_free]
                arrival_time[slot] = now + latency[i] + timing.overhead
                arrival_seq[slot] = sequence
                arrival_conn[slot] = table.send_conn[i]
                num_arrivals = heap_push(arrival_heap, num_arrivals, slot, arrival_time, arrival_seq)
                num_dirty = _complete(
                    table, i, position, finished, now, dirty, num_dirty, in_dirty, order, by_tb
                )
                if not in_dirty[i]:
                    in_dirty[i] = True
                    num_dirty = heap_push(dirty, num_dirty, i, order, order)
        while num_arrivals and arrival_time[arrival_heap[0]] <= now + _EPS:
            slot = arrival_heap[0]
            num_arrivals = heap_pop(arrival_heap, num_arrivals, arrival_time, arrival_seq)
            free[num_free] = slot
            num_free += 1
            connection = arrival_conn[slot]
            arrived[connection] += 1
            j = table.receiver[connection]
            if not in_dirty[j]:
                in_dirty[j] = True
                num_dirty = heap_push(dirty, num_dirty, j, order, order)
    finished[-1] = max(finished[-1], now)  # the last messages land after the last send completes
    return position
