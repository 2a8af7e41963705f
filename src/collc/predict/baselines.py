"""NCCL/RCCL-style baselines on the same topology: rings (all collectives) and the double binary tree
(allreduce) (docs/cost-model.md §3).

**Boxes.** GPUs are grouped by ``Node.box``; a box's *domain* is every node with that box index (its
GPUs, switches and NICs). Without box information the whole topology is one box.

**Ring capacity of a box** ``C``: the total bandwidth of a set of rings through all the box's GPUs.
If the box has no switch (GPUs wired directly, e.g. MI250 xGMI) it is the maximum fractional packing
of directed Hamiltonian cycles under the arc bandwidths (an LP over all Hamiltonian cycles — NCCL's
ring search with bandwidth reservation approximates it). Otherwise (NVSwitch-like boxes) it is the
smallest GPU-to-GPU max-flow over the arcs of the runtime's paths between the box's GPUs (one path
per pair, as the runtime takes), i.e. one GPU's switch bandwidth: any ring order works.

**Rings across boxes.** One ring per channel and one channel per NIC rail: every arc that leaves a box
domain is a rail, a ring enters and leaves each box once through its own rail, and the rings share the
box's ring capacity. A ring's bandwidth is ``min(rail bandwidth, C / rails)`` and the rings' busbw is the
sum over rails, at most what the box can send out and take in at once (:func:`box_exchange`: rails that
meet at a narrower switch uplink share it), minimised over boxes, and at most what crosses any cut
between two boxes (:func:`box_exchange`: a ring passes every such cut both ways). This gives the
published ring figures (e.g. 2×8 A100: 8 rails × min(25, 300/8) = 200 GB/s busbw → allgather algbw
200·16/15 = 213.3).

**Threadblocks.** Every channel is one threadblock per GPU, which copies at most
``THREADBLOCK_COPY_GBPS`` (48.5 GB/s, measured; ``params.py``). NCCL runs two channels per NIC rail
across boxes and up to ``MAX_CHANNELS`` = 32 in a box, so a rail carries at most 2 × 48.5 = 97 GB/s and
a box's rings 32 × 48.5 = 1552 GB/s. That cannot bind on a shipped preset (rails of at most 50 GB/s,
box ring capacities of at most 900 GB/s, GB200 NVL72); it is applied all the same, so that a fabric
with faster rails is not credited beyond what its threadblocks copy.

**Double binary tree.** Chains inside the boxes plus two complementary binary trees across boxes, each
carrying half the data: every box (and every GPU of a chain) sends ``2S`` in total, so the allreduce
algbw is ``min(C, egress)/2`` (egress: :func:`box_exchange`), and at most the crossing of
:func:`box_exchange`, which each tree passes with half the data both ways; the latency is two sweeps of depth
``(G−1) + ⌈log2 boxes⌉``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import ceil, log2
from typing import NamedTuple

import numpy as np
from ortools.linear_solver import pywraplp

from collc.capacity import rational_gcd
from collc.errors import InvariantError
from collc.predict.network import Arc, Network
from collc.predict.params import LAUNCH_US, THREADBLOCK_COPY_GBPS, Protocol, busbw_factor
from collc.solver.maxflow import FlowNetwork

# Hamiltonian cycles enumerated for the LP before falling back to the min-cut capacity.
MAX_HAMILTONIAN_CYCLES = 20_000
# NCCL's channels (one threadblock per GPU each): at most MAXCHANNELS in a box, two per NIC rail.
MAX_CHANNELS = 32
CHANNELS_PER_RAIL = 2
_THREADBLOCK = Fraction(THREADBLOCK_COPY_GBPS)


@dataclass(frozen=True)
class Box:
    """One box: its index (None = the whole topology), GPU names in rank order and domain nodes."""

    index: int | None
    gpus: tuple[str, ...]
    domain: frozenset[str]


def boxes_of(network: Network) -> list[Box]:
    """The boxes of the topology (see the module docstring)."""
    topology = network.topology
    gpus = [topology.node(name) for name in topology.ranks]
    if any(node.box is None for node in gpus):
        return [Box(None, tuple(topology.ranks), frozenset(node.name for node in topology.nodes))]
    indices = sorted({node.box for node in gpus})  # type: ignore[type-var]
    return [
        Box(
            index,
            tuple(node.name for node in gpus if node.box == index),
            frozenset(node.name for node in topology.nodes if node.box == index),
        )
        for index in indices
    ]


def box_rails(network: Network, box: Box) -> list[Fraction]:
    """Bandwidths of the arcs leaving the box domain (its NIC rails), in sorted arc order."""
    return [network.bandwidth[arc] for arc in _arcs_from(network, box) if arc[1] not in box.domain]


def _arcs_from(network: Network, box: Box) -> list[Arc]:
    """The arcs leaving nodes of the box's domain, sorted: read off the nodes' neighbours, so a box
    costs its own degree, not the whole network's arcs (1,024 GPUs have 128 boxes)."""
    return [(src, dst) for src in sorted(box.domain) for dst in network.neighbours.get(src, ())]


