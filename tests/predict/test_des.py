import json
from fractions import Fraction
from pathlib import Path

import pytest

from collc.errors import InputError
from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.reader import read_xml
from collc.predict.des import ProgramCost, max_min_rates
from collc.predict.network import Network
from collc.predict.params import PROTOCOLS
from collc.topology.model import Link, Node, Topology

from .models import model

SIMPLE = PROTOCOLS["Simple"]
FIXTURES = Path("/work/shared/fixtures/msccl/valid")
MiB = 2**20


def _switch(num_gpus: int, bandwidth: int = 100) -> Network:
    gpus = [f"g{i}" for i in range(num_gpus)]
    nodes = (*(Node(name, "gpu", 0, name) for name in gpus), Node("sw", "switch", 0, "sw"))
    links = tuple(Link(name, "sw", Fraction(bandwidth), latency_us=Fraction(0)) for name in gpus)
    return Network.of(Topology("switch", nodes, links, tuple(gpus)))


def _step(kind: str, index: int, depid: int = -1, deps: int = -1) -> Step:
    return Step(index, kind, "o", 0, "o", 0, 1, depid, deps, 0)


def _chain(fused: bool) -> Algorithm:
    """Broadcast one chunk 0 -> 1 -> 2. GPU 1 forwards in its own tb, or (``fused``) in the receiving tb."""
    gpu0 = GpuProgram(0, 1, 1, 0, [Threadblock(0, 1, -1, 0, [_step("s", 0)])])
    if fused:
        middle = [Threadblock(0, 2, 0, 0, [_step("r", 0), _step("s", 1)])]
    else:
        middle = [
            Threadblock(0, -1, 0, 0, [_step("r", 0)]),
            Threadblock(1, 2, -1, 0, [_step("s", 0, depid=0, deps=0)]),
        ]
    gpu1 = GpuProgram(1, 1, 1, 0, middle)
    gpu2 = GpuProgram(2, 1, 1, 0, [Threadblock(0, -1, 1, 0, [_step("r", 0)])])
    return Algorithm("chain", "Simple", 1, 1, 3, "allgather", 1, 0, 0, 0, [gpu0, gpu1, gpu2])


def test_max_min_rates_share_the_bottleneck_and_give_the_rest_to_others() -> None:
    import numpy as np

    bandwidth = np.array([10.0, 100.0, np.inf])  # arc 2 is the padding arc
    arcs = np.array([[0, 1], [0, 2], [1, 2]])
    assert list(max_min_rates(arcs, bandwidth)) == [5.0, 5.0, 95.0]


def test_store_and_forward_chain_pipelines_over_iterations() -> None:
    """Separate tbs on the relay: time = (iterations + 1) slice times, plus the per-hop overheads."""
    cost = ProgramCost(_switch(3), _chain(fused=False))
    size = 64 * MiB  # one chunk of 64 MiB: 128 slices, simulated as 64 iterations of 1 MiB
    iterations, slice_bytes = cost.iterations(size, SIMPLE)
    assert iterations == 64
    slice_us = slice_bytes / 100 / 1000
    expected = 5.0 + (iterations + 1) * slice_us + 2 * SIMPLE.step_overhead_us
    assert cost.time_us("allgather", size, SIMPLE) == pytest.approx(expected, rel=0.02)


def test_fused_relay_still_pipelines_through_the_fifo() -> None:
    """A receive only drains the FIFO, so a tb that receives then sends keeps the link busy too."""
    split = ProgramCost(_switch(3), _chain(fused=False)).time_us("allgather", 64 * MiB, SIMPLE)
    fused = ProgramCost(_switch(3), _chain(fused=True)).time_us("allgather", 64 * MiB, SIMPLE)
    assert fused == pytest.approx(split, rel=0.02)


def test_ring_fixture_runs_and_respects_the_bound() -> None:
    algo = read_xml((FIXTURES / "ring_allgather_4.xml").read_text(), "ring_allgather_4.xml")
    cost = ProgramCost(_switch(4), algo)
    small, large = cost.time_us("allgather", 4096, SIMPLE), cost.time_us("allgather", 2**30, SIMPLE)
    assert small < large
    assert 2**30 / large / 1000 <= 4 * 100 / 3  # never faster than the allgather bound


def test_wrong_collective_and_deadlock_are_input_errors() -> None:
    cost = ProgramCost(_switch(3), _chain(fused=False))
    with pytest.raises(InputError, match="--coll allgather"):
        cost.time_us("allreduce", MiB, SIMPLE)
    stuck = _chain(fused=False)
    stuck.gpus[2].tbs[0].steps.append(_step("r", 1))  # a receive nobody sends
    with pytest.raises(InputError, match="deadlocks"):
        ProgramCost(_switch(3), stuck).time_us("allgather", MiB, SIMPLE)


