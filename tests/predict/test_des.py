import json
import pickle
import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from collc.compile import CompileOptions, compile_schedule
from collc.errors import InputError
from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.predict import des
from collc.predict.des import ProgramCost
from collc.predict.fairshare import max_min_rates
from collc.predict.network import Network
from collc.predict.params import COLLECTIVES, PROTOCOLS
from collc.topology.model import Link, Node, Topology
from compiled import preset_compile, same_worker

from .models import model

SIMPLE = PROTOCOLS["Simple"]
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
    bandwidth = np.array([10.0, 100.0, np.inf])  # arc 2 is the padding arc
    arcs = np.array([[0, 1], [0, 2], [1, 2]])
    assert list(max_min_rates(arcs, bandwidth)) == [5.0, 5.0, 95.0]


def test_store_and_forward_chain_pipelines_over_iterations() -> None:
    """Separate tbs on the relay: time = (iterations + 1) call times, plus the per-hop overheads.

    A call crosses its 100 GB/s links at one threadblock's copy rate, the slower of the two."""
    cost = ProgramCost(_switch(3), _chain(fused=False))
    size = 64 * MiB  # one chunk of 64 MiB: the runtime's loop runs 32 calls of 2 MiB (Simple)
    assert cost.iterations(size, SIMPLE) == (32, 32, 2 * MiB)
    call_us = 2 * MiB / min(100, SIMPLE.tb_rate_gbps) / 1000
    expected = 5.0 + (32 + 1) * call_us + 2 * SIMPLE.step_overhead_us
    assert cost.time_us("allgather", size, SIMPLE) == pytest.approx(expected, rel=0.02)


def test_iterations_beyond_the_budget_are_added_at_the_steady_period(monkeypatch) -> None:
    """Simulating 4 of 32 iterations and extrapolating gives the time of simulating all 32."""
    exact = ProgramCost(_switch(3), _chain(fused=False)).time_us("allgather", 64 * MiB, SIMPLE)
    monkeypatch.setattr(des, "STEP_BUDGET", 1)
    cost = ProgramCost(_switch(3), _chain(fused=False))
    assert cost.iterations(64 * MiB, SIMPLE)[:2] == (des.MIN_ITERATIONS, 32)
    assert cost.time_us("allgather", 64 * MiB, SIMPLE) == pytest.approx(exact, rel=1e-6)


def test_extrapolation_follows_threadblocks_that_fall_behind(monkeypatch) -> None:
    """4x8 V100 allgather at k = 1, 1 GiB: 256 iterations, 99 of them within the budget. Some
    threadblocks fall a little further behind every iteration and the run's last iterations are them
    catching up, so a period read off those iterations predicted 62.6 GB/s where simulating all 256
    gives 57.2; the slope between runs of 49 and 99 iterations gives the full run's time."""
    topology = model("dgx1", 4).topology
    result = compile_schedule(topology, CompileOptions(coll="allgather", k=1, buffsize=256 << 10))
    network = Network.of(topology)
    extrapolated = ProgramCost(network, result.algorithm).time_us("allgather", 2**30, result.proto)
    monkeypatch.setattr(des, "STEP_BUDGET", 10**9)
    full = ProgramCost(network, result.algorithm)
    assert full.iterations(2**30, result.proto)[0] == 256
    assert extrapolated == pytest.approx(full.time_us("allgather", 2**30, result.proto), rel=0.005)


def test_fused_relay_still_pipelines_through_the_fifo() -> None:
    """A receive only drains the FIFO, so a tb that receives then sends keeps the link busy too."""
    split = ProgramCost(_switch(3), _chain(fused=False)).time_us("allgather", 64 * MiB, SIMPLE)
    fused = ProgramCost(_switch(3), _chain(fused=True)).time_us("allgather", 64 * MiB, SIMPLE)
    assert fused == pytest.approx(split, rel=0.02)


