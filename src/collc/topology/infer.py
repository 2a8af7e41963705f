"""Boxes and roles inferred from the graph, for topologies whose file does not name them.

Several stages use the structure a fabric was built from: the solver takes candidate symmetries from
``Node.box`` and ``Node.role`` (and verifies every candidate arc by arc), switch removal offers a
network switch's partners one box at a time and keeps pairs of one box off the network, the lowering
keeps the network planes (switches outside every box) apart, and the baselines build NCCL's rings and
trees box by box. A hand-written or imported file in the flat form usually carries no ``box`` or
``role``; without them the same fabric compiled to a schedule half as fast. So when a file names no
box and no role at all, :func:`infer_structure` derives them from the graph. A file that names any is
left exactly as written: annotations are never overridden or completed.

**Boxes.** A box is what stays connected when the network tier is cut. The first of these cuts that
splits the GPUs into at least two groups decides:

1. links of a network class (``ib``, ``infiniband``, ``roce``, ``ethernet``, any case), when the file
   gives classes;
2. every link of a NIC (a NIC is a host's door to the network), when the fabric has NICs;
3. the slowest bandwidth tier of links to switches: all links with one end not a GPU and a bandwidth
   at most ``b``, for each bandwidth ``b`` in increasing order. A tier is accepted only if every
   group keeps an internal link and all groups look alike (same node kinds, same internal and
   external bandwidths), so a single switched box is not cut into lone GPUs and a PCIe tier inside
   a box is not taken for the network.

If no cut splits the GPUs (one box, a switchless mesh), every node is in box 0. Otherwise the groups
holding GPUs are the boxes; a node left out joins a box when it can only belong there: a NIC whose
box-side neighbours all lie in one box, or a group of other nodes whose neighbours all lie in one
box. Everything else (IB, rail, leaf and spine switches) is outside every box. Boxes are numbered by
their lowest GPU rank.

**Roles.** In the first box (the one holding rank 0) the GPUs are ``gpu0, gpu1, ...`` in rank order.
Every other box is matched onto the first: its GPUs, taken in rank order, get the first role whose
GPU looks the same from everywhere the matching can see (:func:`_matched_gpus`): the links to its
other members (kind and bandwidth each way), the GPUs it links to directly and the switches it shares
with them, and the nodes outside every box it reaches first (its rail or leaf switch), where every box
reaches the same ones. So a box whose ranks follow another order than the first box's (a launcher
that shuffles ranks, or a file written in the order a scheduler allocated GPUs) still pairs the GPUs
on one rail; where ranks are given box by box in one local order the match is rank order itself. A
box that matches in no way (or not within a bounded search) keeps rank order. The other members are
named ``<kind><j>`` in breadth-first layers from the GPUs, ordered by their links to already-named
members (label, bandwidth each way), then by file order. Where the guess is wrong the cost is speed
only: every symmetry taken from roles is verified before use, and the other uses of boxes only order
choices that are exact either way.

Deterministic: only file order, ranks and bandwidths decide.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from collc.topology.model import Link, Topology

NETWORK_CLASSES = frozenset({"ib", "infiniband", "roce", "ethernet"})  # matched case-insensitively


class _Graph(NamedTuple):
    """Undirected view of the topology: per node, its links (other end, link index)."""

    kinds: dict[str, str]
    order: dict[str, int]  # file order of the nodes
    incident: dict[str, list[tuple[str, int]]]
    links: tuple[Link, ...]


def _graph(topology: Topology) -> _Graph:
    incident: dict[str, list[tuple[str, int]]] = {node.name: [] for node in topology.nodes}
    for index, link in enumerate(topology.links):
        incident[link.src].append((link.dst, index))
        incident[link.dst].append((link.src, index))
    return _Graph(
        {node.name: node.kind for node in topology.nodes},
        {node.name: position for position, node in enumerate(topology.nodes)},
        incident,
        topology.links,
    )


def _components(graph: _Graph, cut: frozenset[int]) -> list[list[str]]:
    """Connected components (in file order of their first node) when the links in ``cut`` are removed."""
    seen: set[str] = set()
    components = []
    for start in sorted(graph.kinds, key=graph.order.__getitem__):
        if start in seen:
            continue
        seen.add(start)
        component, frontier = [start], [start]
        while frontier:
            for other, index in graph.incident[frontier.pop()]:
                if index not in cut and other not in seen:
                    seen.add(other)
                    component.append(other)
                    frontier.append(other)
        components.append(sorted(component, key=graph.order.__getitem__))
    return components


def _boxes_after_cut(graph: _Graph, cut: frozenset[int]) -> list[set[str]] | None:
    """The boxes left by cutting ``cut`` (module docstring), or None when the GPUs stay in one group."""
    components = _components(graph, cut)
    boxes = [set(c) for c in components if any(graph.kinds[v] == "gpu" for v in c)]
    if len(boxes) < 2:
        return None
    leftover = [c for c in components if all(graph.kinds[v] != "gpu" for v in c)]
    box_of = {v: index for index, box in enumerate(boxes) for v in box}
    while leftover:
        joins = {v: box for group in leftover for v, box in _joining(graph, group, box_of).items()}
        if not joins:
            break
        for v, box in joins.items():
            box_of[v] = box
            boxes[box].add(v)
        leftover = [rest for group in leftover if (rest := [v for v in group if v not in joins])]
    return boxes


def _joining(graph: _Graph, group: list[str], box_of: dict[str, int]) -> dict[str, int]:
    """The nodes of a box-less ``group`` that join a box now, with that box.

    The whole group joins when every neighbour outside it lies in one box (a switch hanging off one
    box only); otherwise each NIC joins when its neighbours in boxes lie in one box (the other side
    of a NIC is the network).
    """
    members = set(group)
    outside = {box_of.get(other) for v in group for other, _ in graph.incident[v] if other not in members}
    if len(outside) == 1 and None not in outside:
        return dict.fromkeys(group, outside.pop())  # type: ignore[arg-type]
    joins = {}
    for v in group:
        if graph.kinds[v] == "nic":
            sides = {box_of[other] for other, _ in graph.incident[v] if other in box_of}
            if len(sides) == 1:
                joins[v] = sides.pop()
    return joins


def _signature(graph: _Graph, box: set[str]) -> tuple:
    """What two copies of one box share: node kinds, internal and external link bandwidths."""
    internal, external = [], []
    seen: set[int] = set()
    for v in box:
        for other, index in graph.incident[v]:
            if index in seen:
                continue
            seen.add(index)
            link = graph.links[index]
            (internal if other in box else external).append((link.bandwidth, link.directed))
    return (
        tuple(sorted(Counter(graph.kinds[v] for v in box).items())),
        tuple(sorted(internal)),
        tuple(sorted(external)),
    )


def _tier_boxes(graph: _Graph) -> list[set[str]] | None:
    """Boxes from the slowest bandwidth tier of links to switches and NICs (module docstring, cut 3)."""
    to_switches = [
        i for i, link in enumerate(graph.links) if not graph.kinds[link.src] == graph.kinds[link.dst] == "gpu"
    ]
    for tier in sorted({graph.links[i].bandwidth for i in to_switches}):
        cut = frozenset(i for i in to_switches if graph.links[i].bandwidth <= tier)
        boxes = _boxes_after_cut(graph, cut)
        if boxes is None:
            continue
        signatures = {_signature(graph, box) for box in boxes}
        if len(signatures) == 1 and next(iter(signatures))[1]:
            return boxes
    return None


def _find_boxes(graph: _Graph) -> list[set[str]] | None:
    """The boxes (module docstring), or None for a single box."""
    kinds = graph.kinds
    network = [i for i, x in enumerate(graph.links) if (x.link_class or "").lower() in NETWORK_CLASSES]
    nics = [i for i, x in enumerate(graph.links) if "nic" in (kinds[x.src], kinds[x.dst])]
    for cut in (network, nics):
        boxes = _boxes_after_cut(graph, frozenset(cut)) if cut else None
        if boxes is not None:
            return boxes
    return _tier_boxes(graph)


def _roles(graph: _Graph, box: Iterable[str], gpus_in_rank_order: Sequence[str]) -> dict[str, str]:
    """Role names inside one box (module docstring)."""
    members = set(box)
    role = {gpu: f"gpu{index}" for index, gpu in enumerate(gpus_in_rank_order)}
    counters: Counter[str] = Counter()

    def name(v: str) -> None:
        role[v] = f"{graph.kinds[v]}{counters[graph.kinds[v]]}"
        counters[graph.kinds[v]] += 1

    while layer := {v for named in role for v, _ in graph.incident[named] if v in members and v not in role}:
        keys = {v: _layer_key(graph, role, v) for v in layer}
        for v in sorted(layer, key=keys.__getitem__):
            name(v)
    for v in sorted(members - set(role), key=graph.order.__getitem__):  # unreachable from the GPUs
        name(v)
    return role


MATCH_BUDGET = 20_000  # assignments tried per box before falling back to rank order
MATCH_MAX_GPUS = 512  # larger boxes keep rank order (the search recurses once per GPU)


class _BoxView(NamedTuple):
    """What the role matching compares of one box: per GPU (rank order) a key of its own, and per
    ordered GPU pair a key of the two (:func:`_box_view`)."""

    gpus: tuple[str, ...]
    own: dict[str, tuple]
    pair: dict[tuple[str, str], tuple]


def _exits(graph: _Graph, gpu: str, box_of: dict[str, int]) -> frozenset[str]:
    """The nodes outside every box that ``gpu`` reaches in the fewest hops through non-GPU members
    of its own box (a rail or leaf switch behind its NIC); empty where it reaches none."""
    box, seen, frontier = box_of[gpu], {gpu}, [gpu]
    while frontier:
        found, step = set(), []
        for v in frontier:
            for other, _ in graph.incident[v]:
                if other in seen or graph.kinds[other] == "gpu":
                    continue
                seen.add(other)
                if other not in box_of:
                    found.add(other)
                elif box_of[other] == box:
                    step.append(other)
        if found:
            return frozenset(found)
        frontier = step
    return frozenset()


def _box_view(
    graph: _Graph, gpus: Sequence[str], box_of: dict[str, int], exits: dict[str, object]
) -> _BoxView:
    """The keys of :class:`_BoxView`: a GPU's links by (kind of the other end, direction, bandwidth)
    plus ``exits[gpu]``; a pair's direct links by (direction, bandwidth) plus how many non-GPU members
    of the box both link to (a shared PCIe switch)."""
    links: dict[str, dict[str, list[tuple[int, object]]]] = {}
    hubs: dict[str, set[str]] = {}
    own = {}
    for gpu in gpus:
        links[gpu], hubs[gpu] = {}, set()
        for other, index in graph.incident[gpu]:
            link = graph.links[index]
            links[gpu].setdefault(other, []).append((_direction(link, gpu), link.bandwidth))
            if graph.kinds[other] != "gpu" and box_of.get(other) == box_of[gpu]:
                hubs[gpu].add(other)
        ends = sorted((graph.kinds[other], *end) for other, found in links[gpu].items() for end in found)
        own[gpu] = (tuple(ends), exits[gpu])
    pair = {
        (u, v): (tuple(sorted(links[u].get(v, ()))), len(hubs[u] & hubs[v]))
        for u in gpus
        for v in gpus
        if u != v
    }
    return _BoxView(tuple(gpus), own, pair)


def _matched_gpus(first: _BoxView, box: _BoxView) -> list[str] | None:
    """``box``'s GPUs in the order of the roles they match (position i takes role ``gpu<i>``), or
    None when no match is found within :data:`MATCH_BUDGET` tries.

    Depth-first over ``box``'s GPUs in rank order, each trying the first box's GPUs in role order:
    the first match found, so rank order wherever rank order matches.
    """
    if len(first.gpus) != len(box.gpus):
        return None
    role_of: dict[str, str] = {}  # GPU of ``box`` -> GPU of the first box
    taken: set[str] = set()
    budget = MATCH_BUDGET

    def fits(gpu: str, target: str) -> bool:
        return first.own[target] == box.own[gpu] and all(
            first.pair[target, role_of[done]] == box.pair[gpu, done]
            and first.pair[role_of[done], target] == box.pair[done, gpu]
            for done in role_of
        )

    def extend(position: int) -> bool:
        nonlocal budget
        if position == len(box.gpus):
            return True
        gpu = box.gpus[position]
        for target in first.gpus:
            if target in taken:
                continue
            budget -= 1
            if budget < 0:
                return False
            if fits(gpu, target):
                role_of[gpu] = target
                taken.add(target)
                if extend(position + 1):
                    return True
                del role_of[gpu]
                taken.discard(target)
        return False

    if not extend(0):
        return None
    slot = {target: index for index, target in enumerate(first.gpus)}
    return sorted(box.gpus, key=lambda gpu: slot[role_of[gpu]])


def _layer_key(graph: _Graph, role: dict[str, str], v: str) -> tuple:
    """Order of ``v`` among its layer: kind, then its links to named members (their role, direction,
    bandwidth), then file order."""
    ties = sorted(
        (role[other], _direction(graph.links[index], v), graph.links[index].bandwidth)
        for other, index in graph.incident[v]
        if other in role
    )
    return graph.kinds[v], ties, graph.order[v]


def _direction(link: Link, node: str) -> int:
    """0 for a full-duplex link, 1 for a one-way link into ``node``, 2 for one out of it."""
    if not link.directed:
        return 0
    return 1 if link.dst == node else 2


def _role_orders(
    graph: _Graph, boxes: list[set[str]], box_of: dict[str, int], rank: dict[str, int]
) -> list[list[str]]:
    """Per box, its GPUs in role order: the first box in rank order, every other matched onto it
    (:func:`_matched_gpus`), or in rank order where no match is found."""
    in_rank_order = [sorted((v for v in box if v in rank), key=rank.__getitem__) for box in boxes]
    if len(boxes) < 2 or len(in_rank_order[0]) > MATCH_MAX_GPUS:
        return in_rank_order
    exits: dict[str, object] = {gpu: _exits(graph, gpu, box_of) for gpus in in_rank_order for gpu in gpus}
    counted = {gpu: len(found) for gpu, found in exits.items()}  # where boxes reach different nodes
    first_exits = Counter(exits[gpu] for gpu in in_rank_order[0])
    shown_as = {True: exits, False: counted}  # by whether a box reaches the first box's outside nodes
    first_views = {
        same: _box_view(graph, in_rank_order[0], box_of, shown) for same, shown in shown_as.items()
    }
    orders = [in_rank_order[0]]
    for gpus in in_rank_order[1:]:
        same = Counter(exits[gpu] for gpu in gpus) == first_exits
        orders.append(
            _matched_gpus(first_views[same], _box_view(graph, gpus, box_of, shown_as[same])) or gpus
        )
    return orders


def infer_structure(topology: Topology) -> Topology:
    """``topology`` with ``box`` and ``role`` inferred on its nodes (module docstring), or unchanged
    when any node already carries either."""
    if any(node.box is not None or node.role is not None for node in topology.nodes):
        return topology
    graph = _graph(topology)
    boxes = _find_boxes(graph) or [set(graph.kinds)]
    rank = {name: r for r, name in enumerate(topology.ranks)}
    boxes.sort(key=lambda box: min(rank[v] for v in box if v in rank))
    box_of = {v: index for index, box in enumerate(boxes) for v in box}
    role_of: dict[str, str] = {}
    for box, gpus in zip(boxes, _role_orders(graph, boxes, box_of, rank), strict=True):
        role_of.update(_roles(graph, box, gpus))
    nodes = tuple(
        dataclasses.replace(node, box=box_of.get(node.name), role=role_of.get(node.name))
        for node in topology.nodes
    )
    return dataclasses.replace(topology, nodes=nodes)
