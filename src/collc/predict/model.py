"""Everything a prediction needs for one topology, computed once: network, bound, forest, baselines.

This is what ``collc simulate`` and ``collc report`` call. The collc schedule is predicted from the
forest (analytic model) unless a program (an emitted MSCCL XML) is given, which is then simulated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property

from collc.capacity import CapacityGraph, capacity_graph
from collc.msccl.program import Algorithm
from collc.predict.baselines import (
    Exchange,
    RingBaseline,
    TreeBaseline,
    box_exchange,
    ring_baseline,
    tree_baseline,
)
from collc.predict.des import ProgramCost, prefetch, runs_of, simulation_threads
from collc.predict.forest_model import ForestCost
from collc.predict.network import Network
from collc.predict.params import Protocol
from collc.predict.sweep import BestProtocol, Lookahead, Predictor, Sweep, sweep
from collc.progress import Report, silent
from collc.solver.bound import Bound, optimal_bound
from collc.solver.ceiling import allreduce_ceiling
from collc.topology.model import Topology


@dataclass
class TopologyModel:
    """Lazily computed prediction inputs for ``topology`` (each piece at most once)."""

    topology: Topology

    @cached_property
    def network(self) -> Network:
        return Network.of(self.topology)

    @cached_property
    def capacity(self) -> CapacityGraph:
        """The fabric as an integer capacity graph, which every bound below is computed on."""
        return capacity_graph(self.topology)

    @cached_property
    def bound(self) -> Bound:
        """The optimal allgather bound with its bottleneck cut (``collc bound``)."""
        return optimal_bound(self.capacity)

    @cached_property
    def reduce_scatter_bound(self) -> Bound:
        return optimal_bound(self.capacity.reversed())

    def bound_algbw(self, collective: str) -> Fraction:
        """Optimal algbw of ``collective`` (GB/s): allreduce = reduce-scatter then allgather."""
        if collective == "allgather":
            return self.bound.allgather_algbw
        if collective == "reducescatter":
            return self.reduce_scatter_bound.allgather_algbw
        return 1 / (1 / self.bound.allgather_algbw + 1 / self.reduce_scatter_bound.allgather_algbw)

    def ceiling_algbw(self, collective: str) -> Fraction:
        """An algbw (GB/s) no schedule of ``collective`` exceeds: the bound for allgather and
        reduce-scatter; for allreduce the least capacity across a cut between GPUs
        (:mod:`collc.solver.ceiling`), since overlapped halves can beat reduce-scatter then allgather."""
        return self._allreduce_ceiling if collective == "allreduce" else self.bound_algbw(collective)

    @cached_property
    def _allreduce_ceiling(self) -> Fraction:
        return allreduce_ceiling(self.capacity)

    @cached_property
    def solution(self):  # -> collc.solver.Solution
        from collc.solver.pipeline import solve

        return solve(self.topology)

    @cached_property
    def forest_cost(self) -> ForestCost:
        return ForestCost(self.network, self.solution.forest)

    @cached_property
    def exchange(self) -> Exchange:
        """What the boxes exchange (:func:`box_exchange`), for the ring and the tree: two max-flows
        per box and two per box after the first, computed once."""
        return box_exchange(self.network)

    @cached_property
    def ring(self) -> RingBaseline:
        return ring_baseline(self.network, self.exchange)

    @cached_property
    def tree(self) -> TreeBaseline:
        return tree_baseline(self.network, self.exchange)

    def baselines(self, collective: str) -> dict[str, Predictor]:
        """NCCL's algorithms for ``collective``: rings always, the double binary tree for allreduce."""
        found: dict[str, Predictor] = {"ring": self.ring}
        if collective == "allreduce":
            found["tree"] = self.tree
        return found

    def collc(self, program: Algorithm | None = None) -> Predictor:
        """The collc predictor: the event simulation of ``program`` if given, else the forest model.

        A program is simulated on shortest paths (docs/cost-model.md §1): which NIC or rail a file's
        channel uses is decided by the runtime, not written in the file.
        """
        if program is None:
            return self.forest_cost
        return ProgramCost(self.network, program)

    def sweep(
        self,
        collective: str,
        sizes: list[int],
        proto: Protocol,
        program: Algorithm | None = None,
        predictor: Predictor | None = None,
        progress: Report = silent,
    ) -> Sweep:
        """Predict ``sizes`` for collc, the baselines and the bound.

        A simulated program is expensive per size, so its crossover is searched on ``sizes`` only,
        and the simulations of as many sizes as run at once (:func:`simulation_threads`) are made
        side by side. ``predictor`` times ``program`` instead of its simulation as an MSCCL file (an
        MSCCL++ plan's).
        """
        collc = predictor or self.collc(program)
        swept = sweep(
            collective,
            sizes,
            proto,
            self.topology.num_gpus,
            collc,
            {name: BestProtocol(baseline) for name, baseline in self.baselines(collective).items()},
            self.bound_algbw(collective),
            sizes if program is not None else None,
            progress,
            Lookahead(
                simulation_threads(),
                lambda ahead: prefetch(runs_of(collc, collective, ahead, proto)),
            ),
        )
        return replace(swept, ceiling_algbw=self.ceiling_algbw(collective))