def ring_allgather(num_gpus: int) -> Algorithm:
    """The ring allgather: every GPU sends its chunk to the next one, then forwards what it receives."""
    gpus = []
    for g in range(num_gpus):
        nxt, prev = (g + 1) % num_gpus, (g - 1) % num_gpus
        steps = [Step(0, "cpy", "i", 0, "o", g, 1), Step(1, "s", "i", 0, "o", g, 1)]
        for hop in range(1, num_gpus):
            chunk = (g - hop) % num_gpus
            steps.append(Step(len(steps), "r", "o", chunk, "o", chunk, 1))
            if hop < num_gpus - 1:
                steps.append(Step(len(steps), "s", "o", chunk, "o", chunk, 1))
        gpus.append(GpuProgram(g, 1, num_gpus, 0, [Threadblock(0, nxt, prev, 0, steps)]))
    return Algorithm("ring", "Simple", 1, num_gpus, num_gpus, "allgather", 0, 1, 0, 0, gpus)


def test_ring_runs_and_respects_the_bound() -> None:
    cost = ProgramCost(_switch(4), ring_allgather(4))
    small, large = cost.time_us("allgather", 4096, SIMPLE), cost.time_us("allgather", 2**30, SIMPLE)
    assert small < large
    assert 2**30 / large / 1000 <= 4 * 100 / 3  # never faster than the allgather bound


def test_a_wrong_collective_is_an_input_error_and_a_deadlock_a_verdict() -> None:
    cost = ProgramCost(_switch(3), _chain(fused=False))
    with pytest.raises(InputError, match="--coll allgather"):
        cost.time_us("allreduce", MiB, SIMPLE)
    stuck = _chain(fused=False)
    stuck.gpus[2].tbs[0].steps.append(_step("r", 1))  # a receive nobody sends
    with pytest.raises(des.Deadlock, match="deadlocks") as caught:
        ProgramCost(_switch(3), stuck).time_us("allgather", MiB, SIMPLE)
    assert caught.value.exit_code == 1  # as collc verify's deadlock; 2 is for unreadable input


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


CONVERGING = [
    *(
        (name, 1, coll)
        for name in ("dgx-a100", "dgx-h100-rail", "dgx-h100", "dgx-h200", "mi300x")
        for coll in COLLECTIVES
    ),
    *(("dgx-a100", 2, coll) for coll in ("allgather", "allreduce")),
    ("dgx-h100-rail", 2, "allgather"),
    ("dgx-a100", 2, "reducescatter"),
    ("dgx-h100-rail", 2, "reducescatter"),
    # deep trees across boxes, at the 256 KiB buffer compile deploys for them (docs/compile.md §3)
    ("dgx-h100-rail", 4, "allgather"),  # 0.991 (0.960)
    ("dgx-h100-rail", 4, "allreduce"),  # 0.991 (0.948)
    ("dgx-h100-rail", 4, "reducescatter"),  # 0.989 (0.950)
]
# Where the simulated program of `collc compile` is still more than 2 % below the bound at 1 GiB
# (docs/cost-model.md §4, docs/lowering.md §10; measured sim/bound in the comment). Strict: a fix
# that makes one of them converge fails here until it moves to CONVERGING. DGX-1 and 1x16 MI250 are
# capped by their k: no power-of-two k up to 16 is within 1.75 % of the optimum (cost-model §4;
# the exact ceilings, also 2x16 MI250's, are tests/solver/test_bound.py::POWER_OF_TWO_CEILING).
NOT_YET = [
    # 0.964: its busiest lanes carry more than a threadblock moves at 256 KiB with the slice handshake
    ("dgx-h100-rail", 2, "allreduce"),
    ("mi250", 1, "allgather"),  # 0.950 (0.909 at the default buffer)
    ("dgx1", 1, "allgather"),  # 0.978 (0.915; no file is written: NCCL's rings reach 171.0 of 171.4)
]


