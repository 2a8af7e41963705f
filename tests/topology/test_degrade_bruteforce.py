"""--without, --derate and --gpus against a brute-force bound on small random fabrics (hypothesis).

The oracle applies the changes to the arc bandwidths by itself, keeps every surviving node (nothing is
pruned) and enumerates every cut: x* = min_S B+(S) / |S ∩ GPUs| over the cuts that hold some but not
all of the job's GPUs. An unselected or removed GPU is not a GPU of the job and, having no arcs, cannot
forward. collc's answer is the exact solver on the degraded (and pruned) topology.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import combinations, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collc.capacity import capacity_graph
from collc.errors import InputError
from collc.solver.bound import optimal_bound
from collc.topology.degrade import Degradation, degrade
from collc.topology.model import Link, Node, Topology


@st.composite
def fabrics(draw: st.DrawFn) -> Topology:
    """2-5 GPUs and 0-4 switches or NICs (at most 9 nodes), random links, some parallel or one-way.

    A full-duplex chain through every node keeps the healthy fabric valid (every GPU reaches every other).
    """
    num_gpus = draw(st.integers(2, 5))
    num_others = draw(st.integers(0, min(4, 9 - num_gpus)))
    gpus = [f"g{i}" for i in range(num_gpus)]
    others = [f"s{i}" for i in range(num_others)]
    kinds = {name: draw(st.sampled_from(["switch", "nic"])) for name in others}
    nodes = [Node(name, "gpu") for name in gpus] + [Node(name, kinds[name]) for name in others]  # type: ignore[arg-type]
    pairs = list(combinations(gpus + others, 2))
    chosen = draw(st.lists(st.sampled_from(pairs), max_size=2 * len(nodes)))
    order = draw(st.permutations(gpus + others))
    links = [Link(a, b, Fraction(draw(st.integers(1, 12)))) for a, b in pairwise(order)]
    for a, b in chosen:
        directed = draw(st.integers(0, 3)) == 0
        src, dst = (b, a) if directed and draw(st.booleans()) else (a, b)
        links.append(Link(src, dst, Fraction(draw(st.integers(1, 12))), directed=directed))
    ranks = tuple(draw(st.permutations(gpus)))
    return Topology("random", tuple(nodes), tuple(links), ranks)


@st.composite
def changes(draw: st.DrawFn, topology: Topology) -> Degradation:
    """Random removals (links, nodes, GPUs), percentage deratings and maybe a GPU selection."""
    pairs = sorted({tuple(sorted((link.src, link.dst))) for link in topology.links if link.src != link.dst})
    others = [node for node in topology.nodes if node.kind != "gpu"]
    cut = draw(st.lists(st.sampled_from(pairs), max_size=2, unique=True)) if pairs else []
    dead = draw(st.lists(st.sampled_from(others), max_size=2, unique=True)) if others else []
    down = draw(st.lists(st.sampled_from(topology.ranks), max_size=1))
    without = [f"link:{a}-{b}" for a, b in cut] + [f"{node.kind}:{node.name}" for node in dead]
    without += [f"gpu:{name}" for name in down]
    slow = [pair for pair in pairs if pair not in cut]
    derated = draw(st.lists(st.sampled_from(slow), max_size=2, unique=True)) if slow else []
    derate = [f"link:{a}-{b}={draw(st.sampled_from(['25%', '50%', '62.5%']))}" for a, b in derated]
    gpus = None
    alive = [name for name in topology.ranks if name not in down]
    if len(alive) >= 2 and draw(st.booleans()):
        picked = draw(st.lists(st.sampled_from(alive), min_size=2, max_size=len(alive), unique=True))
        gpus = ",".join(name if draw(st.booleans()) else str(topology.rank_of(name)) for name in picked)
    return Degradation(tuple(without), tuple(derate), gpus)


def _oracle_arcs(
    topology: Topology, degradation: Degradation, job: list[str]
) -> dict[tuple[str, str], Fraction]:
    """Arc bandwidths after the changes, computed directly from the specs (no pruning)."""
    gone_nodes = {spec.split(":", 1)[1] for spec in degradation.without if not spec.startswith("link:")}
    gone_nodes |= {node.name for node in topology.nodes if node.kind == "gpu" and node.name not in job}
    gone_pairs = {frozenset(spec[5:].split("-")) for spec in degradation.without if spec.startswith("link:")}
    factor = {}
    for spec in degradation.derate:
        pair, percent = spec[5:].split("=")
        factor[frozenset(pair.split("-"))] = Fraction(percent[:-1]) / 100
    arcs: dict[tuple[str, str], Fraction] = {}
    for link in topology.links:
        pair = frozenset((link.src, link.dst))
        if link.src in gone_nodes or link.dst in gone_nodes or pair in gone_pairs or link.src == link.dst:
            continue
        bandwidth = link.bandwidth * factor.get(pair, Fraction(1))
        directions = [(link.src, link.dst)] + ([] if link.directed else [(link.dst, link.src)])
        for arc in directions:
            arcs[arc] = arcs.get(arc, Fraction(0)) + bandwidth
    return arcs


def _brute_x_star(nodes: list[str], job: list[str], arcs: dict[tuple[str, str], Fraction]) -> Fraction:
    """min over every cut S of B+(S) / |S ∩ job| (0 when some job GPU cannot reach another)."""
    best: Fraction | None = None
    for mask in range(1, 1 << len(nodes)):
        inside = {name for i, name in enumerate(nodes) if mask >> i & 1}
        gpus = sum(1 for name in job if name in inside)
        if 0 < gpus < len(job):
            leaving = sum((bw for (u, v), bw in arcs.items() if u in inside and v not in inside), Fraction(0))
            ratio = leaving / gpus
            best = ratio if best is None or ratio < best else best
    assert best is not None
    return best


def _job(topology: Topology, degradation: Degradation) -> list[str]:
    """The job's GPUs in rank order, read off the specs."""
    if degradation.gpus:
        return [
            name if not name.isdigit() else topology.ranks[int(name)] for name in degradation.gpus.split(",")
        ]
    down = {spec[4:] for spec in degradation.without if spec.startswith("gpu:")}
    return [name for name in topology.ranks if name not in down]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_degraded_bound_is_the_brute_force_bound(data: st.DataObject) -> None:
    topology = data.draw(fabrics())
    degradation = data.draw(changes(topology))
    job = _job(topology, degradation)
    nodes = [node.name for node in topology.nodes]
    arcs = _oracle_arcs(topology, degradation, job)
    expected = _brute_x_star(nodes, job, arcs) if len(job) >= 2 else Fraction(0)
    if expected == 0:
        with pytest.raises(InputError, match="after --"):
            degrade(topology, degradation)
        return
    degraded = degrade(topology, degradation)
    assert degraded.ranks == tuple(job)
    assert {node.name for node in degraded.nodes} <= set(nodes)
    graph = capacity_graph(degraded)
    assert optimal_bound(graph).x_star == expected
    reversed_arcs = {(v, u): bw for (u, v), bw in arcs.items()}
    assert optimal_bound(graph.reversed()).x_star == _brute_x_star(nodes, job, reversed_arcs)