def _runtime_arcs(network: Network, box: Box) -> dict[Arc, Fraction]:
    """The arcs of the runtime's paths between the box's GPUs, with their bandwidths. The runtime
    takes one path per GPU pair (:meth:`collc.predict.network.Network.path`), for its rings as for
    collc's files, so a link that no such path takes carries none of its rings: a direct link
    between two GPUs that talk over a wider switch, or a PCIe tree beside an NVSwitch. A box whose
    GPUs meet only outside it (a failed switch) gets the arcs outside it that its paths take."""
    arcs: dict[Arc, Fraction] = {}
    for src in box.gpus:
        for dst in box.gpus:
            if src != dst:
                arcs.update((arc, network.bandwidth[arc]) for arc in network.arcs_of(network.path(src, dst)))
    return arcs


def _min_gpu_cut(network: Network, box: Box) -> Fraction:
    """Smallest max-flow between the box's first GPU and any other GPU, both ways, over the arcs of
    the runtime's paths between the box's GPUs (:func:`_runtime_arcs`)."""
    arcs = _runtime_arcs(network, box)
    names = sorted({node for arc in arcs for node in arc})
    index = {name: i for i, name in enumerate(names)}
    unit = rational_gcd(list(arcs.values()))
    flow = FlowNetwork(
        len(names), [(index[s], index[d], int(bw / unit)) for (s, d), bw in sorted(arcs.items())]
    )
    first = index[box.gpus[0]]
    best = min(
        min(flow.max_flow(first, index[gpu]), flow.max_flow(index[gpu], first)) for gpu in box.gpus[1:]
    )
    return best * unit


class Exchange(NamedTuple):
    """What the boxes can exchange (:func:`box_exchange`), for the ring and the tree across boxes."""

    egresses: dict[int | None, Fraction]  # per box: what its rails carry to the other boxes
    crossing: Fraction | None  # the least capacity across a cut between two boxes (None: one box)


def box_exchange(network: Network) -> Exchange:
    """What each box's rails carry to the other boxes (its egress, :func:`_egresses`) and the least
    capacity from one side to the other of any cut that separates two boxes: the smallest max-flow
    between the first box's GPUs and another's, in either direction (a cut with the first box on
    one side and some box on the other is at least that flow; every cut separating two boxes is such
    a cut, seen from one side or the other). The flows start and end at GPUs, not at every node of
    a box's domain: a NIC behind a narrower PCIe link is fed no faster than that link.

    Every ring crosses such a cut once in each direction at its full rate, so the rings' busbw is at
    most the crossing; each of the double binary tree's two trees crosses it with half the data in
    both directions (reduce up, broadcast down), so its allreduce algbw is at most the crossing too.
    One box's own egress does not see this: boxes under one leaf switch exchange at their NICs'
    speed among themselves while the leaf's uplink to the spine carries every ring's crossing (four
    boxes of four 50 GB/s NICs, two per leaf, 50 GB/s leaf uplinks: egress 200, crossing 50)."""
    boxes = boxes_of(network)
    if len(boxes) < 2:
        return Exchange({}, None)
    flows = _BoxFlows(network)
    first = flows.gpus(boxes[0])
    crossing = min(
        min(flows.between(first, flows.gpus(other)), flows.between(flows.gpus(other), first))
        for other in boxes[1:]
    )
    return Exchange(_egresses(network, boxes, flows), crossing)


