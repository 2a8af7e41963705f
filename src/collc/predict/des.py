"""Discrete-event simulation of an MSCCL program on a topology (docs/cost-model.md §4).

What is modelled (the MSCCL executor's interpreter):

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
  Concurrent flows share every arc max-min fairly (progressive filling, :class:`FairShares`), and no
  flow runs faster than one threadblock copies (``Protocol.tb_copy_gbps``). The step ends when its
  flow has drained; the message arrives ``path latency + step overhead`` later. Composite steps
  (``rcs``, ``rrs``, ``rrcs``) forward only after their receive: store-and-forward per
  slice. Local steps (``r``, ``rrc``, ``cpy``, ``re``, ``nop``) take no time.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
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


@dataclass(frozen=True)
class _StepTable:
    """The threadblocks' steps as flat per-threadblock tuples, for the simulation's inner loop.

    Connections are numbered; a dependency names the index of the threadblock it waits for.
    """

    nsteps: tuple[int, ...]
    is_send: tuple[tuple[bool, ...], ...]
    is_recv: tuple[tuple[bool, ...], ...]
    cnt: tuple[tuple[int, ...], ...]
    dep_tb: tuple[tuple[int, ...], ...]  # -1: no dependency
    deps: tuple[tuple[int, ...], ...]
    send_conn: tuple[int, ...]  # -1: the threadblock sends nothing
    recv_conn: tuple[int, ...]
    sender: tuple[int, ...]  # per connection: the threadblock that sends on it
    receiver: tuple[int, ...]
    dependents: tuple[tuple[int, ...], ...]  # per threadblock: the others whose steps wait for it


def _step_table(tbs: list[_Tb]) -> _StepTable:
    by_gpu_tb = {(tb.gpu, tb.tb): i for i, tb in enumerate(tbs)}
    connections = sorted({tb.send for tb in tbs if tb.send is not None})
    conn_index = {connection: c for c, connection in enumerate(connections)}
    sender = [0] * len(connections)
    receiver = [0] * len(connections)
    dependents: list[set[int]] = [set() for _ in tbs]
    dep_tb = []
    for i, tb in enumerate(tbs):
        if tb.send is not None:
            sender[conn_index[tb.send]] = i
        if tb.recv is not None:
            receiver[conn_index[tb.recv]] = i
        waits = tuple(by_gpu_tb[(tb.gpu, depid)] if depid >= 0 else -1 for _, _, depid, _ in tb.steps)
        for other in waits:
            if other >= 0:
                dependents[other].add(i)
        dep_tb.append(waits)
    return _StepTable(
        nsteps=tuple(len(tb.steps) for tb in tbs),
        is_send=tuple(tuple(step[0] in SEND_TYPES for step in tb.steps) for tb in tbs),
        is_recv=tuple(tuple(step[0] in RECV_TYPES for step in tb.steps) for tb in tbs),
        cnt=tuple(tuple(step[1] for step in tb.steps) for tb in tbs),
        dep_tb=tuple(dep_tb),
        deps=tuple(tuple(step[3] for step in tb.steps) for tb in tbs),
        send_conn=tuple(conn_index[tb.send] if tb.send is not None else -1 for tb in tbs),
        recv_conn=tuple(conn_index[tb.recv] if tb.recv is not None else -1 for tb in tbs),
        sender=tuple(sender),
        receiver=tuple(receiver),
        dependents=tuple(tuple(sorted(d)) for d in dependents),
    )


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


def max_min_rates(arcs: np.ndarray, bandwidth: np.ndarray, cap: float = np.inf) -> np.ndarray:
    """Max-min fair rates of flows (rows of ``arcs``: arc indices, padded with a last infinite arc).

    Every flow is also limited to ``cap`` (its threadblock's copy rate); see :class:`FairShares`.
    """
    shares = FairShares(np.ascontiguousarray(arcs.T), bandwidth, cap)
    flows = np.arange(arcs.shape[0])
    shares.fill(flows)
    return shares.rate[flows]


class FairShares:
    """Max-min fair rates of a changing set of flows, each capped at ``cap``.

    Flow ``f`` crosses the arcs ``routes[:, f]`` (padded with the last, infinite arc of ``bandwidth``).
    Progressive filling: raise every unfrozen flow's rate together until an arc is full, freeze the
    flows through it, repeat. Every flow also crosses a private arc of capacity ``cap`` (its
    threadblock's copy rate), so once the common level reaches ``cap`` every unfrozen flow freezes at
    ``cap``. After :data:`MAX_FILL_ROUNDS` levels the remaining flows get their fair share at their
    tightest arc (or ``cap``), which never exceeds a capacity (a slight underestimate of their max-min
    rates).

    Each level is found on the arcs (remaining capacity over unfrozen flows). The state of every round
    is kept, so that a flow of the last round can leave, and a flow can join, without filling again:
    a leaving flow of the last round never crossed a full arc, and a joining flow that keeps every
    earlier round's arcs above that round's level (and, where the last round stopped at ``cap``, at
    or above ``cap``) changes no earlier round, so only the last round's shares are recomputed. The
    arithmetic is the same as filling from scratch, so the rates are identical to the last bit.
    """

    def __init__(self, routes: np.ndarray, bandwidth: np.ndarray, cap: float):
        self.routes = routes
        self.bandwidth = bandwidth.astype(float)
        self.cap = cap
        pad = len(bandwidth) - 1
        self.arcs = [routes[:, f][routes[:, f] != pad] for f in range(routes.shape[1])]
        # per arc, every flow that crosses it (fixed: a flow's route never changes)
        flat = routes.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(len(bandwidth) + 1))
        flow_of = order % routes.shape[1]
        self.on_arc = [flow_of[bounds[a] : bounds[a + 1]] for a in range(len(bandwidth))]
        self.rate = np.zeros(routes.shape[1])
        self.last = np.zeros(routes.shape[1], dtype=bool)  # active and unfrozen in the last round
        self.counts = np.zeros((1, len(bandwidth)))  # per round: unfrozen flows on every arc
        self.capacity = self.bandwidth[None, :].copy()  # per round: capacity the frozen flows left
        self.levels = np.zeros(0)
        self.capped = True  # the last round stopped at ``cap``

    def update(self, busy: np.ndarray, removed: Sequence[int], added: Sequence[int]) -> np.ndarray:
        """Rates for the flows marked in ``busy`` (a mask over all flows), which were the last call's
        minus ``removed`` plus ``added``: one flow at a time where that is exact, else filled from
        scratch. Returns the busy flows whose rate changed (an added flow only if its rate did)."""
        changed = all(self._leave(f) for f in removed) and all(self._join(f) for f in added)
        if not changed:
            active = np.flatnonzero(busy)
            before = self.rate[active]
            self.fill(active)
            return active[self.rate[active] != before]
        if len(removed) or len(added):
            return self._share_last([*removed, *added])
        return np.zeros(0, dtype=np.int64)

    def _fair(self, capacity: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.divide(capacity, counts, out=np.full(len(counts), np.inf), where=counts > 0)

    def fill(self, active: np.ndarray) -> None:
        """Fill from scratch: the rates of the flows ``active`` and the state of every round."""
        by_arc = self.routes[:, active]
        num_arcs = len(self.bandwidth)
        counts = np.bincount(by_arc.ravel(), minlength=num_arcs).astype(float)
        capacity = self.bandwidth.copy()
        rates = np.empty(len(active))
        live = np.ones(len(active), dtype=bool)
        counts_by_round, capacity_by_round, levels = [counts.copy()], [capacity.copy()], []
        for round_ in range(MAX_FILL_ROUNDS):
            fair = self._fair(capacity, counts)
            level = float(fair.min())
            if level >= self.cap:  # also when every flow is frozen (then the level is infinite)
                rates[live] = self.cap
                break
            if round_ == MAX_FILL_ROUNDS - 1:  # the rest: each its fair share at its tightest arc (feasible)
                rates[live] = np.minimum(fair[by_arc[:, live]].min(axis=0), self.cap)
                break
            # Every flow through a full arc freezes, so a full arc has no unfrozen flow left and the
            # others keep a positive capacity.
            hit = (fair <= level * (1 + 1e-12))[by_arc].any(axis=0)
            hit &= live
            rates[hit] = level
            freed = np.bincount(by_arc[:, hit].ravel(), minlength=num_arcs)
            counts -= freed
            capacity -= level * freed
            live ^= hit
            levels.append(level)
            counts_by_round.append(counts.copy())
            capacity_by_round.append(capacity.copy())
        self.capped = level >= self.cap
        self.counts, self.capacity = np.array(counts_by_round), np.array(capacity_by_round)
        self.levels = np.array(levels)
        self.rate[active] = rates
        self.last[:] = False
        self.last[active] = live

    def _leave(self, flow: int) -> bool:
        if not self.last[flow]:
            return False
        self.counts[:, self.arcs[flow]] -= 1
        self.last[flow] = False
        return True

    def _join(self, flow: int) -> bool:
        arcs = self.arcs[flow]
        earlier = self.capacity[:-1, arcs] / (self.counts[:-1, arcs] + 1)
        if not (earlier > self.levels[:, None] * (1 + 1e-12)).all():
            return False
        if self.capped and not (self.capacity[-1, arcs] / (self.counts[-1, arcs] + 1) >= self.cap).all():
            return False
        self.counts[:, arcs] += 1
        self.last[flow] = True
        return True

    def _share_last(self, moved: Sequence[int]) -> np.ndarray:
        """The rates of the last round's flows after the flows ``moved`` left or joined it; returns the
        flows whose rate changed.

        Only the arcs of the moved flows changed their counts, so only flows that cross one of them
        can change rate (unless the level now reaches the cap, which lifts every last-round flow).
        """
        if self.capped:
            joined = np.array([f for f in moved if self.last[f]], dtype=np.int64)
            changed = joined[self.rate[joined] != self.cap]
            self.rate[joined] = self.cap
            return changed
        fair = self._fair(self.capacity[-1], self.counts[-1])
        if float(fair.min()) >= self.cap:  # a flow left the tightest arc: the level reaches the cap
            self.capped = True
            flows = np.flatnonzero(self.last)
            new = np.full(len(flows), self.cap)
        else:
            arcs = np.concatenate([self.arcs[f] for f in moved])
            flows = np.concatenate([self.on_arc[a] for a in arcs.tolist()])  # repeats are harmless
            flows = flows[self.last[flows]]
            new = np.minimum(fair[self.routes[:, flows]].min(axis=0), self.cap)
        changed = flows[new != self.rate[flows]]
        self.rate[flows] = new
        return np.unique(changed)


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
        self._table = _step_table(self.tbs)
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
        self._routes = np.full((width, len(self.tbs)), pad, dtype=np.int64)  # one column per tb
        for i, route in enumerate(routes):
            self._routes[: len(route), i] = route
        self._latency = latency
        self._runs: dict[tuple[int, float, Protocol], np.ndarray] = {}
        self._arc_cnt = np.zeros(len(self._bandwidth))  # chunks per iteration over every arc
        for i, tb in enumerate(self.tbs):
            sent = sum(cnt for step_type, cnt, _, _ in tb.steps if step_type in SEND_TYPES)
            np.add.at(self._arc_cnt, self._routes[:, i][self._routes[:, i] < pad], sent)

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
        # Every size whose simulated iterations move the same bytes runs the same simulation (all
        # power-of-two sizes above the step budget): it is run once per program.
        key = (iterations, call_bytes, proto)
        if key not in self._runs:
            self._runs[key] = self._run(iterations, call_bytes, proto)
        finished = self._runs[key]
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
        table = self._table
        nsteps, is_send, is_recv, cnt = table.nsteps, table.is_send, table.is_recv, table.cnt
        dep_tb, deps, dependents = table.dep_tb, table.deps, table.dependents
        send_conn, recv_conn, sender, receiver = (
            table.send_conn,
            table.recv_conn,
            table.sender,
            table.receiver,
        )
        fifo = proto.fifo_calls
        num_tbs = len(nsteps)
        finished = np.zeros(iterations)
        position = [0] * num_tbs  # steps completed, per threadblock
        total = [n * iterations for n in nsteps]
        busy = [False] * num_tbs
        busy_flags = np.zeros(num_tbs, dtype=bool)
        num_busy = 0
        # A busy flow's bytes (µs·GB/s) left at time ``stamp``, drained at ``speed`` since: a flow is
        # only touched when its own rate changes. It ends at ``ends`` and counts as drained from
        # ``due`` on, when at most the tolerance is left (both infinite while it is idle).
        amount_left = np.zeros(num_tbs)
        stamp = np.zeros(num_tbs)
        speed = np.zeros(num_tbs)
        ends = np.full(num_tbs, np.inf)
        due = np.full(num_tbs, np.inf)
        starts: list[tuple[int, float]] = []  # sends started since the rates were last updated
        drained: list[int] = []  # flows that drained since then
        in_active = [False] * num_tbs
        started = [0] * len(sender)  # per connection: messages sent, arrived, received
        arrived = [0] * len(sender)
        consumed = [0] * len(sender)
        arrivals: list[tuple[float, int, int]] = []  # (time, sequence, connection)
        sequence = 0
        now = 0.0
        busy_changed = False
        shares = FairShares(self._routes, self._bandwidth, proto.tb_copy_gbps)
        rate = shares.rate
        dirty = list(range(num_tbs))  # a heap: threadblocks to re-examine, smallest index first
        in_dirty = [True] * num_tbs
        tolerance = 1e-6 * wire  # a flow with at most this left has drained

        def mark(j: int) -> None:
            if not in_dirty[j]:
                in_dirty[j] = True
                heapq.heappush(dirty, j)

        def complete(i: int) -> None:
            position[i] += 1
            if position[i] % nsteps[i] == 0:
                iteration = position[i] // nsteps[i] - 1
                finished[iteration] = max(finished[iteration], now)
            for j in dependents[i]:
                if j != i:
                    mark(j)

        def schedule(flows: np.ndarray | int, left: np.ndarray | float) -> None:
            """The flows ``flows`` (distinct; one index or an array) have ``left`` to send from now on
            at their current rates (a flow that drained within the tolerance, but after another flow
            ended, ends now). Rates are positive: every arc and the cap have capacity."""
            left = np.maximum(left, 0.0)
            rates = rate[flows]
            amount_left[flows], stamp[flows], speed[flows] = left, now, rates
            ends[flows] = now + left / rates
            due[flows] = now + (left - tolerance) / rates

        while True:
            while dirty:
                i = heapq.heappop(dirty)
                in_dirty[i] = False
                while not busy[i] and position[i] < total[i]:
                    k = position[i] % nsteps[i]
                    other = dep_tb[i][k]
                    if (
                        other >= 0
                        and position[other] < (position[i] // nsteps[i]) * nsteps[other] + deps[i][k] + 1
                    ):
                        break
                    receives, sends = is_recv[i][k], is_send[i][k]
                    rc, sc = recv_conn[i], send_conn[i]
                    if receives and arrived[rc] <= consumed[rc]:
                        break
                    if sends and started[sc] - consumed[sc] >= fifo:
                        break
                    if receives:
                        consumed[rc] += 1
                        mark(sender[rc])
                    if sends:
                        started[sc] += 1
                        busy[i] = True
                        busy_flags[i] = True
                        num_busy += 1
                        busy_changed = True
                        starts.append((i, cnt[i][k] * wire))
                    else:
                        complete(i)
            if busy_changed:
                busy_changed = False
                removed = [i for i in drained if not busy[i]]
                added = [i for i, _ in starts if not in_active[i]]
                for i in removed:
                    in_active[i] = False
                for i in added:
                    in_active[i] = True
                if removed or added:
                    changed = shares.update(busy_flags, removed, added)
                    if len(changed):
                        schedule(changed, amount_left[changed] - speed[changed] * (now - stamp[changed]))
                if len(starts) == 1:  # the common case, without building arrays
                    schedule(*starts[0])
                elif starts:
                    indices, amounts = zip(*starts, strict=True)
                    schedule(np.array(indices, dtype=np.int64), np.array(amounts))
                starts.clear()
                drained.clear()
            if not num_busy and not arrivals:
                break
            flow_end = float(ends.min()) if num_busy else np.inf
            arrival_end = arrivals[0][0] if arrivals else np.inf
            now = min(flow_end, arrival_end)
            if num_busy:
                done = np.flatnonzero(due <= now)
                ends[done] = due[done] = np.inf
                drained.extend(done.tolist())
            if drained:
                busy_changed = True
                for i in drained:
                    busy[i] = False
                    busy_flags[i] = False
                    num_busy -= 1
                    sequence += 1
                    heapq.heappush(
                        arrivals, (now + self._latency[i] + proto.step_overhead_us, sequence, send_conn[i])
                    )
                    complete(i)
                    mark(i)
            while arrivals and arrivals[0][0] <= now + _EPS:
                _, _, connection = heapq.heappop(arrivals)
                arrived[connection] += 1
                mark(receiver[connection])
        stuck = [
            f"gpu {self.tbs[i].gpu} tb {self.tbs[i].tb}" for i in range(num_tbs) if position[i] < total[i]
        ]
        if stuck:
            raise InputError(
                f"the schedule deadlocks in simulation: {', '.join(stuck[:5])} cannot finish",
                hint="run `collc verify` on the file for the exact cause",
            )
        finished[-1] = max(finished[-1], now)  # the last messages land after the last send completes
        return np.maximum.accumulate(finished)
