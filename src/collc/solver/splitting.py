"""Switch removal by edge splitting (docs/solver.md §3).

Input: the integer flow network of a bound ``(U, k)`` -- arc ``e`` may carry ``c(e) = floor(U·b_e)``
unit trees -- and a super source ``s`` with an arc of capacity ``k`` to every GPU. The bound guarantees

    λ(s, v) >= N·k  for every GPU v,   i.e.  ρ(X) >= N·k for every vertex set X ∌ s holding a GPU   (*)

where ``ρ(X)`` is the capacity entering ``X``. Switches can only forward, so before packing trees we
replace every switch ``w`` by direct GPU-to-GPU (logical) arcs while keeping (*): *splitting off* a
pair ``(u, w), (w, t)`` by ``α`` moves ``α`` units from both arcs onto a direct arc ``(u, t)``. Counting
arcs entering ``X`` before and after shows that exactly two kinds of sets lose ``α``:

* family A: ``w ∈ X`` and ``u, t ∉ X``;
* family B: ``w ∉ X`` and ``u, t ∈ X``;

so the largest admissible ``α`` is ``min(c(u,w), c(w,t))`` capped by the slack ``ρ(X) - N·k`` of every
GPU-holding set of both families. Each family's smallest ``ρ(X)`` is one max-flow with merged
terminals (infinite gadget arcs): family A is a flow from ``{s, u, t}`` to ``w``, family B a flow from
``{s, w}`` to ``{u, t}``. The "X holds a GPU" side condition is met for free when the *largest* sink
side of that minimum cut holds a GPU (then the constrained minimum equals the unconstrained one);
only otherwise is it enforced GPU by GPU.

Splitting is exact by construction (each split keeps (*)), and complete by the directed splitting
theorem for rooted connectivity at a vertex whose in-capacity equals its out-capacity (full-duplex
links): every unit on ``(u, w)`` has an admissible partner. A tight set stays tight (splitting never
raises ``ρ``), so one pass over the partners ``t`` of each ``(u, w)`` splits as much as any number of
passes would. Capacity left at a switch is dropped with the switch, and the final check (one max-flow
per GPU on the switch-free graph) decides whether (*) still holds. If it does not:

* on a fabric whose switches all have ingress = egress, that is a bug (:class:`InvariantError`);
* otherwise the fabric is outside the theorem: a switch that takes in less than it sends out would
  have to replicate data to meet the cut bound, which switches cannot (no multicast), so no tree
  schedule may reach the bound (:class:`~collc.solver.balance.UnbalancedSwitches`, naming the
  unbalanced switches; the pipeline then packs the balanced fabric of :mod:`collc.solver.balance`).
  Most unbalanced fabrics still split completely; only the final check decides.

Every unit of logical capacity remembers the physical vertex path it stands for (``routes``), so the
mapping back (:mod:`collc.solver.paths`) is a lookup. A route never visits a vertex twice: a split
whose two halves meet again before the switch has the loop cut out (:func:`join_paths`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from math import inf

from collc.capacity import CapacityGraph
from collc.errors import InvariantError
from collc.solver.balance import UnbalancedSwitches, unbalanced_switches
from collc.solver.maxflow import FlowNetwork
from collc.solver.symmetry import gpu_orbits, orbit_transversal

Arc = tuple[int, int]
Path = tuple[int, ...]


class Bypassed(Enum):
    """Where a switch offers the partners the runtime reaches another way (:class:`PeerPaths`)."""

    ANYWHERE = "anywhere"  # in the plain order
    NEVER = "never"  # not at all: their capacity is dropped with the switch
    LAST = "last"  # after every other partner


SPREAD = 8  # partners an in-arc's capacity is first shared among (docs/solver.md: shallower trees)


@dataclass
class SwitchFreeGraph:
    """The result of switch removal: logical arcs between GPUs and the physical paths behind them.

    ``capacities[(u, t)]`` is the number of unit trees the logical arc may carry; ``routes[(u, t)]``
    lists ``(path, units)`` with ``path`` the physical vertex path ``u .. t`` (through switches only)
    and the units summing to the capacity.
    """

    num_gpus: int
    k: int
    capacities: dict[Arc, int]
    routes: dict[Arc, list[tuple[Path, int]]]
    max_flow_calls: int = 0
    split_operations: int = 0
    dropped_capacity: int = 0  # capacity left at switches when they were deleted (0 on balanced fabrics)
    switch_order: list[int] = field(default_factory=list)


class _Splitter:
    """Edge splitting on one reused flow network (vertex ``num_nodes`` is the super source)."""

    def __init__(
        self,
        graph: CapacityGraph,
        capacities: Sequence[int],
        k: int,
        boxes: Sequence[str | None] = (),
        bypassed: Bypassed = Bypassed.ANYWHERE,
    ):
        self.graph = graph
        self.boxes = tuple(boxes) or (None,) * graph.num_nodes
        self.bypassed = bypassed
        self.peers = PeerPaths(graph, self.boxes)
        self.num_gpus = graph.num_gpus
        self.k = k
        self.demand = graph.num_gpus * k
        self.source = graph.num_nodes
        self.network = FlowNetwork(graph.num_nodes + 1)
        self.capacity: dict[Arc, int] = {}
        self.arc_index: dict[Arc, int] = {}
        self.out_neighbours: list[set[int]] = [set() for _ in range(graph.num_nodes)]
        self.in_neighbours: list[set[int]] = [set() for _ in range(graph.num_nodes)]
        self.routes: dict[Arc, deque[list]] = {}
        for (u, v, _), cap in zip(graph.arcs, capacities, strict=True):
            if cap > 0:
                self._set(u, v, cap)
                self.routes[(u, v)] = deque([[(u, v), cap]])
        for gpu in range(graph.num_gpus):
            self.network.add_arc(self.source, gpu, k)
        self.infinite = sum(capacities) + self.demand + 1
        self.gadgets: dict[Arc, int] = {}  # (tail, head) -> index of an infinite arc, 0 when unused
        self.split_operations = 0
        self.dropped = 0
        self.trees = capacities  # the tree capacities the split starts from (check() reads them)
        self.log: list[tuple[int, int, int]] | None = None  # decisions (u, t, α) of the switch being split

    # -- capacity bookkeeping ---------------------------------------------------------------------
    def _set(self, u: int, v: int, cap: int) -> None:
        """Set the capacity of real arc ``(u, v)`` (0 deletes it from the adjacency)."""
        if (u, v) not in self.arc_index:
            self.arc_index[(u, v)] = self.network.add_arc(u, v, cap)
        else:
            self.network.set_capacity(self.arc_index[(u, v)], cap)
        if cap > 0:
            self.capacity[(u, v)] = cap
            self.out_neighbours[u].add(v)
            self.in_neighbours[v].add(u)
        else:
            self.capacity.pop((u, v), None)
            self.routes.pop((u, v), None)
            self.out_neighbours[u].discard(v)
            self.in_neighbours[v].discard(u)

    def _gadget(self, tail: int, head: int) -> int:
        if (tail, head) not in self.gadgets:
            self.gadgets[(tail, head)] = self.network.add_arc(tail, head, 0)
        return self.gadgets[(tail, head)]

    # -- slack computations -----------------------------------------------------------------------
    def _min_entering(
        self, merged_sources: Sequence[int], sink: int, merged_sinks: Sequence[int], enough: int
    ) -> tuple[int, frozenset[int] | None]:
        """Smallest ``ρ(X)`` over GPU-holding ``X ∋ sink`` that contain ``merged_sinks`` and avoid ``s``
        and ``merged_sources`` -- or any value ``>= enough`` once the minimum is known to reach it --
        and, when below ``enough``, a set ``X`` attaining it.

        If the largest minimum-cut sink side holds no GPU, the constraint is enforced by merging
        one GPU ``v`` at a time into the sink. Only GPUs reachable from the sink side through
        switches (avoiding the sources) can matter: a set ``X`` whose part ``R`` reachable from the
        sink terminals inside ``X`` holds no GPU has ``ρ(X) = c(V-X -> R) + ρ(X - R) >= α_cap + N·k``
        (``X - R`` holds a GPU, so (*) applies to it, and the arc from ``u`` or into ``t`` crosses).
        """
        arcs = [self._gadget(self.source, a) for a in merged_sources]
        arcs += [self._gadget(b, sink) for b in merged_sinks]
        for arc in arcs:
            self.network.set_capacity(arc, self.infinite)
        try:
            # no flow above enough + 1 matters: a cut is read only below enough, a slack only up to it
            value = self.network.max_flow_up_to(self.source, sink, enough + 1)
            if value >= enough:
                return value, None
            cut = self._largest_sink_side()
            if any(v < self.num_gpus for v in cut):
                return value, cut  # the largest sink side holds a GPU: the constraint is free
            best, best_cut = self.infinite, None
            for gpu in self._switch_reachable_gpus([sink, *merged_sinks], merged_sources):
                arc = self._gadget(gpu, sink)
                self.network.set_capacity(arc, self.infinite)
                flow = self.network.max_flow_up_to(self.source, sink, enough + 1)
                if flow < best:
                    best, best_cut = flow, self._largest_sink_side()
                self.network.set_capacity(arc, 0)
                if best <= self.demand:
                    break
            return best, best_cut
        finally:
            for arc in arcs:
                self.network.set_capacity(arc, 0)

    def _largest_sink_side(self) -> frozenset[int]:
        """Vertices (super source excluded) on the sink side of the last max-flow's largest min cut."""
        reachable = set(self.network.source_side())
        return frozenset(v for v in range(self.source) if v not in reachable)

    def _switch_reachable_gpus(self, starts: Sequence[int], avoided: Sequence[int]) -> list[int]:
        """GPUs reached from ``starts`` along arcs whose inner vertices are switches, avoiding ``avoided``."""
        blocked = set(avoided)
        seen = set(starts) | blocked
        frontier = [v for v in starts if v >= self.num_gpus]
        gpus = set()
        while frontier:
            vertex = frontier.pop()
            for head in self.out_neighbours[vertex]:
                if head in seen:
                    continue
                seen.add(head)
                if head < self.num_gpus:
                    gpus.add(head)
                else:
                    frontier.append(head)
        return sorted(gpus)

    def admissible(
        self, u: int, w: int, t: int, limit: int | None = None
    ) -> tuple[int, list[frozenset[int]]]:
        """The largest ``α <= limit`` by which ``(u, w), (w, t)`` can be split off keeping (*), and
        the dangerous sets that are tight once ``α`` is split off (they block later pairs)."""
        cap = min(self.capacity.get((u, w), 0), self.capacity.get((w, t), 0))
        if limit is not None:
            cap = min(cap, limit)
        if cap == 0:
            return 0, []
        slack_b, set_b = self._min_entering([w], t, [u], self.demand + cap)
        alpha = min(cap, slack_b - self.demand)
        if alpha <= 0:
            return 0, [set_b] if set_b is not None else []
        slack_a, set_a = self._min_entering([u, t], w, [], self.demand + alpha)
        alpha = max(0, min(alpha, slack_a - self.demand))
        tight = [
            x
            for x, slack in ((set_b, slack_b), (set_a, slack_a))
            if x is not None and slack - self.demand == alpha
        ]
        return alpha, tight

    # -- the splitting itself ---------------------------------------------------------------------
    def split(self, u: int, w: int, t: int, alpha: int) -> None:
        """Move ``alpha`` units of ``(u, w)`` and ``(w, t)`` onto ``(u, t)``, pairing their routes."""
        self.split_operations += 1
        if self.log is not None:
            self.log.append((u, t, alpha))
        first = take_units(self.routes[(u, w)], alpha)
        second = take_units(self.routes[(w, t)], alpha)
        self._set(u, w, self.capacity[(u, w)] - alpha)
        self._set(w, t, self.capacity[(w, t)] - alpha)
        self._set(u, t, self.capacity.get((u, t), 0) + alpha)
        joined = self.routes.setdefault((u, t), deque())
        for head, tail, units in _pair(first, second):
            joined.append([join_paths(head, tail), units])

    def remove_switch(self, w: int, spread: int) -> Generator[None, None, None]:
        """Split off every in-arc of switch ``w`` as far as admissible, then delete ``w``; yields after
        each in-arc (a network switch of 1,024 GPUs has 1,024 of them, 8 s in all).

        For each in-arc ``(u, w)`` a first pass offers each of the first ``spread`` partners an equal
        share of ``c(u, w)`` (a share of at least ``k``, so a root's ``k`` trees need not split
        because of it), so one GPU's capacity fans out over several logical arcs: shallower trees.
        A second pass splits what is left greedily. Every split is admissible either way.
        """
        self.tight: list[frozenset[int]] = []  # tight dangerous sets of w
        for u in sorted(self.in_neighbours[w]):
            partners = self._partners(u, w)
            fan = min(spread, len(partners), self.capacity[(u, w)] // self.k)  # shares of at least k
            if fan > 1:
                self._split_towards(u, w, partners[:fan], -(-self.capacity[(u, w)] // fan))
            self._split_towards(u, w, partners, None)
            yield
        self._drop_switch(w)

    def _split_towards(self, u: int, w: int, partners: list[int], share: int | None) -> None:
        """Split ``(u, w)`` with each partner in turn, at most ``share`` units each (None: no limit).

        A tight dangerous set stays tight (splitting never raises ``ρ``), so a pair it separates
        the dangerous way (family B: ``u, t ∈ X``; family A: ``u, t ∉ X ∋ w``) is skipped without a
        max-flow.
        """
        for t in partners:
            if self.capacity.get((u, w), 0) == 0:
                return
            if any((u in x) == (t in x) == (w not in x) for x in self.tight):
                continue
            alpha, tight = self.admissible(u, w, t, share)
            self.tight += tight
            if alpha > 0:
                self.split(u, w, t, alpha)

    def _partners(self, u: int, w: int) -> list[int]:
        """Out-neighbours ``t != u`` of ``w``: GPUs in cyclic rank order after ``u`` (so different
        GPUs of a box or rail start with different partners), then switches (deterministic).

        At a switch outside every box (a network plane or spine) the GPUs are offered one box at a
        time: the first of every box, then the second, and so on. ``u``'s capacity is then spread
        over all boxes (``remove_switch`` shares it among the first partners), so every box gets
        logical arcs into every other and a tree enters each box from its root's box. In cyclic
        order the first partners all sat in the next box: the boxes of 4×8 A100 formed a ring
        (box 0 → 1: 22 units, 0 → 3: none) and trees crossed up to three boxes in a row, 5.5 GPU
        hops high on average instead of 4.2 (docs/solver.md §3).

        Partners the runtime reaches from ``u`` without ``w`` (:class:`PeerPaths`: GPUs of ``u``'s
        own box at a switch outside the boxes, and GPUs that the box joins to ``u`` by a wider path,
        such as a direct link or an NVSwitch beside a shared PCIe switch) are placed as
        :attr:`bypassed` says: a logical arc through ``w`` to such a partner is a path the runtime
        never takes (it connects the pair peer to peer on its widest path), so the program would
        load that path's links instead. Splitting order changes routes, not optimality
        (every split is admissible); leaving partners out can break (*), which the final check finds.
        """
        n = self.num_gpus
        boxes = self.boxes
        cyclic = sorted(
            (t for t in self.out_neighbours[w] if t != u), key=lambda t: (t >= n, (t - u) % n if t < n else t)
        )

        def bypassed(t: int) -> bool:
            return self.bypassed is not Bypassed.ANYWHERE and self.peers.partner_bypassed(u, w, t)

        if self.bypassed is Bypassed.NEVER:
            cyclic = [t for t in cyclic if not bypassed(t)]
        if boxes[w] is not None or boxes[u] is None:
            return sorted(cyclic, key=lambda t: (bypassed(t), t >= n))
        seen: dict[str | None, int] = {}
        round_of = {}  # the i-th partner of its box is offered in round i
        for t in cyclic:
            seen[boxes[t]] = round_of[t] = seen.get(boxes[t], -1) + 1
        position = {t: index for index, t in enumerate(cyclic)}
        return sorted(cyclic, key=lambda t: (bypassed(t), t >= n, round_of[t], position[t]))

    def next_switch(self, remaining: set[int]) -> int:
        """The next switch to remove: edge switches first (fewest switch neighbours: NVSwitch, NIC,
        rail before IB and spine), then the fewest split pairs.

        Removing an edge switch leaves GPU-to-GPU or GPU-to-core arcs, so the GPU-holding condition
        of the slack computations stays cheap; removing a core switch first would join switches to
        switches and make every later test loop over many GPUs.
        """

        def cost(w: int) -> tuple[int, int, int]:
            neighbours = self.in_neighbours[w] | self.out_neighbours[w]
            switches = sum(1 for v in neighbours if v >= self.num_gpus)
            return switches, len(self.in_neighbours[w]) * len(self.out_neighbours[w]), w

        return min(remaining, key=cost)

    # -- symmetric splitting ----------------------------------------------------------------------
    def is_automorphism(self, perm: Sequence[int]) -> bool:
        """Whether the vertex permutation preserves every current arc capacity."""
        capacity = self.capacity
        return all(capacity.get((perm[u], perm[v])) == c for (u, v), c in capacity.items())

    def _snapshot(self) -> tuple:
        routes = {arc: deque([list(entry) for entry in queue]) for arc, queue in self.routes.items()}
        return dict(self.capacity), routes, self.dropped, self.split_operations

    def _restore(self, snapshot: tuple) -> None:
        capacity, routes, self.dropped, self.split_operations = snapshot
        for arc in list(self.capacity):
            if arc not in capacity:
                self._set(*arc, 0)
        for arc, cap in capacity.items():
            self._set(*arc, cap)
        self.routes = routes

    def _drop_switch(self, w: int) -> None:
        for u in sorted(self.in_neighbours[w]):
            self.dropped += self.capacity[(u, w)]
            self._set(u, w, 0)
        for t in sorted(self.out_neighbours[w]):
            self._set(w, t, 0)

    def holds(self, generators: Sequence[Sequence[int]]) -> bool:
        """Whether (*) holds now: one max-flow per GPU orbit of the generators that are automorphisms
        of the current graph (every GPU when none is)."""
        valid = [perm for perm in generators if self.is_automorphism(perm)]
        sinks = [orbit[0] for orbit in gpu_orbits(self.num_gpus, valid)]
        return all(self.network.max_flow_up_to(self.source, v, self.demand) >= self.demand for v in sinks)

    def remove_orbit(
        self, images: dict[int, Sequence[int]], spread: int, generators: Sequence[Sequence[int]]
    ) -> Generator[None, None, bool]:
        """Remove a whole orbit of switches: split the representative exactly, apply the images of its
        decisions to the other members, then check (*). On failure restore the state, return False.

        ``images`` maps every orbit member to an automorphism sending the representative (the member
        mapped by the identity) to it. Splitting one switch of ``n`` identical ones and replaying it
        costs one switch's max-flows plus one per GPU orbit, instead of ``n`` switches' worth. Yields
        where :meth:`remove_switch` does.
        """
        representative = next(w for w, perm in images.items() if perm[w] == w and _is_identity(perm))
        snapshot = self._snapshot()
        self.log = []
        yield from self.remove_switch(representative, spread)
        decisions, self.log = self.log, None
        for member, perm in sorted(images.items()):
            if member == representative:
                continue
            for u, t, alpha in decisions:
                mapped = (perm[u], perm[t])
                if (
                    min(self.capacity.get((mapped[0], member), 0), self.capacity.get((member, mapped[1]), 0))
                    < alpha
                ):
                    self._restore(snapshot)
                    return False
                self.split(mapped[0], member, mapped[1], alpha)
            self._drop_switch(member)
        if not self.holds(generators):
            self._restore(snapshot)
            return False
        return True

    def check(self) -> None:
        """Final check of (*) on the switch-free graph: one max-flow per GPU (module docstring)."""
        for gpu in range(self.num_gpus):
            flow = self.network.max_flow_up_to(self.source, gpu, self.demand)
            if flow >= self.demand:
                continue
            # judged on the tree capacities: balanced bandwidths can floor unevenly at a fixed k
            trees = tuple((u, v, cap) for (u, v, _), cap in zip(self.graph.arcs, self.trees, strict=True))
            unbalanced = unbalanced_switches(replace(self.graph, arcs=trees))
            if unbalanced:
                names = ", ".join(self.graph.names[w] for w in unbalanced[:6])
                raise UnbalancedSwitches(
                    f"no tree schedule reaches the cut bound on this fabric: switches {names} have unequal "
                    "ingress and egress bandwidth, so meeting the bound would need them to replicate data",
                    hint="make switch links full duplex (equal bandwidth both ways)",
                )
            raise InvariantError(
                f"switch removal broke rooted connectivity: GPU {self.graph.names[gpu]} receives {flow} "
                f"< N·k = {self.demand} (capacity dropped at switches: {self.dropped})"
            )


def _is_identity(perm: Sequence[int]) -> bool:
    return all(image == v for v, image in enumerate(perm))


def _switch_orbit(
    switch: int, generators: Sequence[Sequence[int]], remaining: set[int], num_nodes: int
) -> dict[int, tuple[int, ...]]:
    """Members of ``switch``'s orbit under ``generators`` (all still present) with a group element
    mapping ``switch`` to each; just ``{switch: identity}`` when the orbit leaves ``remaining``."""
    elements = orbit_transversal(num_nodes, generators, switch)
    if any(member not in remaining for member in elements):
        return {switch: tuple(range(num_nodes))}
    return elements


def take_units(routes: deque[list], units: int) -> list[tuple[Path, int]]:
    """Remove ``units`` units from the front of a route queue of ``[path, units]`` entries.

    Returns them as ``(path, units)`` pairs in queue order (first come, first served).
    """
    taken = []
    while units > 0:
        entry = routes[0]
        amount = min(units, entry[1])
        taken.append((entry[0], amount))
        entry[1] -= amount
        units -= amount
        if entry[1] == 0:
            routes.popleft()
    return taken


def join_paths(head: Path, tail: Path) -> Path:
    """The route ``head`` then ``tail`` (``head[-1] == tail[0]``, the removed switch), with every cycle
    cut out, so that no route visits a vertex twice.

    Two routes into and out of a switch can share a vertex: at a NIC hanging off a PCIe switch, the
    route ``gpu0 → pcie → nic`` meets ``nic → pcie → gpu1`` and the concatenation would cross the
    PCIe switch twice. Cutting the loop back to the first visit (``gpu0 → pcie → gpu1``) keeps the
    same ends and uses a subset of the arcs, so no arc carries more than before and every capacity
    bound still holds. Inner vertices of a route are switches, so the ends are never cut out.
    """
    path: list[int] = []
    position: dict[int, int] = {}
    for vertex in (*head, *tail[1:]):
        if vertex in position:
            for dropped in path[position[vertex] + 1 :]:
                del position[dropped]
            del path[position[vertex] + 1 :]
            continue
        position[vertex] = len(path)
        path.append(vertex)
    return tuple(path)


def _pair(first: list[tuple[Path, int]], second: list[tuple[Path, int]]) -> list[tuple[Path, Path, int]]:
    """Pair two equal-total lists of ``(path, units)`` unit by unit (two-pointer merge)."""
    paired = []
    i = j = 0
    left, right = first[0][1], second[0][1]
    while i < len(first):
        amount = min(left, right)
        paired.append((first[i][0], second[j][0], amount))
        left -= amount
        right -= amount
        if left == 0:
            i += 1
            left = first[i][1] if i < len(first) else 0
        if right == 0:
            j += 1
            right = second[j][1] if j < len(second) else 0
    return paired


def remove_switches_steps(
    graph: CapacityGraph,
    capacities: Sequence[int],
    k: int,
    spread: int = SPREAD,
    symmetries: Sequence[Sequence[int]] = (),
    boxes: Sequence[str | None] = (),
) -> Generator[None, None, SwitchFreeGraph]:
    """Remove every non-GPU vertex of ``graph`` by edge splitting (module docstring), yielding after
    each switch (or orbit of switches) removed, so that a caller can stop between them
    (:mod:`collc.stepping`): at 1,024 GPUs the whole removal takes about 20 s, one switch 0.2 s.

    ``capacities`` are the integer tree capacities per arc of ``graph.arcs`` (``floor(U·b_e)``, see
    :func:`collc.solver.bound.integer_capacities`) and ``k`` the trees per root; ``spread`` is the
    number of partners each in-arc's capacity is first shared among (1: plain greedy).

    ``symmetries`` are vertex permutations (candidate automorphisms, e.g. box shifts). Before each
    switch, those that are automorphisms of the current graph define its orbit; an orbit of identical
    switches is removed by splitting one and replaying its decisions (:meth:`_Splitter.remove_orbit`),
    checked by max-flows and undone if the check fails, so the result is exact either way.
    ``boxes`` gives each vertex's box (None outside boxes); a switch outside every box offers its
    partners one box at a time (:meth:`_Splitter._partners`). When the result routes a pair of GPUs
    over a path the runtime would not take (:meth:`PeerPaths.bypassed`), the split is redone with such
    partners left out, and if that leaves a GPU short of (*), once more with them offered last;
    fabrics without such routes keep the first split and its forests.
    """
    boxes = tuple(boxes) or (None,) * graph.num_nodes
    split = yield from _remove_switches(graph, capacities, k, spread, symmetries, boxes, Bypassed.ANYWHERE)
    peers = PeerPaths(graph, boxes)
    if split is not None and not any(
        peers.bypassed(path) for routes in split.routes.values() for path, _ in routes
    ):
        return split
    redone = yield from _remove_switches(graph, capacities, k, spread, symmetries, boxes, Bypassed.NEVER)
    if redone is None:
        redone = yield from _remove_switches(graph, capacities, k, spread, symmetries, boxes, Bypassed.LAST)
    assert redone is not None  # only Bypassed.NEVER returns None; the others raise
    return redone


class PeerPaths:
    """Which physical routes between two GPUs the runtime takes (docs/solver.md §3).

    GPUs of different boxes talk through the network. Two GPUs of one box talk peer to peer over
    the box's own fabric, on its widest path that passes no other GPU: NCCL ranks a pair's paths
    by type, NVLink before PCIe before the CPU, and takes one path per pair, so a slower path
    between them (a shared PCIe switch or NIC beside an NVSwitch or a direct link) carries nothing.
    GPUs outside every box count as one box (a fabric written flat whose boxes were not inferred).
    """

    def __init__(self, graph: CapacityGraph, boxes: Sequence[str | None]):
        self.num_gpus = graph.num_gpus
        self.boxes = boxes
        self.capacity = {(u, v): cap for u, v, cap in graph.arcs}
        self.out: list[list[int]] = [[] for _ in range(graph.num_nodes)]
        for u, v, _ in graph.arcs:
            if boxes[u] == boxes[v]:
                self.out[u].append(v)
        self._widest: dict[int, dict[int, int]] = {}

    def bypassed(self, path: Path) -> bool:
        """Whether the runtime joins the ends of ``path`` (two GPUs) another way: the path leaves
        their box, or the box has a wider path between them. An arc made by an earlier split has no
        bandwidth of its own (only leaving the box counts for it)."""
        head, tail, inner = path[0], path[-1], path[1:-1]
        if not inner or self.boxes[head] != self.boxes[tail]:
            return False
        if any(self.boxes[v] != self.boxes[head] for v in inner):
            return True
        bottleneck = min(self.capacity.get(arc, inf) for arc in itertools.pairwise(path))
        return bottleneck < self.widest(head).get(tail, 0)

    def partner_bypassed(self, u: int, w: int, t: int) -> bool:
        """:meth:`bypassed` for a split ``(u, w), (w, t)`` between two GPUs (False for a switch)."""
        return u < self.num_gpus and t < self.num_gpus and self.bypassed((u, w, t))

    def widest(self, head: int) -> dict[int, int]:
        """Per GPU of ``head``'s box, the bottleneck capacity of the widest path to it inside the box
        that passes no other GPU (Dijkstra on bottlenecks)."""
        if head not in self._widest:
            best = {head: inf}
            heap = [(-inf, head)]
            while heap:
                width, vertex = heapq.heappop(heap)
                width = -width
                if width < best.get(vertex, 0) or (vertex != head and vertex < self.num_gpus):
                    continue
                for nxt in self.out[vertex]:
                    through = min(width, self.capacity[(vertex, nxt)])
                    if through > best.get(nxt, 0):
                        best[nxt] = through
                        heapq.heappush(heap, (-through, nxt))
            self._widest[head] = {v: int(b) for v, b in best.items() if v < self.num_gpus and v != head}
        return self._widest[head]


def _remove_switches(
    graph: CapacityGraph,
    capacities: Sequence[int],
    k: int,
    spread: int,
    symmetries: Sequence[Sequence[int]],
    boxes: Sequence[str | None],
    bypassed: Bypassed,
) -> Generator[None, None, SwitchFreeGraph | None]:
    """:func:`remove_switches_steps` with one partner policy (:meth:`_Splitter._partners`); None
    where :attr:`Bypassed.NEVER` left a GPU short of (*) (the other policies raise instead)."""

    splitter = _Splitter(graph, capacities, k, boxes, bypassed)
    remaining = set(range(graph.num_gpus, graph.num_nodes))
    order = []
    while remaining:
        switch = splitter.next_switch(remaining)
        valid = [perm for perm in symmetries if splitter.is_automorphism(perm)]
        images = _switch_orbit(switch, valid, remaining, graph.num_nodes) if valid else {}
        if len(images) > 1 and (yield from splitter.remove_orbit(images, spread, valid)):
            members = sorted(images)
        else:
            members = [switch]
            yield from splitter.remove_switch(switch, spread)
        remaining.difference_update(members)
        order += members
        yield
    if bypassed is not Bypassed.NEVER:
        splitter.check()
    elif not splitter.holds(symmetries):
        return None
    routes = {arc: [(path, units) for path, units in queue] for arc, queue in sorted(splitter.routes.items())}
    return SwitchFreeGraph(
        num_gpus=graph.num_gpus,
        k=k,
        capacities=dict(sorted(splitter.capacity.items())),
        routes=routes,
        max_flow_calls=splitter.network.calls,
        split_operations=splitter.split_operations,
        dropped_capacity=splitter.dropped,
        switch_order=order,
    )