def _compiled_fraction_of_bound(
    name: str, boxes: int, collective: str, k: int | None = None, nbytes: int = 2**30
) -> float:
    m = model(name, boxes)
    # A forced k may be predicted to win at no size; the sizes the file serves do not matter here.
    if k is None:
        result = preset_compile(name, boxes, collective)
    else:
        options = CompileOptions(coll=collective, k=k, user_range=True, force=True)
        result = compile_schedule(m.topology, options)
    # as deployed: at the connection buffer compile chose for it
    algbw = nbytes / m.collc(result.algorithm).time_us(collective, nbytes, result.proto) / 1000
    return algbw / float(m.bound_algbw(collective))


def _on_its_worker(case: tuple[str, int, str]) -> object:
    """A (preset, boxes, collective) case, run where the other readers of its compile run."""
    return pytest.param(*case, marks=same_worker(*case[:2]))


def test_extrapolated_iterations_never_beat_the_busiest_link() -> None:
    """1×16 MI250 allgather at k = 3, 8 GiB: 85 iterations, about 23 simulated. Threadblocks that ran
    ahead made the last simulated ones look short; extrapolating that period gave 1.037 of the bound."""
    assert _compiled_fraction_of_bound("mi250", 1, "allgather", k=3, nbytes=8 * 2**30) <= 1


@same_worker("dgx-h100-rail", 4)
def test_nic_feeding_lanes_keep_reduce_scatter_on_rails_near_the_bound() -> None:
    """docs/lowering.md §5: 4×8 H100 rail reduce-scatter was 0.768 with equal lanes, 0.936 with them."""
    assert _compiled_fraction_of_bound("dgx-h100-rail", 4, "reducescatter") >= 0.93


def test_one_chunk_steps_in_data_order_pipeline_large_k() -> None:
    """docs/lowering.md §2 and §4: DGX-1 allgather at its optimal k = 6 was 0.894 with whole-tree
    steps in tree order, 0.927 with one-chunk steps, 0.943 with them in data order."""
    assert _compiled_fraction_of_bound("dgx1", 1, "allgather", k=6) >= 0.94


@pytest.mark.parametrize(("name", "boxes", "collective"), [_on_its_worker(case) for case in CONVERGING])
def test_simulation_of_compiled_programs_converges_to_the_bound(
    name: str, boxes: int, collective: str
) -> None:
    """What `collc compile` emits, simulated at 1 GiB (16-64 pipelining iterations): within 2 %."""
    assert 0.98 <= _compiled_fraction_of_bound(name, boxes, collective) <= 1


@pytest.mark.xfail(strict=True, reason="open: event simulation more than 2 % below the bound")
@pytest.mark.parametrize(("name", "boxes", "collective"), [_on_its_worker(case) for case in NOT_YET])
def test_simulation_of_compiled_programs_not_yet_within_two_percent(
    name: str, boxes: int, collective: str
) -> None:
    assert _compiled_fraction_of_bound(name, boxes, collective) >= 0.98


def test_cross_box_connections_follow_the_rail_their_channel_selects() -> None:
    """docs/lowering.md (Rails): channel parity picks ib.even / ib.odd on 2×8 A100."""
    from collc.predict.des import _route

    network = model("dgx-a100", 2).network
    planes = ["ib.even", "ib.odd"]
    spread: dict[tuple[str, str], float] = {}
    assert _route(network, (0, 8, 0), planes, spread, 1.0) == (
        "b0.gpu0",
        "b0.nic0",
        "ib.even",
        "b1.nic0",
        "b1.gpu0",
    )
    odd = _route(network, (0, 8, 1), planes, spread, 1.0)
    assert "ib.odd" in odd and "ib.even" not in odd and (odd[0], odd[-1]) == ("b0.gpu0", "b1.gpu0")
    assert _route(network, (0, 1, 1), planes, spread, 1.0) == (
        "b0.gpu0",
        "b0.nvswitch",
        "b0.gpu1",
    )  # inside a box


