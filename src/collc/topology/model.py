"""The in-memory topology: nodes, links, rank order and metadata.

This is the interface between the topology reader (YAML, presets, validation) and every later stage.
Bandwidths are exact :class:`fractions.Fraction` values in GB/s (10^9 bytes/s) per direction, latencies
in microseconds; nothing downstream ever sees a float bandwidth.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

from collc.errors import Location

NodeKind = Literal["gpu", "switch", "nic"]
NODE_KINDS: tuple[NodeKind, ...] = ("gpu", "switch", "nic")


@dataclass(frozen=True)
class Node:
    """A vertex of the fabric.

    ``gpu`` nodes store, forward and reduce data; ``switch`` and ``nic`` nodes only forward it
    (ForestColl's model: no multicast, no in-network reduction). ``box`` and ``role`` record the
    structure the node was instantiated from (box index and its template-local name, e.g. box 3 and
    ``gpu5``); identical roles in different boxes are candidates for symmetry.
    """

    name: str
    kind: NodeKind
    box: int | None = None
    role: str | None = None
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Link:
    """A link between two nodes: one arc each way unless ``directed``.

    ``link_class`` names the kind of link (e.g. ``nvlink``, ``ib``, ``xgmi``) for reports, default
    latencies and channel rules.
    """

    src: str
    dst: str
    bandwidth: Fraction
    latency_us: Fraction | None = None
    directed: bool = False
    link_class: str | None = None
    location: Location | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Metadata:
    """Facts about the cluster that later stages use (threadblock budget, runtime defaults)."""

    gpu_model: str | None = None
    sms_per_gpu: int | None = None
    runtime: str | None = None  # "msccl-executor" | "rccl"
    default_latency_us: dict[str, Fraction] = field(default_factory=dict)  # per link class


@dataclass(frozen=True)
class Topology:
    """A validated fabric: nodes, links, the runtime rank of every GPU and metadata.

    ``ranks[r]`` is the name of the GPU with communicator rank ``r``.
    """

    name: str
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]
    ranks: tuple[str, ...]
    description: str = ""
    metadata: Metadata = field(default_factory=Metadata)
    source: str | None = None

    @property
    def num_gpus(self) -> int:
        return len(self.ranks)

    def node(self, name: str) -> Node:
        return self._nodes_by_name()[name]

    def _nodes_by_name(self) -> dict[str, Node]:
        cache = self.__dict__.get("_by_name")
        if cache is None:
            cache = {node.name: node for node in self.nodes}
            object.__setattr__(self, "_by_name", cache)
        return cache

    def rank_of(self, gpu_name: str) -> int:
        cache = self.__dict__.get("_rank_of")
        if cache is None:
            cache = {name: rank for rank, name in enumerate(self.ranks)}
            object.__setattr__(self, "_rank_of", cache)
        return cache[gpu_name]

    def arcs(self) -> Iterator[tuple[str, str, Link]]:
        """Every directed arc (src, dst, link): full-duplex links give one arc each way."""
        for link in self.links:
            yield link.src, link.dst, link
            if not link.directed:
                yield link.dst, link.src, link

    def arc_bandwidths(self) -> dict[tuple[str, str], Fraction]:
        """Total bandwidth per directed node pair (parallel links add up), in GB/s."""
        total: dict[tuple[str, str], Fraction] = {}
        for src, dst, link in self.arcs():
            total[(src, dst)] = total.get((src, dst), Fraction(0)) + link.bandwidth
        return total
