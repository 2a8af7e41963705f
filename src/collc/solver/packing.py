"""Capacitated spanning-tree packing on the switch-free graph (docs/solver.md).

After switch removal every GPU ``r`` must root ``k`` spanning out-trees, and logical arc ``e`` may be
used by at most ``c'(e)`` of the ``N·k`` unit trees. A *capacitated* tree ``τ`` of multiplicity ``C_τ``
stands for ``C_τ`` identical unit trees; each root starts with one tree of multiplicity ``k`` holding
only the root.

Edmonds' branching theorem, in the form for partial trees: trees with vertex sets ``R_σ`` can all be
completed with the remaining capacities iff ``ρ(X) >= need(X) = Σ_{σ : R_σ ∩ X = ∅} C_σ`` for every
non-empty ``X``. Adding arc ``(x, y)`` (``x ∈ R_τ``, ``y ∉ R_τ``) to ``μ`` copies of ``τ`` lowers
``ρ(X)`` by ``μ`` for every ``X ∋ y, ∌ x``, and lowers ``need(X)`` by the same ``μ`` unless ``X`` meets
``R_τ``. So the largest admissible ``μ`` is

    μ = min( C_τ,  c'(x, y),  min { ρ(X) - need_{σ≠τ}(X) : y ∈ X, x ∉ X } )

and the last term is one max-flow (Lovász's proof of Edmonds' theorem): a hub vertex ``h`` with an
infinite arc to ``x`` and an arc of capacity ``C_σ`` to a node ``s_σ`` per other unfinished tree,
``s_σ`` with infinite arcs to ``R_σ``; then ``maxflow(h, y) - Σ_{σ≠τ} C_σ`` is that minimum (sets that
miss ``R_τ`` score at least ``C_τ`` there, so the ``min`` with ``C_τ`` makes the test exact).

If ``0 < μ < C_τ`` the tree splits: ``μ`` copies take the arc, a clone with the other ``C_τ - μ``
copies is queued. Trees are grown one at a time (FIFO), breadth first. An arc found inadmissible stays
inadmissible while the same tree grows (its tight set stays tight), so a single breadth-first pass
completes every tree; a tree that does not span all GPUs is an :class:`InvariantError`.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from collc.errors import InvariantError
from collc.solver.maxflow import FlowNetwork
from collc.stepping import drain

Arc = tuple[int, int]

# A tree's growth yields after this many vertices expanded (arcs tried, in symmetric packing): about
# 0.1 s at 1,024 GPUs, so a service can stop a compile inside the packing of one tree.
GROW_STRIDE = 64


@dataclass
class LogicalTree:
    """A capacitated out-tree on GPU ranks; ``edges`` in the order they were added (breadth first)."""

    root: int
    multiplicity: int
    edges: list[Arc] = field(default_factory=list)
    vertices: list[int] = field(default_factory=list)  # BFS order, root first
    node: int = -1  # the tree's vertex s_τ in the flow network
    hub_arc: int = -1  # index of the arc h -> s_τ


@dataclass
class Packing:
    trees: list[LogicalTree]
    max_flow_calls: int


class _Packer:
    """Tree packing on one flow network: GPUs ``0..N-1``, hub ``N``, then one node per tree."""

    def __init__(self, num_gpus: int, k: int, capacities: dict[Arc, int]):
        self.num_gpus = num_gpus
        self.hub = num_gpus
        self.capacity = dict(capacities)
        self.out_neighbours: list[list[int]] = [[] for _ in range(num_gpus)]
        for x, y in sorted(capacities):
            self.out_neighbours[x].append(y)
        self.infinite = sum(capacities.values()) + num_gpus * k + 1
        self.unfinished = 0  # Σ C_σ over unfinished trees
        self.calls = 0  # max-flow calls on networks already replaced
        self.dead_arcs = 0  # arcs of finished trees still in the network
        self._build([])

    def _build(self, live: list[LogicalTree]) -> None:
        """(Re)build the flow network from the current capacities and the ``live`` (queued) trees.

        OR-Tools solves over every arc it holds, so the arcs of finished trees (capacity 0 but still
        stored) would slow every later max-flow; rebuilding drops them.
        """
        if hasattr(self, "network"):
            self.calls += self.network.calls
        self.network = FlowNetwork(self.num_gpus + 1)
        self.arc_index = {
            arc: self.network.add_arc(*arc, cap) for arc, cap in sorted(self.capacity.items()) if cap > 0
        }
        self.hub_to = [self.network.add_arc(self.hub, x, 0) for x in range(self.num_gpus)]
        for tree in live:
            self._attach(tree, tree.multiplicity)
        self.dead_arcs = 0

    def _attach(self, tree: LogicalTree, hub_capacity: int) -> None:
        """Give ``tree`` its node ``s_τ``: arc ``h -> s_τ`` and infinite arcs ``s_τ -> R_τ``."""
        tree.node = self.network.num_nodes
        tree.hub_arc = self.network.add_arc(self.hub, tree.node, hub_capacity)
        for x in tree.vertices:
            self.network.add_arc(tree.node, x, self.infinite)

    def maybe_rebuild(self, live: list[LogicalTree]) -> None:
        """Rebuild when finished trees' arcs outnumber the live ones (amortised linear cost)."""
        if self.dead_arcs > max(64, self.network.num_arcs - self.dead_arcs):
            self._build(live)

    def new_tree(self, root: int, multiplicity: int, edges: list[Arc], vertices: list[int]) -> LogicalTree:
        tree = LogicalTree(root, multiplicity, list(edges), list(vertices))
        self._attach(tree, multiplicity)
        self.unfinished += multiplicity
        return tree

    def _admissible(self, tree: LogicalTree, x: int, y: int) -> tuple[int, frozenset[int] | None]:
        """The largest ``μ`` (module docstring) for adding ``(x, y)`` to ``tree`` (its hub arc is 0).

        When the max-flow term decides ``μ``, also returns the GPUs of a minimum cut's sink side
        ``X``: once ``μ`` copies take the arc, ``X`` is tight for ``tree`` (``ρ(X) = need(X)``).
        """
        bound = min(tree.multiplicity, self.capacity.get((x, y), 0))
        if bound == 0:
            return 0, None
        self.network.set_capacity(self.hub_to[x], self.infinite)
        others = self.unfinished - tree.multiplicity  # more flow than others + bound cannot matter
        slack = self.network.max_flow_up_to(self.hub, y, others + bound + 1) - others
        tight = None
        if slack <= bound:
            source_side = set(self.network.source_side())
            tight = frozenset(v for v in range(self.num_gpus) if v not in source_side)
        self.network.set_capacity(self.hub_to[x], 0)
        return max(0, min(bound, slack)), tight

    def grow(self, tree: LogicalTree, queue: deque[LogicalTree]) -> Generator[None, None, None]:
        """Grow ``tree`` breadth first into a spanning tree, splitting off clones as needed; yields
        after every :data:`GROW_STRIDE` vertices expanded (one tree of 1,024 GPUs takes 1-2 s).

        A tight set ``X`` stays tight while ``tree`` grows (capacities only shrink and the other
        trees do not change), so no later arc from ``R_τ - X`` into ``X`` can be added: such arcs are
        skipped without a max-flow.
        """
        self.network.set_capacity(tree.hub_arc, 0)
        members = set(tree.vertices)
        tight_sets: list[frozenset[int]] = []
        position = 0
        while position < len(tree.vertices):
            x = tree.vertices[position]
            position += 1
            if position % GROW_STRIDE == 0:
                yield
            for y in self.out_neighbours[x]:
                if y in members or any(y in tight and x not in tight for tight in tight_sets):
                    continue
                mu, tight = self._admissible(tree, x, y)
                if tight is not None:
                    tight_sets.append(tight)
                if mu == 0:
                    continue
                if mu < tree.multiplicity:
                    queue.append(self.new_tree(tree.root, tree.multiplicity - mu, tree.edges, tree.vertices))
                    self.unfinished -= tree.multiplicity - mu  # the clone now holds those copies
                    tree.multiplicity = mu
                tree.edges.append((x, y))
                tree.vertices.append(y)
                members.add(y)
                self.network.add_arc(tree.node, y, self.infinite)
                self._use(x, y, mu)
        if len(members) != self.num_gpus:
            missing = sorted(set(range(self.num_gpus)) - members)
            raise InvariantError(
                f"tree packing: a tree of root {tree.root} (multiplicity {tree.multiplicity}) cannot reach "
                f"GPUs {missing[:8]}; the switch-free graph does not satisfy Edmonds' condition"
            )
        self.unfinished -= tree.multiplicity
        self.dead_arcs += len(tree.vertices) + 1

    def _use(self, x: int, y: int, units: int) -> None:
        left = self.capacity[(x, y)] - units
        self.capacity[(x, y)] = left
        self.network.set_capacity(self.arc_index[(x, y)], left)