def test_unpaired_connections_and_dangling_dependencies_are_input_errors() -> None:
    lonely = _chain(fused=False)
    lonely.gpus[2].tbs.clear()  # GPU 1 still sends to GPU 2
    with pytest.raises(InputError, match="nobody receives"):
        ProgramCost(_switch(3), lonely)
    dangling = _chain(fused=False)
    dangling.gpus[1].tbs[1].steps[0].depid = 7
    with pytest.raises(InputError, match="tb 7, which does not exist"):
        ProgramCost(_switch(3), dangling)


def test_a_dependency_on_a_threadblock_only_another_gpu_has_is_an_input_error() -> None:
    program = _chain(fused=False)
    assert len(program.gpus[0].tbs) > len(program.gpus[2].tbs) - 1
    program.gpus[2].tbs[0].steps[0].depid = len(program.gpus[2].tbs)  # a tb id GPU 0 has
    with pytest.raises(InputError, match=f"gpu 2 tb 0 depends on tb {len(program.gpus[2].tbs)}, which"):
        ProgramCost(_switch(3), program)


def test_threadblock_ids_far_apart_are_looked_up_without_a_table_as_wide_as_the_largest() -> None:
    """A file's threadblock ids need not be dense before it is checked: GPU 1's relay threadblock
    numbered 10**15 (and its step depending on it) simulates as when it is numbered 0, and a
    dependency on an id next to it is still one on a threadblock that does not exist."""
    dense = _chain(fused=False)
    sparse = _chain(fused=False)
    relay = sparse.gpus[1].tbs
    relay[0].id = 10**15
    relay[1].steps[0].depid = 10**15
    expected = ProgramCost(_switch(3), dense).time_us("allgather", 64 * MiB, SIMPLE)
    assert ProgramCost(_switch(3), sparse).time_us("allgather", 64 * MiB, SIMPLE) == expected
    relay[1].steps[0].depid = 10**15 + 1
    with pytest.raises(InputError, match=f"gpu 1 tb 1 depends on tb {10**15 + 1}, which does not exist"):
        ProgramCost(_switch(3), sparse)


def _waiting_everywhere() -> Algorithm:
    """The two-threadblock chain with every step waiting on a threadblock of its GPU (itself where
    it is alone)."""
    algo = _chain(fused=False)
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            for index, step in enumerate(tb.steps):
                step.depid, step.deps = (tb.id + 1 + index) % len(gpu.tbs), 0
    return algo


@pytest.mark.parametrize("program", ["chain", "compiled"])
def test_the_threadblocks_waiting_on_each_are_those_whose_steps_name_it(program: str) -> None:
    """The step table's dependents (dep_ptr/dep_idx) against sets built step by step: every other
    threadblock of the GPU one of whose steps depends on it, once, in increasing order (a compiled
    1x8 V100 allreduce has its own dependencies)."""
    if program == "chain":
        algo, network = _waiting_everywhere(), _switch(3)
    else:
        topology = model("dgx1", 1).topology
        algo = compile_schedule(topology, CompileOptions(coll="allreduce", k=2, lanes="rate")).algorithm
        network = Network.of(topology)
    cost = ProgramCost(network, algo)
    index = {(tb.gpu, tb.tb): i for i, tb in enumerate(cost.tbs)}
    expected: list[set[int]] = [set() for _ in cost.tbs]
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            for step in tb.steps:
                if step.depid >= 0 and step.depid != tb.id:
                    expected[index[(gpu.id, step.depid)]].add(index[(gpu.id, tb.id)])
    table = cost._table
    assert any(expected)
    assert [
        table.dep_idx[table.dep_ptr[i] : table.dep_ptr[i + 1]].tolist() for i in range(len(cost.tbs))
    ] == [sorted(waiting) for waiting in expected]


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_runs_made_side_by_side_give_the_answers_of_runs_made_one_by_one(monkeypatch, threads: int) -> None:
    """prefetch runs the simulations a size needs on several threads; every time is the same to the
    last bit as one thread's, and a size it covered needs no further run."""
    monkeypatch.setattr(des, "STEP_BUDGET", 1)  # two runs (n and n/2 iterations) per large size
    sizes = [MiB, 64 * MiB, 2**30]
    alone = ProgramCost(_switch(4), ring_allgather(4))
    expected = [alone.time_us("allgather", size, SIMPLE) for size in sizes]
    monkeypatch.setattr(des, "_threads", threads)
    cost = ProgramCost(_switch(4), ring_allgather(4))
    runs = des.runs_of(cost, "allgather", sizes, SIMPLE)
    assert len(runs) == 5  # 1 MiB fits one run; 64 MiB and 1 GiB need two each
    des.prefetch(runs)
    assert des.runs_of(cost, "allgather", sizes, SIMPLE) == []
    monkeypatch.setattr(cost, "_run", None)  # nothing is simulated again
    assert [cost.time_us("allgather", size, SIMPLE) for size in sizes] == expected


