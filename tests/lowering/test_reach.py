"""The reach of one file: the element counts ``collc.lowering.reach`` derives from a forest's shape are
the lowered program's own, the shape-free bound is below every forest's, and compile stops at once
beyond the reach, naming the limit and by how much it is over."""

from __future__ import annotations

from fractions import Fraction

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.lowering.layout import equal_shares
from collc.lowering.limits import MAX_ELEMENTS_PER_RANK, runtime_limits
from collc.lowering.lower import DoesNotFit, LoweringOptions, lower
from collc.lowering.plan import MAX_CNT
from collc.lowering.reach import (
    BeyondReach,
    ElementCount,
    check_reach,
    forest_elements,
    largest_fabric,
    least_elements,
)
from collc.solver.forest import Forest

from .forests import binary, chain, forest, star

SHAPES = {
    "ring": [(chain, 1)],
    "star": [(star, 1)],
    "mixed-k3": [(chain, 1), (binary, 2)],
}


@pytest.mark.parametrize("outofplace", [True, False])
@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_forest_count_is_the_busiest_gpus_steps_without_nops(shape, coll, outofplace):
    trees = forest(5, SHAPES[shape], U=Fraction(1, 10))
    options = LoweringOptions(coll=coll, inplace=True, outofplace=outofplace, instances=2)
    lowered = lower(trees, options, runtime_limits("msccl-executor", 108))
    algo = lowered.algorithm
    steps = max(sum(step.type != "nop" for tb in gpu.tbs for step in tb.steps) for gpu in algo.gpus)
    counted = forest_elements((trees,), coll, equal_shares(trees.num_gpus, trees.k), 2, 1, outofplace)
    assert counted.steps == steps  # every GPU has the same place in these forests
    peers = max(len({tb.send for tb in gpu.tbs} - {-1}) for gpu in algo.gpus)
    assert counted.threadblocks == peers <= lowered.usage.max_tbs
    assert counted.total == 1 + 5 + peers + steps <= lowered.usage.max_elements_per_rank
    assert least_elements(coll, 5, outofplace).steps <= steps


def test_threadblocks_are_the_most_peers_the_busiest_gpu_sends_to_or_receives_from():
    # root 0 broadcasts as a star, roots 1 and 2 as chains 1->2->0 and 2->0->1: GPU 0 sends to two
    # peers but receives from one (broadcast), and the other way round when the trees aggregate
    trees = Forest(3, 1, Fraction(1), (star(0, 3), chain(1, 3), chain(2, 3)))
    assert forest_elements((trees,), "allgather", (1, 1, 1), 1, 1, True) == ElementCount(3, 2, 3 + 1 + 2)
    assert forest_elements((trees,), "reducescatter", (1, 1, 1), 1, 1, True) == ElementCount(3, 2, 5 + 1 + 3)


def test_larger_pieces_count_fewer_steps():
    trees = forest(4, [(star, 3)])
    shares = equal_shares(trees.num_gpus, trees.k)
    one = forest_elements((trees,), "allgather", shares, 1, 1, True)
    whole = forest_elements((trees,), "allgather", shares, 1, MAX_CNT, True)
    # every GPU: its own star (3 sends and a copy per piece) and a receive per piece of 3 other stars;
    # 3 pieces of one chunk per tree, or one piece of 3 chunks
    assert (one.steps, whole.steps) == (3 * (3 + 1) + 3 * 3, (3 + 1) + 3)


@pytest.mark.parametrize("coll", ["allgather", "reducescatter", "allreduce"])
@pytest.mark.parametrize("copy", [True, False])
def test_largest_fabric_is_the_boundary_of_the_shape_free_check(coll, copy):
    reach = largest_fabric(coll, MAX_ELEMENTS_PER_RANK, copy)
    assert least_elements(coll, reach, copy).total <= MAX_ELEMENTS_PER_RANK
    check_reach(coll, reach, MAX_ELEMENTS_PER_RANK, copy)
    beyond = least_elements(coll, reach + 1, copy).total
    with pytest.raises(BeyondReach, match=f"the runtime's parser takes 4096, {beyond - 4096} over"):
        check_reach(coll, reach + 1, MAX_ELEMENTS_PER_RANK, copy)


def test_allreduce_reach_in_numbers():
    assert [largest_fabric(coll, 4096, True) for coll in ("allgather", "reducescatter", "allreduce")] == [
        1365,
        1024,
        683,
    ]


def test_lower_rejects_a_forest_over_the_element_limit_before_planning():
    trees = forest(6, [(star, 1)])
    needed = forest_elements((trees,), "allgather", equal_shares(6, 1), 1, MAX_CNT, True).total
    limits = runtime_limits("msccl-executor", 108)
    tight = type(limits)(
        limits.runtime, limits.max_tbs, limits.max_channels, max_elements_per_rank=needed - 3
    )
    with pytest.raises(
        DoesNotFit, match=f"needs at least {needed} XML elements per rank .*, 3 over the limit"
    ):
        lower(trees, LoweringOptions(coll="allgather"), tight)


def test_compile_beyond_reach_exits_2_at_once_naming_the_limit(tmp_path):
    output = tmp_path / "out.xml"
    result = CliRunner().invoke(main, ["compile", "dgx-h100-rail", "--set", "boxes=86", "-o", str(output)])
    assert result.exit_code == 2, result.output
    assert "allreduce on 688 GPUs needs at least 4126 XML elements per rank" in result.output
    assert "30 over" in result.output and "at most 683 GPUs" in result.output
    assert "Traceback" not in result.output
    assert not output.exists()
