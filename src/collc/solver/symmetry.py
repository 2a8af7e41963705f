"""Verified automorphisms of a capacity graph, taken from the topology's structure.

Identical boxes (and rails) are the norm in real fabrics. An *automorphism* is a permutation ``p`` of
the capacity graph's vertices (``p[v]`` is the image of ``v``) that maps GPUs to GPUs and every arc
``(u, v)`` of capacity ``c`` to an arc ``(p[u], p[v])`` of the same capacity. Every cut-based quantity
is invariant under it, so two GPUs in the same orbit have identical max-flow tests, and a tree built
for one root maps to a valid tree for its image.

Finding automorphisms of a general graph is expensive, so candidates come from the structure the
topology was instantiated from (``Node.box`` and ``Node.role``) and each candidate is *verified* arc
by arc before use (:func:`is_automorphism`); a candidate that fails is dropped, so the worst case is
"no symmetry", never a wrong answer.

* Box swaps: for boxes ``a`` and ``b`` with the same set of roles, exchange ``(a, r)`` and ``(b, r)``
  for every role ``r`` and fix every node outside a box. Transpositions generate every permutation
  of interchangeable boxes.
* Role (rail) swaps: exchange two GPU roles ``r`` and ``s`` in every box at once; every other node
  follows by matching neighbourhoods (e.g. rail switch ``r`` <-> rail switch ``s``, NIC ``r`` <-> NIC
  ``s``), see :func:`role_automorphisms`.
* Cyclic shifts (:func:`cyclic_automorphisms`): every box to the next box, and every GPU role to the
  next role in every box. Unlike transpositions these commute, which keeps the cyclic decisions of
  switch removal and tree packing symmetric (docs/solver.md).
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from collc.capacity import CapacityGraph
from collc.topology.model import Topology

Permutation = tuple[int, ...]

#: The searches for swaps stop when they have spent this much (they keep what they verified):
#: symmetry only saves the solver work, and both searches can try a number of candidates quadratic in
#: the boxes or roles. A role swap is extended vertex by vertex (at most every vertex of the graph),
#: a box swap is checked arc by arc (every arc, vectorised). 2,048 GPUs on 64 switches whose
#: like-looking roles do not swap (unequal bandwidths) spent minutes in failed role swaps before the
#: bound was computed; 4,096 GPUs on one switch 59 s in 4,095 role swaps that all succeed, against
#: 7 s for the whole bound without them. The shipped presets spend under 1 % of either.
MAX_ROLE_SWAP_VISITS = 2**21
MAX_BOX_SWAP_ARCS = 2**28


def _arc_arrays(graph: CapacityGraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tails, heads, capacities) of ``graph.arcs`` as int64 arrays, cached on the (immutable) graph."""
    cached = graph.__dict__.get("_arc_arrays")
    if cached is None:
        table = np.array(graph.arcs, dtype=np.int64).reshape(-1, 3)
        cached = (table[:, 0], table[:, 1], table[:, 2])
        object.__setattr__(graph, "_arc_arrays", cached)
    return cached


def is_automorphism(graph: CapacityGraph, perm: Sequence[int]) -> bool:
    """Whether ``perm`` is a bijection of the vertices that keeps GPUs GPUs and preserves every arc.

    Vectorised: the images of all arcs, sorted, must equal the arc list (which is sorted and free of
    parallel arcs), capacities included.
    """
    n = graph.num_nodes
    image = np.asarray(perm, dtype=np.int64)
    if image.shape != (n,) or not np.array_equal(np.sort(image), np.arange(n)):
        return False
    if not np.array_equal(image < graph.num_gpus, np.arange(n) < graph.num_gpus):
        return False
    tails, heads, capacities = _arc_arrays(graph)
    keys = tails * n + heads
    mapped = image[tails] * n + image[heads]
    order = np.argsort(mapped, kind="stable")
    return bool(np.array_equal(mapped[order], keys) and np.array_equal(capacities[order], capacities))


def _box_index(topology: Topology, graph: CapacityGraph) -> dict[int, dict[str, int]]:
    """box -> role -> vertex, for the nodes that belong to a box and have a role."""
    boxes: dict[int, dict[str, int]] = defaultdict(dict)
    for vertex, name in enumerate(graph.names):
        node = topology.node(name)
        if node.box is not None and node.role is not None:
            boxes[node.box][node.role] = vertex
    return boxes