def test_a_run_made_ahead_that_fails_raises_only_where_it_is_needed(monkeypatch) -> None:
    """A speculative prefetch of a program that deadlocks leaves the run unmade; the simulation
    that needs it raises."""
    monkeypatch.setattr(des, "_threads", 2)
    stuck = _chain(fused=False)
    stuck.gpus[2].tbs[0].steps.append(_step("r", 1))
    cost = ProgramCost(_switch(3), stuck)
    runs = des.runs_of(cost, "allgather", [MiB, 2**30], SIMPLE)
    des.prefetch(runs)
    assert des.runs_of(cost, "allgather", [MiB, 2**30], SIMPLE) == runs
    with pytest.raises(des.Deadlock, match="deadlocks"):
        des.prefetch(runs, strict=True)


def test_runs_started_ahead_give_the_answers_of_runs_made_when_needed(monkeypatch) -> None:
    """start_ahead simulates on a spare thread while the caller goes on; the times are the same to
    the last bit, nothing is simulated twice, and a program with runs in flight pickles (once they
    are done) with their results."""
    monkeypatch.setattr(des, "STEP_BUDGET", 1)
    sizes = [MiB, 64 * MiB, 2**30]
    alone = ProgramCost(_switch(4), ring_allgather(4))
    expected = [alone.time_us("allgather", size, SIMPLE) for size in sizes]
    monkeypatch.setattr(des, "_threads", 2)
    cost = ProgramCost(_switch(4), ring_allgather(4))
    runs = des.runs_of(cost, "allgather", sizes, SIMPLE)
    des.start_ahead(runs)
    assert set(cost._ahead) == {run for _, run in runs}
    # a daemon thread: the interpreter does not wait at exit for what is queued there (Ctrl-C)
    assert [t.daemon for t in threading.enumerate() if t.name == "collc-simulate-ahead"] == [True]
    copy = pickle.loads(pickle.dumps(cost))
    assert copy._ahead == {} and set(copy._runs) == {run for _, run in runs}
    monkeypatch.setattr(cost, "_run", None)  # nothing is simulated again
    assert [cost.time_us("allgather", size, SIMPLE) for size in sizes] == expected
    assert [copy.time_us("allgather", size, SIMPLE) for size in sizes] == expected