class _BoxFlows:
    """The whole network in one max-flow graph (integer capacities in units of ``unit`` GB/s) with a
    super source and sink, each joined to every node by an arc that is switched on only for the
    nodes of the current question: the graph is built once for the 4 max-flows per box."""

    def __init__(self, network: Network):
        names = sorted(node.name for node in network.topology.nodes)
        self.index = {name: i for i, name in enumerate(names)}
        self.unit = rational_gcd(list(network.bandwidth.values()))
        arcs = [
            (self.index[s], self.index[d], int(bw / self.unit))
            for (s, d), bw in sorted(network.bandwidth.items())
        ]
        self.source, self.sink = len(names), len(names) + 1
        self.unbounded = sum(capacity for _, _, capacity in arcs) + 1
        self.from_source = len(arcs)  # the arc source -> node i is from_source + i
        self.to_sink = len(arcs) + len(names)  # the arc node i -> sink is to_sink + i
        arcs += [(self.source, i, 0) for i in range(len(names))]
        arcs += [(i, self.sink, 0) for i in range(len(names))]
        self.flow = FlowNetwork(len(names) + 2, arcs)
        self._gpus: dict[int | None, list[int]] = {}

    def gpus(self, box: Box) -> list[int]:
        """The node indices of the box's GPUs, where every flow between boxes starts and ends."""
        if box.index not in self._gpus:
            self._gpus[box.index] = [self.index[name] for name in box.gpus]
        return self._gpus[box.index]

    def between(self, senders: list[int], receivers: list[int]) -> Fraction:
        """The max-flow from a super source feeding every sender to a super sink fed by every
        receiver, in GB/s."""
        switched = np.concatenate(
            (
                self.from_source + np.asarray(senders, dtype=np.int64),
                self.to_sink + np.asarray(receivers, dtype=np.int64),
            )
        )
        self.flow.set_capacities(switched, np.full(len(switched), self.unbounded, dtype=np.int64))
        value = self.flow.max_flow(self.source, self.sink)
        self.flow.set_capacities(switched, np.zeros(len(switched), dtype=np.int64))
        return value * self.unit


def _egresses(network: Network, boxes: list[Box], flows: _BoxFlows) -> dict[int | None, Fraction]:
    """Per box (by index), what its rails carry to the other boxes: each rail at most two channels'
    copy rate, and all of them at most the box's egress, the smaller of the two max-flows between its
    GPUs and the other boxes' GPUs, through every node (a super source and sink on either side).
    Rings and trees across boxes leave and enter every box, so they carry at most this however many
    rails the box has: two GPUs whose own links (two rails) meet at a PCIe switch with one 24 GB/s
    uplink send 24 GB/s to the other boxes, not 48; a box's one 50 GB/s NIC behind a 32 GB/s PCIe
    link sends 32."""
    egresses = {}
    for box in boxes:
        ours = flows.gpus(box)
        theirs = [node for other in boxes if other.index != box.index for node in flows.gpus(other)]
        exchange = min(flows.between(ours, theirs), flows.between(theirs, ours))
        rails = (min(bw, CHANNELS_PER_RAIL * _THREADBLOCK) for bw in box_rails(network, box))
        egresses[box.index] = min(sum(rails, Fraction(0)), exchange)
    return egresses


def _hamiltonian_cycles(network: Network, box: Box) -> list[tuple[str, ...]] | None:
    """Every directed Hamiltonian cycle over direct GPU-GPU arcs (from the first GPU), or None if too many."""
    members = set(box.gpus)
    successors = {gpu: [dst for dst in network.neighbours.get(gpu, ()) if dst in members] for gpu in box.gpus}
    start = box.gpus[0]
    cycles: list[tuple[str, ...]] = []
    path = [start]
    seen = {start}
    stack = [iter(successors[start])]
    while stack:
        nxt = next(stack[-1], None)
        if nxt is None:
            stack.pop()
            seen.discard(path.pop())
            continue
        if nxt == start and len(path) == len(box.gpus):
            cycles.append(tuple(path))
            if len(cycles) > MAX_HAMILTONIAN_CYCLES:
                return None
        elif nxt not in seen:
            path.append(nxt)
            seen.add(nxt)
            stack.append(iter(successors[nxt]))
    return cycles


def _cycle_packing(network: Network, cycles: list[tuple[str, ...]]) -> Fraction:
    """Maximum total bandwidth of rings along ``cycles`` within the arc bandwidths (LP, GLOP)."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    rates = [solver.NumVar(0.0, solver.infinity(), f"ring{i}") for i in range(len(cycles))]
    users: dict[Arc, list[int]] = {}
    for i, cycle in enumerate(cycles):
        for arc in zip(cycle, cycle[1:] + cycle[:1], strict=False):
            users.setdefault(arc, []).append(i)
    for arc, members in sorted(users.items()):
        solver.Add(sum(rates[i] for i in members) <= float(network.bandwidth[arc]))
    solver.Maximize(sum(rates))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        raise InvariantError("the ring-packing LP did not reach an optimum", hint="report this as a bug")
    return Fraction(solver.Objective().Value()).limit_denominator(1000)


def ring_capacity(network: Network, box: Box) -> Fraction:
    """Total ring bandwidth through the box's GPUs (module docstring). A switchless box with no
    Hamiltonian cycle (a line or a star of GPUs) gets its smallest GPU-to-GPU cut, as if the runtime's
    ring forwarded through GPUs at full speed: never less than the runtime could do, so no collc
    file is credited for beating a ring that cannot be built."""
    if len(box.gpus) == 1:
        return Fraction(10**9)  # a one-GPU box adds no intra-box hop
    switched = any(network.topology.node(name).kind != "gpu" for name in box.domain - set(box.gpus))
    if not switched:
        cycles = _hamiltonian_cycles(network, box)
        if cycles:  # None: too many to enumerate; empty: none (both fall back to the cut)
            return _cycle_packing(network, cycles)
    return _min_gpu_cut(network, box)


@dataclass(frozen=True)
class RingBaseline:
    """NCCL-style rings: ``busbw`` (GB/s, Simple) and the ring's hop latencies (µs)."""

    busbw: Fraction
    rails: int
    hop_latency_us: tuple[float, ...]
    num_gpus: int

    def algbw(self, collective: str) -> Fraction:
        return self.busbw / busbw_factor(collective, self.num_gpus)

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        """Ring time: ``steps`` hops of latency plus the bytes at ``algbw`` (docs/cost-model.md §3)."""
        steps = (2 if collective == "allreduce" else 1) * (self.num_gpus - 1)
        mean_hop = sum(self.hop_latency_us) / len(self.hop_latency_us)
        bandwidth = float(self.algbw(collective) * proto.efficiency)
        return LAUNCH_US + steps * (mean_hop + proto.step_overhead_us) + nbytes / bandwidth / 1000


