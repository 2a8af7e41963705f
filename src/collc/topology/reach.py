"""Which nodes reach which along a fabric's links, counting a directed link one way only.

A collective needs every GPU to reach every other in both directions; a degraded fabric
(:mod:`collc.topology.degrade`) and an imported box (:mod:`collc.topology.importers`) are checked with
these two functions before anything is solved.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

Node = TypeVar("Node")


class Arc(Protocol):
    """A link as far as reachability goes: its ends, and whether it runs from ``src`` to ``dst`` only."""

    src: str
    dst: str
    directed: bool


def adjacency(links: Iterable[Arc]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(successors, predecessors) of every node along the arcs of ``links``."""
    forward: dict[str, set[str]] = defaultdict(set)
    backward: dict[str, set[str]] = defaultdict(set)
    for link in links:
        forward[link.src].add(link.dst)
        backward[link.dst].add(link.src)
        if not link.directed:
            forward[link.dst].add(link.src)
            backward[link.src].add(link.dst)
    return forward, backward


def reachable(graph: Mapping[Node, Iterable[Node]], start: Node) -> set[Node]:
    """Every node ``start`` reaches in ``graph`` (itself included), breadth first."""
    seen = {start}
    queue = deque([start])
    while queue:
        for neighbour in graph.get(queue.popleft(), ()):
            if neighbour not in seen:
                seen.add(neighbour)
                queue.append(neighbour)
    return seen
