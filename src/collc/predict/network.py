"""The physical network as the cost model sees it: arcs with bandwidth and latency, GPU-to-GPU paths.

Parallel links between the same pair of nodes add their bandwidths (as in the capacity graph) and the
pair's latency is the smallest of theirs. Paths between GPUs that are not given by a schedule are the
runtime's: the widest (largest bottleneck bandwidth), then the shortest by hop count, preferring routes
whose intermediate nodes are switches/NICs (GPUs do not forward in hardware). NCCL ranks a pair's
paths by type, NVLink before PCIe before the CPU and the network, and uses one of them per pair: two
GPUs on an NVSwitch and on one PCIe switch talk over the NVSwitch, although both are two hops. Two
GPUs of one box stay inside it: NCCL connects them peer to peer (or through host memory), never out
through a NIC and back, however wide the network path is. Ties are broken by node name so every run
picks the same path.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

from collc.errors import InputError
from collc.predict.params import link_latency_us
from collc.topology.model import Topology

Arc = tuple[str, str]


@dataclass
class Network:
    """Arc bandwidths (exact, GB/s) and latencies (µs) of a topology, with cached GPU paths."""

    topology: Topology
    bandwidth: dict[Arc, Fraction]
    latency_us: dict[Arc, float]
    neighbours: dict[str, tuple[str, ...]]
    _paths: dict[Arc, tuple[str, ...] | None] = field(default_factory=dict)
    _local_nics: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _hops: dict[tuple[str, Fraction], dict[str, int]] = field(default_factory=dict)  # _hops_to
    widths: tuple[Fraction, ...] = field(init=False)  # the distinct arc bandwidths, widest first
    _shared_nodes: frozenset[str] = field(init=False)  # switches and NICs outside every box

    def __post_init__(self) -> None:
        self.widths = tuple(sorted(set(self.bandwidth.values()), reverse=True))
        self._shared_nodes = frozenset(
            node.name for node in self.topology.nodes if node.box is None and node.kind != "gpu"
        )

    @classmethod
    def of(cls, topology: Topology) -> Network:
        """Build the network of ``topology``."""
        bandwidth = {pair: bw for pair, bw in topology.arc_bandwidths().items() if pair[0] != pair[1]}
        latency: dict[Arc, float] = {}
        for src, dst, link in topology.arcs():
            value = link_latency_us(topology, link)
            latency[(src, dst)] = min(value, latency.get((src, dst), value))
        adjacency: dict[str, set[str]] = {}
        for src, dst in bandwidth:
            adjacency.setdefault(src, set()).add(dst)
        neighbours = {node: tuple(sorted(targets)) for node, targets in adjacency.items()}
        return cls(topology, bandwidth, latency, neighbours)

    def is_gpu(self, name: str) -> bool:
        return self.topology.node(name).kind == "gpu"

    def path_via(self, src: str, via: str, dst: str) -> tuple[str, ...]:
        """The runtime's path from ``src`` to ``dst`` that passes through node ``via`` (e.g. a NIC
        rail)."""
        return self.path(src, via) + self.path(via, dst)[1:]

    def path(self, src: str, dst: str) -> tuple[str, ...]:
        """The runtime's path from ``src`` to ``dst`` (see the module docstring)."""
        found = self._find(src, dst)
        if found is None:
            raise InputError(
                f"no path from {src} to {dst} in topology {self.topology.name!r}",
                hint="every pair of GPUs that exchanges data must be connected",
            )
        return found

    def _find(self, src: str, dst: str) -> tuple[str, ...] | None:
        """:meth:`path`, or None where there is none (cached either way)."""
        key = (src, dst)
        if key not in self._paths:
            box = self._box_of(src)
            boxes = (box, None) if box is not None and box == self._box_of(dst) else (None,)
            searches = ((within, through) for within in boxes for through in (False, True))
            self._paths[key] = next(
                filter(None, (self._widest(src, dst, *search) for search in searches)), None
            )
        return self._paths[key]

    def spread(
        self,
        path: tuple[str, ...],
        load: dict[Arc, float],
        amount: float,
        pinned: frozenset[str] = frozenset(),
    ) -> tuple[str, ...]:
        """``path`` with its stretch through the shared network (switches and NICs outside every box)
        moved to one of the stretches between the same ends that are as wide and as short: at every
        branch the arc least loaded so far relative to its bandwidth (``load``, which the chosen arcs
        then carry ``amount`` more of; ties by name). The network's switches spread connections over
        equal-cost paths (adaptive routing balances them); the first by name put a two-spine fabric's
        traffic on one spine. Nodes of ``pinned`` on the path stay (the rail a channel chose). A
        path without such a stretch, or with one that is not contiguous or not a shortest one at its
        width, is kept."""
        shared = [i for i, name in enumerate(path) if self._shared(name)]
        if not shared or shared != list(range(shared[0], shared[-1] + 1)):
            return path
        first, last = shared[0] - 1, shared[-1] + 1
        if first < 0 or last >= len(path):
            return path
        width = min(self.bandwidth[arc] for arc in itertools.pairwise(path[first : last + 1]))
        hops = self._hops_to(path[last], width)
        node, stretch = path[first], [path[first]]
        for remaining in range(last - first - 1, -1, -1):
            choices = [  # the hop count first: it rules out most neighbours without comparing fractions
                nxt
                for nxt in self.neighbours.get(node, ())
                if hops.get(nxt) == remaining
                and (nxt == path[last] or self._shared(nxt))
                and self.bandwidth[(node, nxt)] >= width
            ]
            kept = path[last - remaining]
            if kept in pinned:
                choices = [kept] if kept in choices else []
            if not choices:
                return path
            node = min(choices, key=partial(self._busy, load, node))
            stretch.append(node)
        for arc in itertools.pairwise(stretch):
            load[arc] = load.get(arc, 0.0) + amount
        return path[:first] + tuple(stretch) + path[last + 1 :]

    def _busy(self, load: dict[Arc, float], src: str, dst: str) -> float:
        """What ``load`` puts on the arc ``src → dst``, relative to its bandwidth."""
        return load.get((src, dst), 0.0) / float(self.bandwidth[(src, dst)])

    def _shared(self, name: str) -> bool:
        """Whether ``name`` is part of the shared network: a switch or NIC outside every box."""
        return name in self._shared_nodes

    def _hops_to(self, target: str, width: Fraction) -> dict[str, int]:
        """Hops to ``target`` from it and from every shared-network node that reaches it through the
        shared network over arcs of at least ``width`` (cached)."""
        key = (target, width)
        if key not in self._hops:
            incoming: dict[str, list[str]] = {}
            for (src, dst), bandwidth in self.bandwidth.items():
                if bandwidth >= width and self._shared(src):
                    incoming.setdefault(dst, []).append(src)
            hops = {target: 0}
            queue = deque([target])
            while queue:
                node = queue.popleft()
                for previous in incoming.get(node, ()):
                    if previous not in hops:
                        hops[previous] = hops[node] + 1
                        queue.append(previous)
            self._hops[key] = hops
        return self._hops[key]

    def nic_for(self, gpu: str, channel: int) -> str | None:
        """The NIC the runtime gives ``gpu``'s connection on ``channel`` to another box, as NCCL's
        ``ncclTopoGetLocalNet`` does for point-to-point connections (the kind MSCCL's are): among the
        GPU's local NICs (:meth:`local_nics`), start from its device index (bit-mirrored when their
        count is a power of two, so that neighbouring GPUs take different NICs) and move by the
        channel only where the NICs outnumber the GPUs that share them. None without a NIC in its box.
        Two GPUs on one PCIe switch with two NICs take one NIC each, not both the first by name."""
        nets = self.local_nics(gpu)
        if len(nets) < 2:
            return nets[0] if nets else None
        box = self._box_of(gpu)
        gpus = [name for name in self.topology.ranks if self._box_of(name) == box]
        sharing = sum(1 for name in gpus if nets[0] in self.local_nics(name))
        net = gpus.index(gpu)
        if len(nets) & (len(nets) - 1) == 0:
            net = _mirror_bits(net, len(nets))
        net += channel % -(-len(nets) // sharing)
        return nets[net % len(nets)]

    def local_nics(self, gpu: str) -> tuple[str, ...]:
        """The NICs of ``gpu``'s box at its widest, then shortest path from it (all of them where they
        tie), in name order: what NCCL counts as the GPU's local network devices. A NIC it cannot
        reach (one without links, which loading only warns about) is none of them."""
        if gpu not in self._local_nics:
            box = self._box_of(gpu)
            nics = [
                node.name
                for node in self.topology.nodes
                if node.kind == "nic" and box is not None and node.box == box
            ]
            reach = {nic: path for nic in nics if (path := self._find(gpu, nic)) is not None}
            rank = {nic: (-self.path_bandwidth(path), len(path)) for nic, path in reach.items()}
            best = min(rank.values(), default=None)
            self._local_nics[gpu] = tuple(sorted(nic for nic in reach if rank[nic] == best))
        return self._local_nics[gpu]

    def _box_of(self, name: str) -> int | None:
        return self.topology.node(name).box

    def _widest(self, src: str, dst: str, within: int | None, through_gpus: bool) -> tuple[str, ...] | None:
        """The widest and then shortest path from ``src`` to ``dst`` (inside box ``within`` unless it
        is None): a breadth-first search over the arcs of at least each bandwidth in turn, widest
        first (a search over arcs wider than any leaving ``src`` ends at once)."""
        for width in self.widths:
            found = self._bfs(src, dst, width, within, through_gpus)
            if found is not None:
                return found
        return None

    def _bfs(
        self, src: str, dst: str, width: Fraction, within: int | None, through_gpus: bool
    ) -> tuple[str, ...] | None:
        """The shortest path by hops from ``src`` to ``dst`` over arcs of at least ``width`` and
        nodes of box ``within`` (None: any), neighbours in name order, so ties go to the smaller name."""
        parent: dict[str, str | None] = {src: None}
        queue = deque([src])
        while queue:
            node = queue.popleft()
            if node == dst:
                path = [dst]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])  # type: ignore[arg-type]
                return tuple(reversed(path))
            if node != src and not through_gpus and self.is_gpu(node):
                continue
            for nxt in self.neighbours.get(node, ()):
                inside = within is None or self._box_of(nxt) == within
                if nxt not in parent and inside and self.bandwidth[(node, nxt)] >= width:
                    parent[nxt] = node
                    queue.append(nxt)
        return None

    def arcs_of(self, path: tuple[str, ...]) -> list[Arc]:
        """The arcs of a node path; an arc missing from the topology is an :class:`InputError`."""
        arcs = list(itertools.pairwise(path))
        for arc in arcs:
            if arc not in self.bandwidth:
                raise InputError(
                    f"the schedule uses {arc[0]} -> {arc[1]}, which is not a link of {self.topology.name!r}",
                    hint="predict a schedule with the topology it was compiled for",
                )
        return arcs

    def path_latency_us(self, path: tuple[str, ...]) -> float:
        return sum(self.latency_us[arc] for arc in self.arcs_of(path))

    def path_bandwidth(self, path: tuple[str, ...]) -> Fraction:
        """The smallest arc bandwidth along ``path`` (GB/s)."""
        return min(self.bandwidth[arc] for arc in self.arcs_of(path))


def _mirror_bits(value: int, power: int) -> int:
    """``value``'s low log2(``power``) bits in reverse order (NCCL's ``mirrorBits``)."""
    mirrored, bit, mirror = 0, 1, power >> 1
    while bit < power:
        if value & bit:
            mirrored |= mirror
        bit, mirror = bit << 1, mirror >> 1
    return mirrored
