"""How a loop's chunks are shared among roots and trees (collc.lowering.layout), and allreduce files
whose power-of-two loop is shared unevenly among a non-power-of-two number of GPUs."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collc.errors import InvariantError
from collc.lowering.layout import equal_shares, layout_algbw, spread_shares, tree_chunks
from collc.lowering.limits import runtime_limits
from collc.lowering.lower import LoweringOptions, lower
from collc.lowering.plan import build_plan
from collc.solver.pipeline import solve

from .checks import assert_valid
from .forests import binary, chain, flat_topology, forest, star


@given(st.integers(1, 40), st.integers(0, 200))
def test_spread_shares_differ_by_at_most_one_chunk_and_sum_to_the_loop(num_gpus, more):
    chunks = num_gpus + more
    shares = spread_shares(num_gpus, chunks)
    assert sum(shares) == chunks and max(shares) - min(shares) <= 1
    # the heavier roots are spread out: any run of ranks holds its fair part of them, give or take one
    heavy = [int(share > chunks // num_gpus) for share in shares]
    for start in range(num_gpus):
        for length in range(1, num_gpus - start + 1):
            fair = length * (chunks % num_gpus) / num_gpus
            assert abs(sum(heavy[start : start + length]) - fair) < 1 + 1e-9


def test_24_gpus_share_64_chunks_as_16_threes_and_8_twos_one_two_in_each_three_ranks():
    shares = spread_shares(24, 64)
    assert sorted(shares) == [2] * 8 + [3] * 16
    assert all(sorted(shares[r : r + 3]) == [2, 3, 3] for r in range(0, 24, 3))
    with pytest.raises(InvariantError, match="cannot give each of 5 roots one"):
        spread_shares(5, 4)


def test_a_roots_share_splits_among_its_trees_by_multiplicity():
    trees = forest(3, [(chain, 1), (binary, 2)])  # every root: a chain of multiplicity 1 and a tree of 2
    assert tree_chunks(trees, equal_shares(3, 3)) == (1, 2) * 3  # exactly C·share/k
    # shares 4, 5, 5 of 14: 4/3 and 8/3 round to 1 and 3, 5/3 and 10/3 to 2 and 3
    assert tree_chunks(trees, (4, 5, 5)) == (1, 3, 2, 3, 2, 3)
    # a share smaller than the root's trees leaves a tree without chunks
    assert tree_chunks(forest(2, [(chain, 1), (star, 1)]), (1, 3)) == (1, 0, 2, 1)


@pytest.mark.parametrize("shape", [[(chain, 1)], [(star, 1), (binary, 1)], [(chain, 1), (binary, 2)]])
def test_equal_shares_give_the_forests_own_bound(shape):
    topology = flat_topology(5)
    trees = forest(5, shape, U=Fraction(1, 10))
    solved = solve(topology, k=2).forest
    for candidate in (trees, solved):
        per_root = 3 * candidate.k
        algbw = layout_algbw(candidate, equal_shares(5, per_root), topology.arc_bandwidths())
        assert algbw == 5 * candidate.k / _busiest(candidate, topology)


def _busiest(trees, topology) -> Fraction:
    """U of ``trees`` recomputed: the most unit trees on an arc per GB/s."""
    loads: dict = {}
    for tree in trees.trees:
        for edge in tree.edges:
            for arc in zip(edge.path, edge.path[1:], strict=False):
                loads[arc] = loads.get(arc, 0) + tree.multiplicity
    return max(Fraction(load) / topology.arc_bandwidths()[arc] for arc, load in loads.items())


def test_uneven_shares_cost_what_the_heaviest_arc_carries():
    """Three chains r -> r+1 -> r+2 on a 3-GPU full mesh at 100 GB/s: every arc used carries two
    chains, 2 of 3 chunks with equal shares (algbw 3 / (2 / 100) = 150); with 8 chunks shared 2, 3, 3
    the arc 2 -> 0 carries the chains of the two heavier roots, 6 of 8 (8 / (6 / 100) = 133.3)."""
    topology = flat_topology(3)
    trees = forest(3, [(chain, 1)])
    assert layout_algbw(trees, (1, 1, 1), topology.arc_bandwidths()) == 150
    assert spread_shares(3, 8) == (2, 3, 3)
    assert layout_algbw(trees, (2, 3, 3), topology.arc_bandwidths()) == Fraction(400, 3)


@pytest.mark.parametrize("placement", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("shape", [[(chain, 1)], [(chain, 1), (binary, 2)], [(star, 1), (binary, 1)]])
def test_an_allreduce_with_a_power_of_two_loop_is_a_valid_program(shape, placement):
    """5 GPUs and 16 or 32 chunks per loop: every chunk is reduced at one root and broadcast from it,
    whatever the shares, so the program is right on every rank (collc verify and the lowering's own
    data simulation)."""
    inplace, outofplace = placement
    limits = runtime_limits("msccl-executor", 108)
    trees = forest(5, shape, U=Fraction(1, 10))
    for loop, instances in ((16, 1), (32, 2)):
        options = LoweringOptions(
            coll="allreduce", inplace=inplace, outofplace=outofplace, instances=instances, loop_chunks=loop
        )
        algo = lower(trees, options, limits).algorithm
        assert algo.nchunksperloop == loop * instances
        assert_valid(algo, limits)


def test_only_an_allreduce_shares_its_loop_unevenly():
    with pytest.raises(InvariantError, match="only an allreduce"):
        build_plan(forest(5, [(chain, 1)]), "allgather", loop_chunks=16)
    plan = build_plan(forest(5, [(chain, 1)]), "allreduce", loop_chunks=16, instances=2)
    assert (plan.nchunksperloop, plan.i_chunks, plan.o_chunks) == (32, 32, 32)
    # the roots' chunk ranges follow each other: 3, 3, 3, 3, 4 chunks per instance, two instances each
    roots = {}
    for transfer in plan.transfers:
        if transfer.source.buf == "o":  # the broadcast half: the reduced chunks at their own offsets
            roots.setdefault(transfer.key[2], set()).update(transfer.source.chunks())
    assert sorted(min(chunks) for chunks in roots.values()) == [0, 6, 12, 18, 24]
