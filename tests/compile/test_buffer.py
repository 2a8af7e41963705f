"""The connection buffer (NCCL_BUFFSIZE) as a deployment setting: the pipelining grain of a Simple file.

The model: a smaller buffer cuts every chunk into more, smaller primitive calls, so deep trees fill and
drain in less time. compile simulates the candidates at a few buffers, deploys a smaller one only where
it gains, predicts and verifies the file with it, and says what to set.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.compile import CompileOptions, compile_schedule, driver
from collc.compile.driver import BUFFER_GAIN, WIDE_SEARCH_STEPS, buffer_choices
from collc.msccl.reader import read_xml
from collc.predict.des import ProgramCost
from collc.predict.model import TopologyModel
from collc.predict.params import DEFAULT_BUFFER_BYTES, PROTOCOLS, simple
from collc.topology import load
from compiled import preset_compile, same_worker

KIB, MIB, GIB = 2**10, 2**20, 2**30
ROOT = Path(__file__).resolve().parents[1]
# two boxes of four GPUs behind 10 GB/s ports: allreduce trees cross the network twice
SLOW_NIC = ROOT / "lowering" / "fixtures" / "two-boxes-slow-nic.yaml"


def test_the_buffer_sets_the_simple_grain():
    assert simple() == PROTOCOLS["Simple"]
    quarter = simple(MIB)
    assert (quarter.slice_bytes, quarter.call_bytes, quarter.fifo_calls) == (128 * KIB, 512 * KIB, 2)


def test_a_finer_grain_shortens_the_fill_of_a_deep_program():
    text = gzip.decompress((ROOT / "predict" / "fixtures" / "mi250x1-allreduce.xml.gz").read_bytes()).decode()
    algo = read_xml(text)
    model = TopologyModel(load("mi250", {"boxes": "1"}))
    cost = ProgramCost(model.network, algo)
    coarse = cost.time_us(algo.coll, 64 * MIB, simple())
    fine = cost.time_us(algo.coll, 64 * MIB, simple(256 * KIB))
    # 64 MiB is 2 calls of every chunk at 4 MiB, 32 at 256 KiB: 64.0 -> 124.1 GB/s. At 1 GiB the
    # handshake of the smaller slices costs more than the fill saves (145.3 -> 141.2 GB/s).
    assert fine < coarse * 0.6
    assert cost.time_us(algo.coll, 64 * MIB, simple(DEFAULT_BUFFER_BYTES)) == coarse


def test_buffer_choices():
    assert buffer_choices(CompileOptions())[0] is None and len(buffer_choices(CompileOptions())) > 1
    assert buffer_choices(CompileOptions(proto="LL")) == (None,)
    assert buffer_choices(CompileOptions(runtime="mscclpp")) == (None,)  # a plan has its own units
    assert len(buffer_choices(CompileOptions(runtime="rccl"))) > 1
    assert buffer_choices(CompileOptions(buffsize=DEFAULT_BUFFER_BYTES)) == (None,)
    assert buffer_choices(CompileOptions(buffsize=MIB)) == (MIB,)


def _program_of(steps: int) -> SimpleNamespace:
    """A stand-in candidate whose program has ``steps`` steps."""
    return SimpleNamespace(lowered=SimpleNamespace(usage=SimpleNamespace(total_steps=steps)))


def test_a_program_small_enough_for_the_wide_search_is_also_tried_at_512_kib():
    options = CompileOptions()
    assert 512 * KIB in buffer_choices(options, wide=True) and 512 * KIB not in buffer_choices(options)
    assert driver._buffers(options, _program_of(WIDE_SEARCH_STEPS)) == buffer_choices(options, wide=True)
    assert driver._buffers(options, _program_of(WIDE_SEARCH_STEPS + 1)) == buffer_choices(options)
    assert buffer_choices(CompileOptions(buffsize=MIB), wide=True) == (MIB,)  # the user's buffer only


@same_worker("dgx-a100", 2)
def test_the_512_kib_grain_is_deployed_where_it_delivers_most():
    """2x8 A100 allreduce (the README's file): at 512 KiB the same k = 1 file delivers more at 1 MiB
    (41.7 against 40.7 GB/s at 256 KiB) and as much at 1 GiB."""
    tuned = preset_compile("dgx-a100", 2, "allreduce")
    quarter = compile_schedule(load("dgx-a100", {"boxes": "2"}), CompileOptions(buffsize=256 * KIB))
    assert tuned.buffer_bytes == 512 * KIB and quarter.buffer_bytes == 256 * KIB
    assert tuned.predicted[0].nbytes == MIB and tuned.predicted[0].algbw > quarter.predicted[0].algbw
    assert tuned.predicted[-1].algbw >= quarter.predicted[-1].algbw * 0.99


def test_compile_deploys_a_smaller_buffer_only_where_it_gains():
    topology = load(SLOW_NIC)
    # the k the search finds: 256 KiB gains 2.1 % at 64 MiB (at k = 1 and 2 the slice handshake of
    # the smaller buffer costs what its finer grain saves, and the default is kept)
    tuned = compile_schedule(topology, CompileOptions())
    plain = compile_schedule(topology, CompileOptions(buffsize=DEFAULT_BUFFER_BYTES))
    assert plain.buffer_bytes is None and tuned.buffer_bytes is not None
    assert tuned.buffer_bytes < DEFAULT_BUFFER_BYTES and tuned.proto == simple(tuned.buffer_bytes)
    gains = [
        fine.algbw / coarse.algbw
        for fine, coarse in zip(tuned.predicted, plain.predicted, strict=True)
        if fine.algbw and coarse.algbw
    ]
    assert max(gains) >= 1 + float(BUFFER_GAIN)
    assert any("NCCL_BUFFSIZE=" in note for note in tuned.notes)


def test_the_report_and_deploy_lines_name_the_buffer(tmp_path):
    out = tmp_path / "a.xml"
    result = CliRunner().invoke(
        main, ["compile", str(SLOW_NIC), "--buffsize", "1MiB", "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["buffsize"] == MIB
    text = CliRunner().invoke(main, ["compile", str(SLOW_NIC), "--buffsize", "1MiB", "-o", str(out)]).output
    assert f"export NCCL_BUFFSIZE={MIB}" in text and "NCCL_BUFFSIZE=1MiB (predicted and verified" in text
    default = CliRunner().invoke(main, ["compile", str(SLOW_NIC), "--buffsize", "4MiB", "-o", str(out)])
    assert "NCCL_BUFFSIZE" not in default.output and "the runtime's default for Simple" in default.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--buffsize", "1000"], "--buffsize '1000' must be at least 65536 bytes"),
        (["--buffsize", "100000"], "not a multiple of 4 KiB"),
        (["--buffsize", "1MiB", "--proto", "LL"], "NCCL_BUFFSIZE, the Simple protocol's buffer"),
    ],
)
def test_bad_buffers_are_input_errors(tmp_path, args, message):
    out = tmp_path / "a.xml"
    result = CliRunner().invoke(main, ["compile", str(SLOW_NIC), *args, "-o", str(out)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert not out.exists()


def test_simulate_takes_the_buffer_the_file_runs_with(tmp_path):
    out = tmp_path / "a.xml"
    CliRunner().invoke(main, ["compile", str(SLOW_NIC), "--k", "1", "--buffsize", "4MiB", "-o", str(out)])

    def algbw(*extra: str) -> float:
        result = CliRunner().invoke(
            main, ["simulate", str(SLOW_NIC), str(out), "--sizes", "64MiB", "--json", *extra]
        )
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["rows"][0]["collc"]["algbw"]

    assert algbw("--buffsize", "256KiB") > algbw() * 1.02


def test_finer_grains_are_simulated_for_the_close_candidates_only():
    """1x16 MI250 reduce-scatter: once the search is done, the candidates within EQUIVALENT of the
    fastest may be simulated at 128 KiB as well, and the file is deployed there: 330.0 GB/s at 1 GiB
    (0.967 of the power-of-two bound, and used there) where the best file at the coarser grains
    reached 314.7 and lost to RCCL's ring (316.4). The other candidates never get the finer grain."""
    topology = load("mi250", {"boxes": "1"})
    state = driver.begin(topology, CompileOptions(coll="reducescatter"))
    while state.result is None:
        driver.advance(state)
    assert state.refining and state.result.buffer_bytes == 128 * KIB
    close = {id(item.lowered) for item in driver._close(state)}
    assert 0 < len(close) < len(state.fitted)
    refined = {
        id(item.lowered)
        for item in state.fitted
        for buffer in driver.FINE_BUFFER_CHOICES
        if replace(item, buffer_bytes=buffer).simulated(state.reference)
    }
    assert refined and refined <= close  # a close one whose ceiling there is too low is not simulated
    coarse = compile_schedule(topology, CompileOptions(coll="reducescatter", buffsize=256 * KIB))
    fine_gib, coarse_gib = state.result.predicted[-1], coarse.predicted[-1]
    assert fine_gib.nbytes == GIB and fine_gib.algbw > coarse_gib.algbw * 1.03
    assert state.result.byte_range.holds(GIB) and not coarse.byte_range.holds(GIB)


def test_a_buffer_that_is_not_a_power_of_two_is_cautioned():
    topology = load(SLOW_NIC)
    odd = compile_schedule(topology, CompileOptions(k=1, buffsize=192 * KIB))
    even = compile_schedule(topology, CompileOptions(k=1, buffsize=128 * KIB))
    assert odd.buffer_bytes == 192 * KIB and any("not a power of two" in note for note in odd.notes)
    assert not any("power of two" in note for note in even.notes)