def box_automorphisms(topology: Topology, graph: CapacityGraph) -> list[Permutation]:
    """Verified box swaps: boxes ``a`` and ``b`` exchanged role by role, every other node fixed.

    Each box (in order) is tried against the first box of every class found so far and joins the
    first class it swaps with, else starts a new one: identical boxes cost one check each, and boxes
    that only swap within groups (e.g. behind different leaf switches) still form their groups.
    """
    boxes = _box_index(topology, graph)
    representatives: list[int] = []  # the first box of each class of interchangeable boxes
    generators: list[Permutation] = []
    budget = MAX_BOX_SWAP_ARCS
    for box in sorted(boxes):
        for first in representatives:
            if boxes[first].keys() != boxes[box].keys() or budget < len(graph.arcs):
                continue
            budget -= len(graph.arcs)
            perm = list(range(graph.num_nodes))
            for role, vertex in boxes[first].items():
                perm[vertex], perm[boxes[box][role]] = boxes[box][role], vertex
            if is_automorphism(graph, perm):
                generators.append(tuple(perm))
                break
        else:
            representatives.append(box)
    return generators


def _neighbourhoods(graph: CapacityGraph) -> list[dict[int, tuple[int, int]]]:
    """For each vertex: neighbour -> (capacity out to it, capacity in from it)."""
    result: list[dict[int, tuple[int, int]]] = [{} for _ in range(graph.num_nodes)]
    for u, v, c in graph.arcs:
        out_uv, in_uv = result[u].get(v, (0, 0))
        result[u][v] = (out_uv + c, in_uv)
        out_vu, in_vu = result[v].get(u, (0, 0))
        result[v][u] = (out_vu, in_vu + c)
    return result


def _extend_by_neighbourhood(
    graph: CapacityGraph, partial: dict[int, int], neighbourhoods: list[dict[int, tuple[int, int]]]
) -> list[int] | None:
    """Extend a partial vertex map to a full permutation by matching neighbourhoods.

    Breadth-first from the mapped vertices, so a vertex is matched on its nearest constraints first
    (matching far out first could fix a vertex before the swap reaches it). An unmapped vertex ``x`` whose
    neighbourhood among the mapped vertices has image ``wanted`` goes to itself if that fits (a swap
    moves as little as possible), else to the unique unused vertex ``y`` with exactly that
    neighbourhood among the used images (same capacities each way). Vertices never reached map to
    themselves. Returns ``None`` as soon as some vertex has no possible image, or the map is not a
    bijection (the caller verifies any result anyway).
    """
    mapping = dict(partial)
    used = set(mapping.values())

    def fits(x: int, y: int, wanted: dict[int, tuple[int, int]]) -> bool:
        return (
            y not in used
            and (y < graph.num_gpus) == (x < graph.num_gpus)
            and {n: caps for n, caps in neighbourhoods[y].items() if n in used} == wanted
        )

    pending = deque(sorted({n for v in mapping for n in neighbourhoods[v] if n not in mapping}))
    while pending:
        x = pending.popleft()
        if x in mapping:
            continue
        wanted = {mapping[n]: caps for n, caps in neighbourhoods[x].items() if n in mapping}
        if fits(x, x, wanted):
            image = x
        else:
            anchor = min(wanted, key=lambda n: len(neighbourhoods[n]))
            matches = [y for y in neighbourhoods[anchor] if fits(x, y, wanted)]
            if not matches:
                return None  # x has no possible image: the candidate cannot be extended
            if len(matches) > 1:
                continue  # ambiguous for now: revisited when another neighbour is mapped
            image = matches[0]
        mapping[x] = image
        used.add(image)
        pending.extend(n for n in neighbourhoods[x] if n not in mapping)
    for x in range(graph.num_nodes):
        if x not in mapping:
            if x in used:
                return None
            mapping[x] = x
    return [mapping[x] for x in range(graph.num_nodes)]