def pack_trees(num_gpus: int, k: int, capacities: dict[Arc, int]) -> Packing:
    """Pack ``k`` spanning out-trees per GPU into the logical ``capacities`` (module docstring)."""
    return drain(packing_steps(num_gpus, k, capacities))


def packing_steps(num_gpus: int, k: int, capacities: dict[Arc, int]) -> Generator[None, None, Packing]:
    """:func:`pack_trees` one tree at a time: it yields after each tree it grows, so that a caller can
    stop between two (at 128 GPUs packing takes seconds), and returns the packing."""
    packer = _Packer(num_gpus, k, capacities)
    queue: deque[LogicalTree] = deque(packer.new_tree(root, k, [], [root]) for root in range(num_gpus))
    done = []
    while queue:
        packer.maybe_rebuild(list(queue))
        tree = queue.popleft()
        yield from packer.grow(tree, queue)
        done.append(tree)
        yield
    return Packing(done, packer.calls + packer.network.calls)


# -- symmetric packing ------------------------------------------------------------------------------


@dataclass
class _Orbit:
    """A representative tree and the flow-network handles of its images (one per root of the orbit)."""

    tree: LogicalTree
    nodes: list[int]  # s_σ of each image, in transversal order
    hub_arcs: list[int]
    members: set[int] = field(default_factory=set)  # the representative tree's vertices
    entries: dict[int, list[int]] = field(default_factory=dict)  # vertex x -> arcs s_g(τ) -> g(x)
    interior: set[int] = field(default_factory=set)  # vertices whose out-neighbours are all members