def test_a_run_in_flight_ahead_is_waited_for_and_a_queued_one_taken_back(monkeypatch) -> None:
    """The spare thread runs one simulation at a time: ensure waits for the one it is making (never
    making it twice) and makes a queued one itself, so a caller with more threads is not held to the
    spare thread's queue."""
    monkeypatch.setattr(des, "STEP_BUDGET", 1)
    monkeypatch.setattr(des, "_threads", 2)
    cost = ProgramCost(_switch(4), ring_allgather(4))
    first, second = (run for _, run in des.runs_of(cost, "allgather", [2**30], SIMPLE))
    made: list[tuple[des.Run, str]] = []
    started, gate = threading.Event(), threading.Event()
    real = cost._end

    def held(run: des.Run) -> float:
        made.append((run, threading.current_thread().name))
        started.set()
        gate.wait(10)
        return real(run)

    monkeypatch.setattr(cost, "_end", held)
    des.start_ahead([(cost, first), (cost, second)])
    assert started.wait(10)
    cost.ensure(second)  # queued behind the held one: taken back and made here
    threading.Timer(0.05, gate.set).start()
    cost.ensure(first)  # in flight: waited for
    assert [(run, name.startswith("collc-simulate-ahead")) for run, name in made] == [
        (first, True),
        (second, False),
    ]


def test_nothing_runs_ahead_where_one_simulation_runs_at_a_time(monkeypatch) -> None:
    """A service worker held to one CPU (set_simulation_threads(1)) keeps to it."""
    monkeypatch.setattr(des, "_threads", 1)
    cost = ProgramCost(_switch(4), ring_allgather(4))
    des.start_ahead(des.runs_of(cost, "allgather", [MiB], SIMPLE))
    assert cost._ahead == {} and cost._runs == {}


def test_a_run_started_ahead_that_fails_raises_where_it_is_needed(monkeypatch) -> None:
    monkeypatch.setattr(des, "_threads", 2)
    stuck = _chain(fused=False)
    stuck.gpus[2].tbs[0].steps.append(_step("r", 1))
    cost = ProgramCost(_switch(3), stuck)
    runs = des.runs_of(cost, "allgather", [MiB], SIMPLE)
    des.start_ahead(runs)
    pickle.dumps(cost)  # waits for the failed run, which is left unmade
    with pytest.raises(des.Deadlock, match="deadlocks"):
        cost.time_us("allgather", MiB, SIMPLE)


