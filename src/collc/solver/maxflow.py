"""Compiled max-flow for the solver's hot loops (OR-Tools ``SimpleMaxFlow``, push-relabel in C++).

Chosen by measurement (scripts/bench_solver.py re-measures it): on a 64-box rail-optimised fabric
(586 vertices, 2576 arcs) one s-t max-flow takes about 0.17 ms with OR-Tools reusing its graph,
1.0 ms with scipy's ``csgraph.maximum_flow`` (dinic, int32 capacities, graph rebuilt per call) and
0.86 ms with igraph. OR-Tools also has int64 capacities, in-place capacity updates and the min cut.

:class:`FlowNetwork` keeps one OR-Tools graph alive across the many max-flow calls of a phase: arcs
are added once and switched on and off by setting their capacity (0 = absent), so nothing is rebuilt
between calls.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ortools.graph.python import max_flow

from collc.errors import InvariantError


class FlowNetwork:
    """A directed network with int64 capacities on which max-flow is solved repeatedly."""

    def __init__(self, num_nodes: int, arcs: Iterable[tuple[int, int, int]] = ()):
        self._solver = max_flow.SimpleMaxFlow()
        self.num_nodes = num_nodes
        self.calls = 0  # max-flow calls made on this network (for benchmarks)
        self._limited: dict[int, tuple[int, int]] = {}  # source -> (node, arc) of max_flow_up_to
        arcs = list(arcs)
        if num_nodes > 1:  # OR-Tools knows a vertex only through its arcs: a zero arc registers them all
            arcs.append((num_nodes - 1, 0, 0))
        if arcs:
            tails, heads, caps = (np.asarray(column, dtype=np.int64) for column in zip(*arcs, strict=True))
            self._solver.add_arcs_with_capacity(tails, heads, caps)

    @property
    def num_arcs(self) -> int:
        return self._solver.num_arcs()

    def add_arc(self, tail: int, head: int, capacity: int) -> int:
        """Add an arc and return its index (use capacity 0 for an arc switched on later)."""
        self.num_nodes = max(self.num_nodes, tail + 1, head + 1)
        return self._solver.add_arc_with_capacity(tail, head, capacity)

    def set_capacity(self, arc: int, capacity: int) -> None:
        self._solver.set_arc_capacity(arc, capacity)

    def set_capacities(self, arcs: np.ndarray, capacities: np.ndarray) -> None:
        """Set many capacities in one call (int64 arrays of arc indices and capacities, same length)."""
        self._solver.set_arcs_capacity(
            np.asarray(arcs, dtype=np.int64), np.asarray(capacities, dtype=np.int64)
        )

    def capacity(self, arc: int) -> int:
        return self._solver.capacity(arc)

    def max_flow(self, source: int, sink: int) -> int:
        """The value of a maximum ``source``-``sink`` flow with the current capacities."""
        self.calls += 1
        status = self._solver.solve(source, sink)
        if status != max_flow.SimpleMaxFlow.OPTIMAL:
            raise InvariantError(f"max-flow solver returned status {status} for {source}->{sink}")
        return self._solver.optimal_flow()

    def max_flow_up_to(self, source: int, sink: int, limit: int) -> int:
        """``min(max flow, limit)`` from ``source`` to ``sink``, faster than :meth:`max_flow` where the
        flow could be much larger: it leaves from a node of its own whose one arc into ``source``
        carries ``limit``, so push-relabel moves at most that much (exact tree packing of 32x8 A100:
        17.9 -> 6.6 s). Where the value is below ``limit`` that arc does not bind and
        :meth:`source_side` is the uncapped flow's minimum cut (the residual graph's reach from the
        source is the same for every maximum flow), with the node added; where it is ``limit`` the
        cut says nothing. The node is added on the first call for ``source``, after the vertices
        that exist then."""
        if source not in self._limited:
            node = self.num_nodes
            self._limited[source] = (node, self.add_arc(node, source, 0))
        node, arc = self._limited[source]
        self.set_capacity(arc, limit)
        return self.max_flow(node, sink)

    def source_side(self) -> list[int]:
        """Vertices on the source side of a minimum cut of the last :meth:`max_flow` call."""
        return list(self._solver.get_source_side_min_cut())