class _SymmetricPacker:
    """Tree packing on a graph with automorphisms (docs/solver.md).

    Only one representative root per GPU orbit grows trees; every decision is applied to all images
    ``g(τ)`` at once (``g`` from a transversal of the orbit), so the state stays symmetric. Adding an
    arc is accepted when Edmonds' condition still holds for the whole instance, checked as
    ``maxflow(h, v) >= Σ C_σ`` (hub ``h`` with arcs ``C_σ`` to every unfinished tree) for one sink per
    GPU orbit. Capacities of every image arc are checked and decremented explicitly, so the result is
    a valid packing whatever the symmetry check concludes; if a representative tree gets stuck (no
    symmetric completion), the caller falls back to :func:`pack_trees`.
    """

    def __init__(
        self,
        num_gpus: int,
        k: int,
        capacities: dict[Arc, int],
        transversals: dict[int, list[tuple[int, ...]]],
        breadth_first: bool = False,
    ):
        self.num_gpus = num_gpus
        self.hub = num_gpus
        self.capacity = dict(capacities)
        self.transversals = transversals
        self.breadth_first = breadth_first
        self.sinks = sorted(transversals)
        self.sink_set = set(self.sinks)
        self.infinite = sum(capacities.values()) + num_gpus * k + 1
        self.out_neighbours: list[list[int]] = [[] for _ in range(num_gpus)]
        self.in_neighbours: list[list[int]] = [[] for _ in range(num_gpus)]
        for x, y in sorted(capacities):
            self.out_neighbours[x].append(y)
            self.in_neighbours[y].append(x)
        self.unfinished = num_gpus * k
        self.calls = 0  # max-flow calls on replaced networks
        self.dead_arcs = 0  # zero-capacity arcs left by rejected probes and finished trees
        self._build([])

    def _build(self, live: list[_Orbit]) -> None:
        """(Re)build the network from the remaining capacities and the ``live`` orbits' trees."""
        if hasattr(self, "network"):
            self.calls += self.network.calls
        self.network = FlowNetwork(self.num_gpus + 1)
        self.arc_index = {
            arc: self.network.add_arc(*arc, cap) for arc, cap in sorted(self.capacity.items()) if cap > 0
        }
        for orbit in live:
            orbit.nodes, orbit.hub_arcs, orbit.entries = [], [], {}
            self._attach(orbit, orbit.tree.multiplicity)
        self.dead_arcs = 0

    def _attach(self, orbit: _Orbit, multiplicity: int) -> None:
        """Give every image its node, hub arc and entry arcs (interior vertices only to sinks)."""
        transversal = self.transversals[orbit.tree.root]
        for _ in transversal:
            node = self.network.num_nodes
            orbit.hub_arcs.append(self.network.add_arc(self.hub, node, multiplicity))
            orbit.nodes.append(node)
        for x in orbit.tree.vertices:
            if x in orbit.interior:
                for node, g in zip(orbit.nodes, transversal, strict=True):
                    if g[x] in self.sink_set:
                        self.network.add_arc(node, g[x], self.infinite)
            else:
                orbit.entries[x] = [
                    self.network.add_arc(node, g[x], self.infinite)
                    for node, g in zip(orbit.nodes, transversal, strict=True)
                ]

    def _prune(self, orbit: _Orbit, y: int) -> None:
        """Switch off entry arcs at vertices that became interior when ``y`` joined the tree.

        Flow entering an image tree at an interior vertex can only move on to other vertices of the
        same tree, where it could have entered directly, so these arcs never change a max-flow value
        -- except an entry at the sink itself, which is kept.
        """
        for z in [y, *self.in_neighbours[y]]:
            if z in orbit.interior or z not in orbit.members:
                continue
            if all(t in orbit.members for t in self.out_neighbours[z]):
                orbit.interior.add(z)
                transversal = self.transversals[orbit.tree.root]
                arcs = [
                    a
                    for a, g in zip(orbit.entries.pop(z), transversal, strict=True)
                    if g[z] not in self.sink_set
                ]
                self.network.set_capacities(
                    np.asarray(arcs, dtype=np.int64), np.zeros(len(arcs), dtype=np.int64)
                )
                self.dead_arcs += len(arcs)

    def maybe_rebuild(self, live: list[_Orbit]) -> None:
        if self.dead_arcs > max(1000, self.network.num_arcs - self.dead_arcs):
            self._build(live)

    def new_orbit(
        self,
        root: int,
        multiplicity: int,
        edges: list[Arc],
        vertices: list[int],
        interior: set[int] | None = None,
    ) -> _Orbit:
        tree = LogicalTree(root, multiplicity, list(edges), list(vertices))
        orbit = _Orbit(tree, [], [], set(vertices), {}, set(interior or ()))
        self._attach(orbit, multiplicity)
        return orbit

    def _feasible(self) -> bool:
        return all(
            self.network.max_flow_up_to(self.hub, v, self.unfinished) >= self.unfinished for v in self.sinks
        )

    def _set(self, arc: Arc, capacity: int) -> None:
        self.capacity[arc] = capacity
        self.network.set_capacity(self.arc_index[arc], capacity)

    def try_add(
        self, orbit: _Orbit, x: int, y: int, mu: int, queue: deque[_Orbit], commit: bool = True
    ) -> bool:
        """Whether ``(x, y)`` can go to ``mu`` copies of the representative tree and of every image;
        if so and ``commit``, add it (queueing the clones when ``mu`` is less than the multiplicity)."""
        tree = orbit.tree
        images = [(g[x], g[y]) for g in self.transversals[tree.root]]
        use: dict[Arc, int] = {}
        for arc in images:
            use[arc] = use.get(arc, 0) + mu
        if any(self.capacity.get(arc, 0) < units for arc, units in use.items()):
            return False
        for arc, units in use.items():
            self._set(arc, self.capacity[arc] - units)
        new_arcs = [
            self.network.add_arc(node, head, self.infinite)
            for node, (_, head) in zip(orbit.nodes, images, strict=True)
        ]
        clone = None
        if mu < tree.multiplicity:
            clone = self.new_orbit(
                tree.root, tree.multiplicity - mu, tree.edges, tree.vertices, orbit.interior
            )
            for arc in orbit.hub_arcs:
                self.network.set_capacity(arc, mu)
        feasible = self._feasible()
        if feasible and commit:
            if clone is not None:
                queue.append(clone)
                tree.multiplicity = mu
            tree.edges.append((x, y))
            tree.vertices.append(y)
            orbit.members.add(y)
            orbit.entries[y] = new_arcs
            self._prune(orbit, y)
            return True
        for arc, units in use.items():
            self._set(arc, self.capacity[arc] + units)
        for arc in new_arcs + (clone.hub_arcs if clone else []):
            self.network.set_capacity(arc, 0)
        self.dead_arcs += len(new_arcs) + (len(clone.hub_arcs) * (1 + len(tree.vertices)) if clone else 0)
        for arc in orbit.hub_arcs:
            self.network.set_capacity(arc, tree.multiplicity)
        return feasible

    def grow(self, orbit: _Orbit, queue: deque[_Orbit]) -> Generator[None, None, bool]:
        """Grow the representative tree; False if it gets stuck before spanning. Yields after every
        :data:`GROW_STRIDE` arcs tried.

        Frontier arcs are tried widest first, then from the shallowest vertex (a Prim-like order):
        on a rail fabric the tree covers a box through its wide NVSwitch arcs before it spends a
        scarce rail arc, so every box is entered once and the trees stay shallow (every rail arc
        orbit may carry only a few of the representative's edges, since all images share it).

        ``breadth_first`` counts an arc's width only up to the tree's multiplicity (the copies that can
        take it), so arcs wide enough for the whole tree tie and are tried from the shallowest vertex
        (:func:`frontier_width`). The packing is as exact either way; the trees differ where a
        fabric's links differ in width (DGX-1's single and double NVLinks, MI250's xGMI), and which
        order simulates faster depends on the fabric, so compile tries both.
        """
        tree = orbit.tree
        members = orbit.members
        depth = {tree.root: 0}
        for x, y in tree.edges:
            depth[y] = depth[x] + 1
        frontier: list[tuple[int, int, int, int]] = []
        for x in tree.vertices:
            self._push(frontier, orbit, depth, x)
        tried = 0
        while frontier:
            tried += 1
            if tried % GROW_STRIDE == 0:
                yield
            width, level, x, y = heapq.heappop(frontier)
            capacity = self.capacity.get((x, y), 0)
            if y in members or capacity == 0:
                continue
            now = frontier_width(capacity, tree.multiplicity, self.breadth_first)
            if now != -width:  # the arc narrowed since it was queued: requeue with the new key
                heapq.heappush(frontier, (-now, level, x, y))
                continue
            self.maybe_rebuild([orbit, *queue])
            if self._largest(orbit, x, y, queue):
                depth[y] = level + 1
                self._push(frontier, orbit, depth, y)
        if len(members) != self.num_gpus:
            return False
        for arc in orbit.hub_arcs:
            self.network.set_capacity(arc, 0)
        self.unfinished -= tree.multiplicity * len(orbit.hub_arcs)
        self.dead_arcs += len(orbit.hub_arcs) + sum(len(arcs) for arcs in orbit.entries.values())
        return True

    def _push(self, frontier: list, orbit: _Orbit, depth: dict[int, int], x: int) -> None:
        for y in self.out_neighbours[x]:
            capacity = self.capacity.get((x, y), 0)
            if y not in orbit.members and capacity > 0:
                width = frontier_width(capacity, orbit.tree.multiplicity, self.breadth_first)
                heapq.heappush(frontier, (-width, depth[x], x, y))

    def _largest(self, orbit: _Orbit, x: int, y: int, queue: deque[_Orbit]) -> int:
        """Add ``(x, y)`` with the largest feasible multiplicity (binary search: feasibility is an
        interval of ``μ`` because every cut's slack changes linearly in ``μ``); 0 if none."""
        high = min(orbit.tree.multiplicity, self.capacity.get((x, y), 0))
        if high == 0:
            return 0
        if self.try_add(orbit, x, y, high, queue):
            return high
        low = 0  # feasible (no change)
        high -= 1
        while low < high:
            mid = (low + high + 1) // 2
            if self.try_add(orbit, x, y, mid, queue, commit=False):
                low = mid
            else:
                high = mid - 1
        if low > 0 and self.try_add(orbit, x, y, low, queue):
            return low
        return 0


