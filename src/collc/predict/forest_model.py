"""Analytic cost of a forest schedule (docs/cost-model.md §2).

Each unit tree carries ``S / (N·k)`` bytes (``S`` = nccl-tests size, ``N`` GPUs, ``k`` trees per
GPU). In the steady state a physical arc ``e`` is busy for ``busy(e) = load(e) · S/(N·k) / bw(e) /
efficiency``, where ``load(e)`` counts the unit trees crossing ``e`` (multiplicities and repeated
crossings included); ``max_e busy(e) = S / algbw`` with ``algbw = N·k/U`` for a forest that meets its
congestion budget ``U``.

Pipelining adds the time before an arc receives its first slice and after it sends its last one. A
logical tree edge (one hop) costs ``hop = path latency + step overhead + slice / path bandwidth``.
For an allgather edge ``j``, ``before(j)`` is the sum of the hops from the root to its sender and
``after(j)`` is its own hop without its slice time (sending the last slice is part of ``busy``) plus
the longest chain of hops below its receiver. An arc can start when
the earliest tree reaches it and must still forward the last slice it carries, so with the arc serving
its trees in the order that keeps it busy (deep trees first):

    T_phase = max( max_e [ min_{j∋e} before(j) + busy(e) + min_{j∋e} after(j) ],
                   max_j before(j) + slice(j) + after(j) )

Reduce-scatter runs the same trees towards the roots over the reversed arcs: ``before`` is then the
longest chain in the subtree below the sender, ``after`` the hops from the receiver up to the root.
Allreduce is reduce-scatter followed by allgather over the same trees and pays both phases. The model is
vectorised over all tree edges (numpy), so a size sweep costs milliseconds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from collc.errors import InputError
from collc.predict.network import Arc, Network
from collc.predict.params import LAUNCH_US, Protocol
from collc.solver.forest import Forest


def forest_arc_loads(forest: Forest, *, reverse: bool = False) -> dict[Arc, int]:
    """Unit trees crossing each physical arc (named by node names); ``reverse`` turns every arc around."""
    loads: dict[Arc, int] = {}
    for tree in forest.trees:
        for edge in tree.edges:
            for src, dst in zip(edge.path, edge.path[1:], strict=False):
                arc = (dst, src) if reverse else (src, dst)
                loads[arc] = loads.get(arc, 0) + tree.multiplicity
    return dict(sorted(loads.items()))


def _bandwidth(network: Network, arc: Arc) -> Fraction:
    if arc not in network.bandwidth:
        raise InputError(
            f"the schedule needs the arc {arc[0]} -> {arc[1]}, which {network.topology.name!r} lacks",
            hint="reduce-scatter and allreduce run the trees backwards: give the links both directions",
        )
    return network.bandwidth[arc]


def arc_utilisation(loads: dict[Arc, int], network: Network) -> dict[Arc, Fraction]:
    """Steady-state busy fraction of each arc: ``(load/bw) / max(load/bw)``, exact; the bottleneck is 1."""
    pressure = {arc: Fraction(load) / _bandwidth(network, arc) for arc, load in loads.items()}
    peak = max(pressure.values())
    return {arc: value / peak for arc, value in pressure.items()}


@dataclass(frozen=True)
class _Edges:
    """All tree edges of one direction as arrays (index = edge), with the arcs each edge crosses."""

    parent: np.ndarray  # index of the edge into the sender (-1 at the root)
    depth_order: list[np.ndarray]  # edge indices by depth, root edges first
    latency: np.ndarray  # path latency (µs)
    inverse_bw: np.ndarray  # 1 / path bottleneck bandwidth (1 / GB/s)
    incidence_edge: np.ndarray  # (edge, arc) pairs: edge index ...
    incidence_arc: np.ndarray  # ... and arc index
    arc_pressure: np.ndarray  # load(e) / bw(e) per arc index (unit trees per GB/s)


def _edges(network: Network, forest: Forest, reverse: bool) -> _Edges:
    arcs = forest_arc_loads(forest, reverse=reverse)
    arc_index = {arc: i for i, arc in enumerate(arcs)}
    parent: list[int] = []
    depth: list[int] = []
    latency: list[float] = []
    inverse_bw: list[float] = []
    incidence: list[tuple[int, int]] = []
    for tree in forest.trees:
        into: dict[int, int] = {}
        for edge in tree.edges:
            index = len(parent)
            parent.append(into.get(edge.src, -1))
            depth.append(depth[parent[-1]] + 1 if parent[-1] >= 0 else 0)
            into[edge.dst] = index
            path = tuple(reversed(edge.path)) if reverse else edge.path
            latency.append(network.path_latency_us(path))
            inverse_bw.append(1 / float(network.path_bandwidth(path)))
            incidence.extend((index, arc_index[arc]) for arc in itertools.pairwise(path))
    depths = np.array(depth)
    pressure = [float(Fraction(load) / _bandwidth(network, arc)) for arc, load in arcs.items()]
    pairs = np.array(incidence, dtype=np.int64)
    return _Edges(
        np.array(parent, dtype=np.int64),
        [np.flatnonzero(depths == d) for d in range(int(depths.max()) + 1)],
        np.array(latency),
        np.array(inverse_bw),
        pairs[:, 0],
        pairs[:, 1],
        np.array(pressure),
    )


@dataclass(frozen=True)
class ForestCost:
    """The analytic time model of one forest on one topology (see the module docstring)."""

    network: Network
    forest: Forest

    @property
    def units(self) -> int:
        """Unit trees in the forest: ``N·k``; each carries ``1/(N·k)`` of the data."""
        return self.forest.num_gpus * self.forest.k

    @cached_property
    def _down(self) -> _Edges:
        return _edges(self.network, self.forest, reverse=False)

    @cached_property
    def _up(self) -> _Edges:
        return _edges(self.network, self.forest, reverse=True)

    def steady_pressure(self, *, reverse: bool) -> Fraction:
        """``max_e load(e)/bw(e)`` in unit trees per GB/s, exact (equals ``U`` for an optimal forest)."""
        loads = forest_arc_loads(self.forest, reverse=reverse)
        return max(Fraction(load) / _bandwidth(self.network, arc) for arc, load in loads.items())

    def algbw(self, collective: str) -> Fraction:
        """Steady-state algbw (GB/s, Simple protocol, nccl-tests units) of the forest."""
        if collective == "allgather":
            return self.units / self.steady_pressure(reverse=False)
        if collective == "reducescatter":
            return self.units / self.steady_pressure(reverse=True)
        return 1 / (1 / self.algbw("allgather") + 1 / self.algbw("reducescatter"))

    def phase_us(self, nbytes: int, proto: Protocol, *, reverse: bool) -> float:
        """One allgather (``reverse=False``) or reduce-scatter phase of ``nbytes``, without launch."""
        edges = self._up if reverse else self._down
        per_tree = nbytes / self.units
        efficiency = float(proto.efficiency)
        slice_bytes = min(proto.slice_bytes, per_tree)
        slice_us = slice_bytes * edges.inverse_bw / efficiency / 1000
        hop = edges.latency + proto.step_overhead_us + slice_us
        from_root = np.zeros_like(hop)  # hops from the tree's root to the edge's sender
        below = hop.copy()  # the edge's hop plus the longest chain below its receiver
        for level in edges.depth_order[1:]:
            from_root[level] = from_root[edges.parent[level]] + hop[edges.parent[level]]
        for level in reversed(edges.depth_order[1:]):
            np.maximum.at(below, edges.parent[level], hop[edges.parent[level]] + below[level])
        if reverse:  # data climbs to the root: the subtree comes first, the path to the root after
            before, after = below - hop, from_root + hop - slice_us
        else:  # the arc's own sending of the last slice is part of busy(e), not of after(j)
            before, after = from_root, below - slice_us
        num_arcs = len(edges.arc_pressure)
        start = np.full(num_arcs, np.inf)
        finish = np.full(num_arcs, np.inf)
        np.minimum.at(start, edges.incidence_arc, before[edges.incidence_edge])
        np.minimum.at(finish, edges.incidence_arc, after[edges.incidence_edge])
        busy = edges.arc_pressure * per_tree / efficiency / 1000
        return float(max((start + busy + finish).max(), (before + after + slice_us).max()))

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        """Predicted time of one ``collective`` call of ``nbytes`` (nccl-tests size) in µs."""
        if collective == "allgather":
            return LAUNCH_US + self.phase_us(nbytes, proto, reverse=False)
        if collective == "reducescatter":
            return LAUNCH_US + self.phase_us(nbytes, proto, reverse=True)
        return (
            LAUNCH_US
            + self.phase_us(nbytes, proto, reverse=True)
            + self.phase_us(nbytes, proto, reverse=False)
        )
