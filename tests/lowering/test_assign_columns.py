"""The lane assignment's per-lane figures read off the plan's transfer columns (Plan.columns) against
their definitions over the transfers: a lane's busy time is the sum of its transfers' cnt / bandwidth,
exactly, and two lanes carry the same tree pieces exactly when their transfers' (tree, instance,
piece) sets are equal."""

from __future__ import annotations

import importlib
import random
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest

from collc.lowering import LoweringOptions
from collc.lowering.assign import _busy, _units
from collc.solver import solve
from collc.topology import load

lowering = importlib.import_module("collc.lowering.lower")  # the module, not the function


@pytest.fixture(scope="module")
def plan():
    topology = load("dgx-a100", {"boxes": "2"})
    plans = lowering.Plans(solve(topology, k=2).forest, arc_bandwidths=topology.arc_bandwidths())
    return plans.get(LoweringOptions(coll="allreduce"), 1).plan


@pytest.mark.parametrize("seed", range(4))
def test_busy_time_and_tree_pieces_per_lane_are_those_of_its_transfers(plan, seed: int) -> None:
    rng = random.Random(seed)
    count = rng.choice([1, 5, 37, len(plan.transfers)])
    lane_of = [rng.randrange(count) for _ in plan.transfers]
    busy = [Fraction(0)] * count
    pieces: list[set[tuple[int, ...]]] = [set() for _ in range(count)]
    for transfer, lane in zip(plan.transfers, lane_of, strict=True):
        busy[lane] += Fraction(transfer.source.cnt) / transfer.bandwidth
        pieces[lane].add(transfer.key[2:5])
    assert len(set(plan.columns.rates)) == len(plan.columns.rates) > 1  # equal bandwidths merged
    assert _busy(plan.columns, np.array(lane_of), count) == busy
    units = _units(np.array(lane_of), plan.columns.unit, count)
    assert [len(unit) for unit in units] == [len(piece) for piece in pieces]
    assert all((units[a] == units[b]) == (pieces[a] == pieces[b]) for a in range(count) for b in range(count))


def test_a_lane_over_a_path_of_unknown_bandwidth_has_no_busy_time(plan) -> None:
    transfers = (replace(plan.transfers[0], bandwidth=None), *plan.transfers[1:])
    columns = replace(plan, transfers=transfers).columns
    assert _busy(columns, np.zeros(len(transfers), dtype=np.int64), 1) is None