def frontier_width(capacity: int, multiplicity: int, breadth_first: bool) -> int:
    """How wide the symmetric packer takes a frontier arc of ``capacity`` for a tree of
    ``multiplicity`` copies: its capacity, or ``breadth_first`` at most the copies that can take it
    (:meth:`_SymmetricPacker.grow`)."""
    return min(capacity, multiplicity) if breadth_first else capacity


def pack_trees_symmetric(
    num_gpus: int,
    k: int,
    capacities: dict[Arc, int],
    transversals: dict[int, list[tuple[int, ...]]],
    breadth_first: bool = False,
) -> Packing | None:
    """Symmetric packing (see :class:`_SymmetricPacker`), or ``None`` when it gets stuck.

    ``transversals[r]`` lists, for the representative ``r`` of each GPU orbit, one automorphism of
    the logical graph per orbit member (mapping ``r`` to it); together the orbits cover every GPU.
    ``breadth_first`` picks the frontier order (:meth:`_SymmetricPacker.grow`).
    """
    return drain(symmetric_packing_steps(num_gpus, k, capacities, transversals, breadth_first))


def symmetric_packing_steps(
    num_gpus: int,
    k: int,
    capacities: dict[Arc, int],
    transversals: dict[int, list[tuple[int, ...]]],
    breadth_first: bool = False,
) -> Generator[None, None, Packing | None]:
    """:func:`pack_trees_symmetric` one orbit's tree at a time (yields after each)."""
    packer = _SymmetricPacker(num_gpus, k, capacities, transversals, breadth_first)
    queue: deque[_Orbit] = deque(packer.new_orbit(root, k, [], [root]) for root in sorted(transversals))
    done = []
    while queue:
        orbit = queue.popleft()
        if not (yield from packer.grow(orbit, queue)):
            return None
        done.append(orbit.tree)
        yield
    trees = [
        LogicalTree(
            g[tree.root],
            tree.multiplicity,
            [(g[x], g[y]) for x, y in tree.edges],
            [g[v] for v in tree.vertices],
        )
        for tree in done
        for g in transversals[tree.root]
    ]
    return Packing(trees, packer.calls + packer.network.calls)