@dataclass(frozen=True)
class TreeBaseline:
    """NCCL's double binary tree for allreduce: ``algbw`` (GB/s, Simple) and one sweep's latency (µs)."""

    algbw_value: Fraction
    sweep_latency_us: float
    sweep_hops: int

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        if collective != "allreduce":
            raise InvariantError(f"the tree baseline only models allreduce, not {collective}")
        latency = 2 * (self.sweep_latency_us + self.sweep_hops * proto.step_overhead_us)
        return LAUNCH_US + latency + nbytes / float(self.algbw_value * proto.efficiency) / 1000


def _channel_capacity(network: Network, box: Box) -> Fraction:
    """The box's ring capacity, at most what NCCL's channels copy (module docstring, Threadblocks)."""
    return min(ring_capacity(network, box), MAX_CHANNELS * _THREADBLOCK)


def _ring_order(boxes: list[Box]) -> list[str]:
    return [gpu for box in boxes for gpu in box.gpus]


def ring_baseline(network: Network, exchange: Exchange | None = None) -> RingBaseline:
    """The rings NCCL/RCCL would build on this topology (module docstring); ``exchange``: the boxes'
    :func:`box_exchange`, where the caller has it."""
    boxes = boxes_of(network)
    order = _ring_order(boxes)
    hops = (
        tuple(
            network.path_latency_us(network.path(src, dst))
            for src, dst in zip(order, order[1:] + order[:1], strict=False)
        )
        if len(order) > 1
        else (0.0,)
    )
    if len(boxes) == 1:
        return RingBaseline(_channel_capacity(network, boxes[0]), 0, hops, len(order))
    exchange = box_exchange(network) if exchange is None else exchange
    busbw = None
    rails = 0
    for box in boxes:
        rail_bandwidths = box_rails(network, box)
        share = _channel_capacity(network, box) / max(len(rail_bandwidths), 1)
        box_busbw = sum(
            (min(bw, share, CHANNELS_PER_RAIL * _THREADBLOCK) for bw in rail_bandwidths), Fraction(0)
        )
        box_busbw = min(box_busbw, exchange.egresses[box.index])
        busbw = box_busbw if busbw is None else min(busbw, box_busbw)
        rails = max(rails, len(rail_bandwidths))
    assert busbw is not None and exchange.crossing is not None
    return RingBaseline(min(busbw, exchange.crossing), rails, hops, len(order))


def tree_baseline(network: Network, exchange: Exchange | None = None) -> TreeBaseline:
    """NCCL's double binary tree allreduce on this topology (module docstring); ``exchange`` as for
    :func:`ring_baseline`."""
    boxes = boxes_of(network)
    capacity = min(_channel_capacity(network, box) for box in boxes)
    per_box = max(len(box.gpus) for box in boxes)
    chain = [
        network.path_latency_us(network.path(a, b))
        for a, b in zip(boxes[0].gpus, boxes[0].gpus[1:], strict=False)
    ]
    latency = sum(chain)
    hops = per_box - 1
    algbw = capacity / 2
    if len(boxes) > 1:
        exchange = box_exchange(network) if exchange is None else exchange
        assert exchange.crossing is not None
        algbw = min(capacity, *exchange.egresses.values()) / 2
        algbw = min(algbw, exchange.crossing)
        depth = ceil(log2(len(boxes)))
        latency += depth * network.path_latency_us(network.path(boxes[0].gpus[0], boxes[1].gpus[0]))
        hops += depth
    return TreeBaseline(algbw, latency, hops)