def star_allgather(num_gpus: int) -> Algorithm:
    """The optimal allgather on one switch: every GPU sends its chunk straight to every other GPU."""
    gpus = []
    for g in range(num_gpus):
        peers = [p for p in range(num_gpus) if p != g]
        sends = [Threadblock(i, p, -1, 0, [Step(0, "s", "i", 0, "o", g, 1)]) for i, p in enumerate(peers)]
        receives = [
            Threadblock(len(peers) + i, -1, p, 0, [Step(0, "r", "o", p, "o", p, 1)])
            for i, p in enumerate(peers)
        ]
        copy = Threadblock(2 * len(peers), -1, -1, 0, [Step(0, "cpy", "i", 0, "o", g, 1)])
        gpus.append(GpuProgram(g, 1, num_gpus, 0, [*sends, *receives, copy]))
    return Algorithm("star", "Simple", 1, num_gpus, num_gpus, "allgather", 0, 1, 0, 0, gpus)


def test_simulation_of_an_optimal_program_converges_to_the_bound() -> None:
    m = model("dgx-a100", 1)
    cost = ProgramCost(m.network, star_allgather(8))
    for size, low in ((2**30, 0.98), (2**20, 0.2)):
        algbw = size / cost.time_us("allgather", size, SIMPLE) / 1000
        assert low * float(m.bound_algbw("allgather")) <= algbw <= float(m.bound_algbw("allgather"))


def test_cli_simulates_a_schedule_file(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from collc.cli import main
    from collc.msccl.writer import to_xml

    schedule = tmp_path / "star.xml"
    schedule.write_text(to_xml(star_allgather(8)))
    result = CliRunner().invoke(main, ["simulate", "dgx-a100", str(schedule), "--sizes", "1GiB", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)["rows"][0]
    assert set(row) == {"bytes", "collc", "ring", "bound"}
    assert row["collc"]["algbw"] >= 0.98 * row["bound"]["algbw"]


@pytest.mark.parametrize("name", ["dgx-a100", "dgx-h100-rail"])
@pytest.mark.parametrize("collective", ["allgather", "reducescatter", "allreduce"])
def test_simulation_of_lowered_single_box_programs_converges_to_the_bound(name: str, collective: str) -> None:
    """collc's own lowering on one switch box: within 2 % of the bound at 1 GiB.

    (Programs whose threadblocks mix steps of several tree depths do not pipeline across iterations;
    docs/cost-model.md §4 gives the figures for the multi-box and MI250 presets.)
    """
    from collc.lowering.limits import limits_for
    from collc.lowering.lower import LoweringOptions, lower

    m = model(name, 1)
    limits = limits_for(m.topology, m.topology.metadata.runtime or "msccl-executor")
    program = lower(m.solution.forest, LoweringOptions(coll=collective), limits).algorithm
    algbw = 2**30 / m.collc(program).time_us(collective, 2**30, SIMPLE) / 1000
    bound = float(m.bound_algbw(collective))
    assert 0.98 * bound <= algbw <= bound


def test_cross_box_connections_follow_the_rail_their_channel_selects() -> None:
    """docs/lowering.md (Rails): channel parity picks ib.even / ib.odd on 2×8 A100."""
    from collc.predict.des import _route

    network = model("dgx-a100", 2).network
    planes = ["ib.even", "ib.odd"]
    assert _route(network, (0, 8, 0), planes) == ("b0.gpu0", "b0.nic0", "ib.even", "b1.nic0", "b1.gpu0")
    odd = _route(network, (0, 8, 1), planes)
    assert "ib.odd" in odd and "ib.even" not in odd and (odd[0], odd[-1]) == ("b0.gpu0", "b1.gpu0")
    assert _route(network, (0, 1, 1), planes) == ("b0.gpu0", "b0.nvswitch", "b0.gpu1")  # inside a box


def test_unpaired_connections_and_dangling_dependencies_are_input_errors() -> None:
    lonely = _chain(fused=False)
    lonely.gpus[2].tbs.clear()  # GPU 1 still sends to GPU 2
    with pytest.raises(InputError, match="nobody receives"):
        ProgramCost(_switch(3), lonely)
    dangling = _chain(fused=False)
    dangling.gpus[1].tbs[1].steps[0].depid = 7
    with pytest.raises(InputError, match="tb 7, which does not exist"):
        ProgramCost(_switch(3), dangling)