def role_automorphisms(topology: Topology, graph: CapacityGraph) -> list[Permutation]:
    """Verified automorphisms that swap one GPU role with another in every box at once.

    Candidates: every pair of GPU roles (sorted order) with the same incident capacities and not yet
    in one orbit, exchanged in every box; the images of the remaining vertices (NICs, rail
    switches, ...) are found by neighbourhood matching. Only verified candidates are returned.
    """
    boxes = _box_index(topology, graph)
    if not boxes:
        return []
    first_box = boxes[min(boxes)]
    gpu_roles = sorted(role for role, v in first_box.items() if v < graph.num_gpus)
    neighbourhoods = _neighbourhoods(graph)
    signature = {role: sorted(neighbourhoods[first_box[role]].values()) for role in gpu_roles}
    orbits = _UnionFind(graph.num_gpus)
    generators: list[Permutation] = []
    budget = MAX_ROLE_SWAP_VISITS
    for first, other in combinations(gpu_roles, 2):
        if budget < graph.num_nodes:
            break
        if signature[first] != signature[other]:
            continue  # different incident capacities: no automorphism maps one onto the other
        if orbits.find(first_box[first]) == orbits.find(first_box[other]):
            continue  # already in one orbit: nothing to gain
        partial: dict[int, int] = {}
        for roles in boxes.values():
            if first in roles and other in roles:
                partial[roles[first]], partial[roles[other]] = roles[other], roles[first]
        budget -= graph.num_nodes
        perm = _extend_by_neighbourhood(graph, partial, neighbourhoods)
        if perm is not None and is_automorphism(graph, perm):
            generators.append(tuple(perm))
            orbits.add_generator(perm)
    return generators


class _UnionFind:
    """Orbits of the GPU vertices, merged generator by generator."""

    def __init__(self, size: int):
        self.parent = list(range(size))

    def find(self, v: int) -> int:
        parent = self.parent
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    def add_generator(self, perm: Sequence[int]) -> None:
        size = len(self.parent)
        images = np.asarray(perm[:size])
        for v in np.flatnonzero(images != np.arange(size)).tolist():
            a, b = self.find(v), self.find(perm[v])
            if a != b:
                self.parent[max(a, b)] = min(a, b)


def _natural(name: str) -> tuple:
    """Sort key that orders ``gpu2`` before ``gpu10``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def cyclic_automorphisms(topology: Topology, graph: CapacityGraph) -> list[Permutation]:
    """Verified cyclic shifts: every box to the next box, and every GPU role to the next GPU role
    (in natural order) inside every box; nodes outside boxes follow by neighbourhood matching."""
    boxes = _box_index(topology, graph)
    order = sorted(boxes)
    if not order:
        return []
    gpu_roles = sorted(
        {role for roles in boxes.values() for role, v in roles.items() if v < graph.num_gpus}, key=_natural
    )
    next_box = dict(zip(order, order[1:] + order[:1], strict=True))
    next_role = dict(zip(gpu_roles, gpu_roles[1:] + gpu_roles[:1], strict=True))
    shift = {v: boxes[next_box[box]].get(role) for box in order for role, v in boxes[box].items()}
    rotate = {v: boxes[box].get(next_role.get(role, role)) for box in order for role, v in boxes[box].items()}
    neighbourhoods = _neighbourhoods(graph)
    found = []
    for partial in (shift, rotate):
        if any(image is None for image in partial.values()):
            continue
        perm = _extend_by_neighbourhood(graph, partial, neighbourhoods)  # type: ignore[arg-type]
        if perm is not None and perm != list(range(graph.num_nodes)) and is_automorphism(graph, perm):
            found.append(tuple(perm))
    return found


def automorphisms(topology: Topology, graph: CapacityGraph) -> list[Permutation]:
    """All verified generators found from the topology's structure (box swaps, then role swaps)."""
    return box_automorphisms(topology, graph) + role_automorphisms(topology, graph)


def gpu_orbits(num_gpus: int, generators: Sequence[Permutation]) -> list[tuple[int, ...]]:
    """The orbits of the GPU vertices under the group the generators span.

    Each orbit is sorted and the list is sorted, so ``orbit[0]`` is a deterministic representative.
    """
    union = _UnionFind(num_gpus)
    for perm in generators:
        union.add_generator(perm)
    orbits: dict[int, list[int]] = defaultdict(list)
    for v in range(num_gpus):
        orbits[union.find(v)].append(v)
    return sorted(tuple(orbit) for orbit in orbits.values())


def orbit_transversal(
    num_nodes: int, generators: Sequence[Permutation], representative: int
) -> dict[int, Permutation]:
    """For every vertex ``w`` in the orbit of ``representative``: a group element mapping it to ``w``.

    Built breadth-first over the generators (each element is a product of generators), so a tree
    built for the representative root maps to a tree for root ``w`` by renaming every vertex ``v`` to
    ``element[v]``.
    """
    identity = tuple(range(num_nodes))
    elements: dict[int, Permutation] = {representative: identity}
    queue = [representative]
    for vertex in queue:
        element = elements[vertex]
        for gen in generators:
            image = gen[vertex]
            if image not in elements:
                elements[image] = tuple(gen[element[v]] for v in range(num_nodes))
                queue.append(image)
    return elements
