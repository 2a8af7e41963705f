"""Discrete-event simulation of an MSCCL program on a topology (docs/cost-model.md §4).

What is modelled (msccl-xml.md §3-§4):

* Every threadblock runs its step list once per pipeline iteration, in order. An iteration moves one
  primitive call's worth (``Protocol.call_bytes``: 2 MiB on Simple) of every chunk, so a step with
  ``cnt = c`` sends ``c`` of them and a call of ``S`` bytes on ``N`` chunks runs
  ``ceil(S / (N · call_bytes))`` iterations, as the runtime's loop does. At most :data:`STEP_BUDGET`
  steps are simulated (never fewer than :data:`MIN_ITERATIONS` iterations); the remaining iterations
  are added at the period the simulated ones settled to (steady-state extrapolation, so the
  pipelining grain stays the runtime's).
* A step starts when the previous step of its threadblock is done, its dependency ``(depid, deps)`` of
  the same iteration is done, for a receive: the matching message (k-th send ↔ k-th receive on the
  connection ``(sender, receiver, chan)``) has arrived, and for a send: the connection's FIFO has room
  (at most ``fifo_calls`` messages sent and not yet consumed).
* A send is a flow over the physical path of its GPU pair (shortest by hops, moved onto the network
  plane its channel selects as collc's lowering assigns them, or the path given by the caller).
  Concurrent flows share every arc max-min fairly (progressive filling). The step ends when its
  flow has drained; the message arrives ``path latency + step overhead`` later. Composite steps
  (``rcs``, ``rrs``, ``rrcs``) forward only after their receive: store-and-forward per
  slice. Local steps (``r``, ``rrc``, ``cpy``, ``re``, ``nop``) take no time.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil

import numpy as np

from collc.errors import InputError
from collc.lowering.plan import network_planes
from collc.msccl.program import RECV_TYPES, SEND_TYPES, Algorithm
from collc.predict.network import Network
from collc.predict.params import LAUNCH_US, Protocol

MAX_FILL_ROUNDS = 6
STEP_BUDGET = 200_000  # simulated steps (all threadblocks, all iterations) per call (docs/cost-model.md §4)
MIN_ITERATIONS = 4  # simulated even above the budget, so that a period can be measured
_EPS = 1e-9

Connection = tuple[int, int, int]  # (sender rank, receiver rank, channel)


@dataclass(frozen=True)
class _Tb:
    gpu: int
    tb: int
    steps: tuple[tuple[str, int, int, int], ...]  # (type, cnt, depid, deps)
    send: Connection | None
    recv: Connection | None


def _threadblocks(algo: Algorithm) -> list[_Tb]:
    tbs = []
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            tbs.append(
                _Tb(
                    gpu.id,
                    tb.id,
                    tuple((step.type, step.cnt, step.depid, step.deps) for step in tb.steps),
                    (gpu.id, tb.send, tb.chan) if tb.send >= 0 else None,
                    (tb.recv, gpu.id, tb.chan) if tb.recv >= 0 else None,
                )
            )
    return tbs


def max_min_rates(arcs: np.ndarray, bandwidth: np.ndarray) -> np.ndarray:
    """Max-min fair rates of flows (rows of ``arcs``: arc indices, padded with a last infinite arc).

    Progressive filling: raise every unfrozen flow's rate together until an arc is full, freeze the
    flows through it, repeat. Only the arcs the flows use are kept (re-indexed) to keep it cheap. After
    :data:`MAX_FILL_ROUNDS` levels the remaining flows get their fair share at their tightest arc, which
    never exceeds a capacity (a slight underestimate of their max-min rates).
    """
    used, local = np.unique(arcs, return_inverse=True)
    local = local.reshape(arcs.shape)
    capacity = bandwidth[used].astype(float)
    finite = np.isfinite(capacity)
    rates = np.zeros(arcs.shape[0])
    frozen = np.zeros(arcs.shape[0], dtype=bool)
    for round_ in range(MAX_FILL_ROUNDS):
        if frozen.all():
            break
        counts = np.bincount(local[~frozen].ravel(), minlength=len(used))
        live = finite & (counts > 0)
        fair = np.full(len(used), np.inf)
        fair[live] = capacity[live] / counts[live]
        if round_ == MAX_FILL_ROUNDS - 1:  # the rest: each its fair share at its tightest arc (feasible)
            rest = ~frozen
            rates[rest] = fair[local[rest]].min(axis=1)
            break
        level = fair.min()
        hit = ~frozen & (fair[local] <= level * (1 + 1e-12)).any(axis=1)
        rates[hit] = level
        np.subtract.at(capacity, local[hit].ravel(), level)
        np.maximum(capacity, 0.0, out=capacity)
        frozen |= hit
    return rates


def _check_structure(tbs: list[_Tb]) -> None:
    """Connections must pair up and dependencies must name threadblocks of the same GPU (else bad input)."""
    known = {(tb.gpu, tb.tb) for tb in tbs}
    sends = {tb.send for tb in tbs if tb.send is not None}
    receives = {tb.recv for tb in tbs if tb.recv is not None}
    problems = [
        f"gpu {s[0]} sends to {s[1]} on channel {s[2]} but nobody receives" for s in sorted(sends - receives)
    ]
    problems += [
        f"gpu {r[1]} receives from {r[0]} on channel {r[2]} but nobody sends"
        for r in sorted(receives - sends)
    ]
    problems += [
        f"gpu {tb.gpu} tb {tb.tb} depends on tb {depid}, which does not exist"
        for tb in tbs
        for _, _, depid, _ in tb.steps
        if depid >= 0 and (tb.gpu, depid) not in known
    ]
    if problems:
        raise InputError(
            f"the schedule cannot run: {'; '.join(problems[:5])}",
            hint="run `collc verify` on the file for every problem with its location",
        )


def _route(network: Network, connection: Connection, planes: list[str]) -> tuple[str, ...]:
    """The physical path of a connection: the shortest one, moved onto the rail its channel selects.

    The runtime maps channels to NICs; collc's lowering puts a transfer that crosses network plane
    ``p`` of ``P`` on a channel ``≡ p (mod P)`` (docs/lowering.md, Rails), so a connection whose
    shortest path crosses a plane is routed through plane ``chan mod P`` instead.
    """
    src, dst, chan = connection
    ranks = network.topology.ranks
    path = network.path(ranks[src], ranks[dst])
    if planes and any(node in planes for node in path):
        return network.path_via(ranks[src], planes[chan % len(planes)], ranks[dst])
    return path


class ProgramCost:
    """Predicts the time of one MSCCL program on a topology by discrete-event simulation."""

    def __init__(
        self,
        network: Network,
        algo: Algorithm,
        paths: Mapping[tuple[int, int], tuple[str, ...]] | None = None,
    ):
        self.network = network
        self.algo = algo
        self.tbs = _threadblocks(algo)
        ranks = network.topology.ranks
        if algo.ngpus != len(ranks):
            raise InputError(
                f"the schedule is for {algo.ngpus} GPUs but {network.topology.name!r} has {len(ranks)}",
                hint="simulate the schedule on the topology it was compiled for",
            )
        _check_structure(self.tbs)
        plane_index = network_planes(network.topology)
        planes = sorted(plane_index, key=plane_index.get)
        arc_index = {arc: i for i, arc in enumerate(sorted(network.bandwidth))}
        self._bandwidth = np.array(
            [float(network.bandwidth[arc]) for arc in sorted(network.bandwidth)] + [np.inf]
        )
        pad = len(arc_index)
        routes = []
        latency = []
        for tb in self.tbs:
            if tb.send is None:
                routes.append([])
                latency.append(0.0)
                continue
            path = (paths or {}).get(tb.send[:2]) or _route(network, tb.send, planes)
            routes.append([arc_index[arc] for arc in network.arcs_of(path)])
            latency.append(network.path_latency_us(path))
        width = max((len(route) for route in routes), default=1) or 1
        self._routes = np.full((len(self.tbs), width), pad, dtype=np.int64)
        for i, route in enumerate(routes):
            self._routes[i, : len(route)] = route
        self._latency = latency
        self._arc_cnt = np.zeros(len(self._bandwidth))  # chunks per iteration over every arc
        for i, tb in enumerate(self.tbs):
            sent = sum(cnt for step_type, cnt, _, _ in tb.steps if step_type in SEND_TYPES)
            np.add.at(self._arc_cnt, self._routes[i][self._routes[i] < pad], sent)

    def iterations(self, nbytes: int, proto: Protocol) -> tuple[int, int, float]:
        """(simulated iterations, real iterations, payload bytes per chunk per iteration) of ``nbytes``."""
        chunk = nbytes / self.algo.nchunksperloop
        real = max(1, ceil(chunk / proto.call_bytes))
        steps = max(1, sum(len(tb.steps) for tb in self.tbs))
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
        """Run the simulated iterations, then add the rest at the period of the last half of them."""
        iterations, real, call_bytes = self.iterations(nbytes, proto)
        finished = self._run(iterations, call_bytes, proto)
        end = float(finished[-1])
        if real == iterations:
            return end
        window = iterations // 2  # >= 2: at least MIN_ITERATIONS are simulated when some are left over
        period = (finished[-1] - finished[-1 - window]) / window
        return end + (real - iterations) * max(float(period), self._busiest_arc_us(call_bytes, proto))

    def _busiest_arc_us(self, call_bytes: float, proto: Protocol) -> float:
        """Time the busiest arc needs for one iteration's bytes: no period can be shorter.

        A window of simulated iterations can be shorter than this when some threadblocks ran ahead
        before it (their work then falls outside the window), which would extrapolate to a time below
        the bound.
        """
        wire = call_bytes / float(proto.efficiency) / 1000
        finite = np.isfinite(self._bandwidth)
        return float((self._arc_cnt[finite] / self._bandwidth[finite]).max(initial=0.0)) * wire

    def _run(self, iterations: int, call_bytes: float, proto: Protocol) -> np.ndarray:
        """Simulate ``iterations`` iterations; the time each one was finished by every threadblock."""
        wire = call_bytes / float(proto.efficiency) / 1000  # µs·GB/s per unit of cnt
        finished = np.zeros(iterations)
        tbs = self.tbs
        position = [0] * len(tbs)  # ops completed, per tb
        total = [len(tb.steps) * iterations for tb in tbs]
        busy = np.zeros(len(tbs), dtype=bool)
        remaining = np.zeros(len(tbs))
        by_gpu_tb = {(tb.gpu, tb.tb): i for i, tb in enumerate(tbs)}
        dependents: dict[int, set[int]] = {}
        for i, tb in enumerate(tbs):
            for _, _, depid, _ in tb.steps:
                if depid >= 0:
                    dependents.setdefault(by_gpu_tb[(tb.gpu, depid)], set()).add(i)
        sender_of = {tb.send: i for i, tb in enumerate(tbs) if tb.send is not None}
        receiver_of = {tb.recv: i for i, tb in enumerate(tbs) if tb.recv is not None}
        started: dict[Connection, int] = {}
        arrived: dict[Connection, int] = {}
        consumed: dict[Connection, int] = {}
        arrivals: list[tuple[float, int, Connection]] = []
        sequence = 0
        now = 0.0
        rates_for: np.ndarray | None = None  # the active set the cached ``rates`` belong to
        rates = np.zeros(0)
        dirty = set(range(len(tbs)))

        def ready(i: int) -> bool:
            tb = tbs[i]
            step_type, _, depid, deps = tb.steps[position[i] % len(tb.steps)]
            if depid >= 0:
                other = by_gpu_tb[(tb.gpu, depid)]
                needed = (position[i] // len(tb.steps)) * len(tbs[other].steps) + deps + 1
                if position[other] < needed:
                    return False
            if step_type in RECV_TYPES and arrived.get(tb.recv, 0) <= consumed.get(tb.recv, 0):  # type: ignore[arg-type]
                return False
            return not (
                step_type in SEND_TYPES
                and started.get(tb.send, 0) - consumed.get(tb.send, 0) >= proto.fifo_calls  # type: ignore[arg-type]
            )

        def complete(i: int) -> None:
            position[i] += 1
            if position[i] % len(tbs[i].steps) == 0:
                iteration = position[i] // len(tbs[i].steps) - 1
                finished[iteration] = max(finished[iteration], now)
            dirty.add(i)
            dirty.update(dependents.get(i, ()))

        while True:
            while dirty:
                i = min(dirty)
                dirty.discard(i)
                tb = tbs[i]
                while not busy[i] and position[i] < total[i] and ready(i):
                    step_type, cnt, _, _ = tb.steps[position[i] % len(tb.steps)]
                    if step_type in RECV_TYPES:
                        consumed[tb.recv] = consumed.get(tb.recv, 0) + 1  # type: ignore[index]
                        dirty.add(sender_of[tb.recv])  # type: ignore[index]
                    if step_type in SEND_TYPES:
                        started[tb.send] = started.get(tb.send, 0) + 1  # type: ignore[index]
                        busy[i] = True
                        remaining[i] = cnt * wire
                    else:
                        complete(i)
                        dirty.discard(i)
            if not busy.any() and not arrivals:
                break
            flow_end = np.inf
            active = np.flatnonzero(busy)
            if len(active):
                if rates_for is None or not np.array_equal(rates_for, active):
                    rates, rates_for = max_min_rates(self._routes[active], self._bandwidth), active
                flow_end = now + float((remaining[active] / rates).min())
            arrival_end = arrivals[0][0] if arrivals else np.inf
            step_to = min(flow_end, arrival_end)
            if len(active):
                remaining[active] -= rates * (step_to - now)
            now = step_to
            for i in active[remaining[active] <= 1e-6 * wire]:
                busy[i] = False
                remaining[i] = 0.0
                connection = tbs[i].send
                sequence += 1
                heapq.heappush(
                    arrivals, (now + self._latency[i] + proto.step_overhead_us, sequence, connection)
                )
                complete(int(i))
            while arrivals and arrivals[0][0] <= now + _EPS:
                _, _, connection = heapq.heappop(arrivals)
                arrived[connection] = arrived.get(connection, 0) + 1
                dirty.add(receiver_of[connection])
        stuck = [f"gpu {tbs[i].gpu} tb {tbs[i].tb}" for i in range(len(tbs)) if position[i] < total[i]]
        if stuck:
            raise InputError(
                f"the schedule deadlocks in simulation: {', '.join(stuck[:5])} cannot finish",
                hint="run `collc verify` on the file for the exact cause",
            )
        finished[-1] = max(finished[-1], now)  # the last messages land after the last send completes
        return np.maximum.accumulate(finished)