@pytest.mark.parametrize(
    ("fixture", "over_ring"),
    [
        # Four GPUs per box share two NICs on one PCIe switch and the NICs are the bottleneck: with
        # every GPU's traffic on the first NIC by name the file simulated at 15.9 GB/s of a 32 GB/s
        # bound, below the runtime's ring (18.3); through the NIC each GPU gets, 32.0.
        ("two-nics-per-switch-x2.yaml", 1.5),
        # Two leaves joined by two spines at 2:1: traffic that all took the first spine by name
        # simulated at 98.3 GB/s of a 133.3 bound, below the ring (114.0); spread by load, 132.9.
        ("two-spines.yaml", 1.1),
    ],
)
def test_connections_between_boxes_take_the_nics_and_spines_the_runtime_and_network_give(
    fixture: str, over_ring: float
) -> None:
    from collc.predict.model import TopologyModel
    from collc.topology import load

    topology = load(str(Path(__file__).parent / "fixtures" / fixture))
    result = compile_schedule(topology, CompileOptions(coll="allgather"))
    cost = ProgramCost(Network.of(topology), result.algorithm)
    algbw = 2**30 / cost.time_us("allgather", 2**30, result.proto) / 1000
    m = TopologyModel(topology)
    assert algbw >= 0.97 * float(m.bound_algbw("allgather"))
    assert algbw >= over_ring * float(m.ring.algbw("allgather"))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_sweep_makes_its_sizes_runs_side_by_side_and_reports_what_one_by_one_would(
    monkeypatch, threads: int
) -> None:
    """TopologyModel.sweep makes the simulations of as many sizes as run at once before reporting
    them (so progress still moves size by size); its rows are those of a sweep that simulates
    every size when it reaches it."""
    from collc.predict.model import TopologyModel

    monkeypatch.setattr(des, "STEP_BUDGET", 1)  # two runs per large size
    sizes = [MiB, 4 * MiB, 64 * MiB, 2**30, 2**31]
    topology = _switch(4).topology
    monkeypatch.setattr(des, "_threads", 1)
    alone = TopologyModel(topology).sweep("allgather", sizes, SIMPLE, ring_allgather(4))
    monkeypatch.setattr(des, "_threads", threads)
    batches: list[int] = []
    real_prefetch = des.prefetch

    def counted(runs, **kwargs) -> None:
        batches.append(len(set(runs)))
        real_prefetch(runs, **kwargs)

    monkeypatch.setattr("collc.predict.model.prefetch", counted)
    together = TopologyModel(topology).sweep("allgather", sizes, SIMPLE, ring_allgather(4))
    assert together.to_json() == alone.to_json()
    assert len(batches) == -(-len(sizes) // threads)  # one batch of `threads` sizes at a time
    needed = {
        run for _, run in des.runs_of(ProgramCost(_switch(4), ring_allgather(4)), "allgather", sizes, SIMPLE)
    }
    assert sum(batches) == len(needed)  # every run, each once (large sizes share some)


def test_the_busiest_arc_is_the_one_whose_iteration_load_takes_longest() -> None:
    """ProgramCost.busiest_arc names the arc that bounds every iteration: on a switch where one GPU's
    link is half as fast, that GPU's arcs carry the same 3 chunks of a 4-GPU ring's iteration as the
    others, at 50 GB/s."""
    gpus = [f"g{i}" for i in range(4)]
    nodes = (*(Node(name, "gpu", 0, name) for name in gpus), Node("sw", "switch", 0, "sw"))
    links = tuple(
        Link(name, "sw", Fraction(50 if name == "g2" else 100), latency_us=Fraction(0)) for name in gpus
    )
    cost = ProgramCost(Network.of(Topology("switch", nodes, links, tuple(gpus))), ring_allgather(4))
    assert cost.busiest_arc is not None
    arc, chunks, bandwidth = cost.busiest_arc
    assert "g2" in arc and (chunks, bandwidth) == (3.0, 50.0)
    assert cost.arc_limit_algbw(SIMPLE) == pytest.approx(4 * 50 / 3)


def test_threadblock_finishes_name_the_threadblocks_behind_a_slow_link() -> None:
    """A relay 0 -> 1 -> 2 whose second link runs at a quarter of the first: the threadblocks on that
    link finish every iteration last, the sender upstream runs ahead by the FIFO only, and the latest
    finish of every iteration is what the call's own run records."""
    gpus = ("g0", "g1", "g2")
    nodes = (*(Node(name, "gpu", 0, name) for name in gpus), Node("sw", "switch", 0, "sw"))
    links = tuple(
        Link(name, "sw", Fraction(bandwidth), latency_us=Fraction(0))
        for name, bandwidth in zip(gpus, (100, 100, 10), strict=True)
    )
    cost = ProgramCost(Network.of(Topology("relay", nodes, links, gpus)), _chain(fused=False))
    size = 16 * MiB  # 8 calls of 2 MiB
    finishes = cost.threadblock_finishes(size, SIMPLE)
    iterations, _, call_bytes = cost.iterations(size, SIMPLE)
    assert finishes.shape == (len(cost.tbs), iterations) == (4, 8)
    assert (np.diff(finishes, axis=1) > 0).all()
    whole = cost._run(iterations, call_bytes, SIMPLE)
    assert np.maximum.accumulate(finishes.max(axis=0))[:-1] == pytest.approx(whole[:-1])
    late = {(cost.tbs[i].gpu, cost.tbs[i].tb) for i in np.argsort(-finishes[:, -1])[:2]}
    assert late == {(1, 1), (2, 0)}  # GPU 1's sender and GPU 2's receiver, on the slow link
    slow_call = call_bytes / 10 / 1000  # µs for one call over the 10 GB/s link
    first = next(i for i, tb in enumerate(cost.tbs) if tb.gpu == 0)
    assert finishes[:, -1].max() - finishes[first, -1] >= (SIMPLE.fifo_calls - 1) * slow_call
