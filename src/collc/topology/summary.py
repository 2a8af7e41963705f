"""Figures that describe a topology to a person: node counts, link classes, per-GPU bandwidth, ranks.

Used by ``collc topo show`` (text and ``--json``). Every figure is exact; rounding happens only when
printing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from collc.sizes import format_figure
from collc.topology.model import NODE_KINDS, Topology

NO_CLASS = "(none)"


@dataclass(frozen=True)
class LinkClassSummary:
    """The links of one class: how many, their distinct bandwidths, their total (per direction)."""

    link_class: str
    links: int
    bandwidths: tuple[Fraction, ...]
    total: Fraction


@dataclass(frozen=True)
class RankRun:
    """Consecutive ranks whose GPU names count up (``b0.gpu0`` .. ``b0.gpu7``)."""

    first_rank: int
    last_rank: int
    first_gpu: str
    last_gpu: str


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    link_classes: tuple[LinkClassSummary, ...]
    egress: dict[str, Fraction]  # per GPU name, GB/s leaving it
    ingress: dict[str, Fraction]  # per GPU name, GB/s arriving at it
    rank_runs: tuple[RankRun, ...]


def summarize(topology: Topology) -> Summary:
    counts = {kind: sum(1 for node in topology.nodes if node.kind == kind) for kind in NODE_KINDS}
    return Summary(
        counts=counts,
        link_classes=link_classes(topology),
        egress=_per_gpu(topology, outgoing=True),
        ingress=_per_gpu(topology, outgoing=False),
        rank_runs=rank_runs(topology.ranks),
    )


def link_classes(topology: Topology) -> tuple[LinkClassSummary, ...]:
    """One entry per link class, sorted by name (unclassified links last)."""
    grouped: dict[str, list[Fraction]] = {}
    for link in topology.links:
        grouped.setdefault(link.link_class or NO_CLASS, []).append(link.bandwidth)
    order = sorted(grouped, key=lambda name: (name == NO_CLASS, name))
    return tuple(
        LinkClassSummary(
            name, len(grouped[name]), tuple(sorted(set(grouped[name]))), sum(grouped[name], Fraction(0))
        )
        for name in order
    )


def _per_gpu(topology: Topology, *, outgoing: bool) -> dict[str, Fraction]:
    total = {gpu: Fraction(0) for gpu in topology.ranks}
    for (src, dst), bandwidth in topology.arc_bandwidths().items():
        end = src if outgoing else dst
        if end in total:
            total[end] += bandwidth
    return total


_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def _split(name: str) -> tuple[str, int] | None:
    match = _TRAILING_NUMBER.match(name)
    return (match[1], int(match[2])) if match else None


def rank_runs(ranks: tuple[str, ...]) -> tuple[RankRun, ...]:
    """Compress the rank map into runs of consecutive ranks with counting-up names."""
    runs: list[RankRun] = []
    for rank, name in enumerate(ranks):
        if runs:
            last = runs[-1]
            previous, current = _split(last.last_gpu), _split(name)
            if previous and current and previous[0] == current[0] and current[1] == previous[1] + 1:
                runs[-1] = RankRun(last.first_rank, rank, last.first_gpu, name)
                continue
        runs.append(RankRun(rank, rank, name, name))
    return tuple(runs)


def format_gbps(value: Fraction) -> str:
    """A bandwidth for people: exact when it has at most 3 decimals (12.5), else rounded to 3 (342.857),
    or to significant digits where 3 decimals would not show it (0.000001 GB/s as 1e-06)."""
    if value.denominator == 1:
        return str(value.numerator)
    text = format_figure(value, 3)
    exact = "e" not in text and Fraction(text) == value
    return text.rstrip("0") if exact else text


def value_range(values: Mapping[str, Fraction]) -> tuple[Fraction, Fraction]:
    return min(values.values()), max(values.values())
