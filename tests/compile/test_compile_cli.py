"""`collc compile` through the CLI: the report, the file, errors, determinism, divisibility choices."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from click.testing import CliRunner

from collc.cli import main
from collc.compile import CompileOptions, compile_schedule, driver
from collc.compile.driver import advance, begin, serving
from collc.compile.flags import CompileFlags
from collc.compile.outlook import grid
from collc.compile.report import report_lines
from collc.errors import InputError
from collc.lowering import coll_algbw
from collc.lowering.layout import spread_shares
from collc.msccl.reader import read_xml
from collc.predict.params import DEFAULT_BUFFER_BYTES
from collc.topology import load
from collc.verify import verify_text
from compiled import preset_compile, same_worker
from fabrics import SLOW_NO_WIN, SLOW_RING


def _compile(tmp_path: Path, *args: str):
    out = tmp_path / "schedule.xml"
    result = CliRunner().invoke(main, ["compile", *args, "-o", str(out)])
    return result, out


def test_compile_writes_a_verified_file_and_reports_limits(tmp_path):
    result, out = _compile(tmp_path, "dgx-a100", "--set", "boxes=2")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("<algo ") and text.endswith("</algo>\n")
    assert verify_text(text, str(out), runtime="msccl-executor").ok
    report = result.output
    assert "bound            173.3 GB/s algbw (reduce-scatter + allgather bound of allreduce" in report
    assert "this file's k    171.4 GB/s algbw bound at k = 1 (1.10 % below the bound above)" in report
    assert "optimal)" not in report  # nothing but the bound is called optimal
    assert "event simulation of this file" in report
    assert "2 instance(s)), nchunksperloop = 32" in report and "all powers of two >= 32" in report
    assert "k = 13 (the optimum) would make nchunksperloop = 208" in report
    assert "chose k = 1 (2 instances, lanes split to the threadblock limit) by simulating" in report
    assert "k = 1 preferred to k = 8 (whose bound is 0.90 % higher)" in report
    assert "(limit 108)" in report and "(limit 32)" in report and "(limit 64)" in report
    assert "MSCCL_ALGO_DIR" in report and "NCCL_MSCCL_ENABLE" in report
    # the user's --instances is kept: no candidate is lowered with twice as many
    result, _ = _compile(tmp_path, "dgx-a100", "--set", "boxes=2", "--instances", "1")
    assert result.exit_code == 0, result.output
    assert "1 instance(s)), nchunksperloop = 16" in result.output and "2 instances" not in result.output


def test_nic_feeding_pairs_with_one_transfer_get_a_second_instance_where_it_simulates_faster(
    tmp_path, monkeypatch
):
    # 2x8 A100 reduce-scatter at k = 1 with lanes by rate: every NIC-feeding group carries one chunk
    # at one instance, so its lane cannot be split; two instances give it two (docs/lowering.md §5).
    # The doubled file simulates slower (291.8 against 341.2 GB/s at 1 GiB), so one is kept ...
    args = ("dgx-a100", "--set", "boxes=2", "--coll", "reducescatter", "--lanes", "rate", "--k", "1")
    result, _ = _compile(tmp_path, *args)
    assert result.exit_code == 0, result.output
    assert "1 instance(s)), nchunksperloop = 16" in result.output and "NIC-feeding" not in result.output
    # ... and where it simulates faster (planted: 1.5 times as fast), two are taken, and said so
    real = driver.Fitted.algbw

    def planted(item: driver.Fitted, nbytes: int) -> float:
        return real(item, nbytes) * (1.5 if item.instances == 2 else 1)

    monkeypatch.setattr(driver.Fitted, "algbw", planted)
    result, _ = _compile(tmp_path, *args)
    assert result.exit_code == 0, result.output
    assert "2 instance(s)), nchunksperloop = 32" in result.output
    assert "2 instances: 112 groups of NIC-feeding transfers" in result.output
    result, _ = _compile(tmp_path, *args, "--instances", "1")
    assert result.exit_code == 0, result.output
    assert "1 instance(s)), nchunksperloop = 16" in result.output and "NIC-feeding" not in result.output
    # allreduce has the same feeders in its first half, but is never doubled for them
    args = ("dgx-a100", "--set", "boxes=2", "--coll", "allreduce", "--k", "1", "--lanes", "rate")
    result, _ = _compile(tmp_path, *args)
    assert "1 instance(s)), nchunksperloop = 16" in result.output and "NIC-feeding" not in result.output


def test_rccl_report_names_the_rccl_switches_and_file_has_only_rccl_steps(tmp_path):
    result, out = _compile(tmp_path, "mi250", "--coll", "reducescatter", "--k", "1")
    assert result.exit_code == 0, result.output
    assert "RCCL_MSCCL_FORCE_ENABLE=1" in result.output and "(limit 64)" in result.output
    algo = read_xml(out.read_text(), str(out))
    assert {step.type for gpu in algo.gpus for tb in gpu.tbs for step in tb.steps} <= {
        "s",
        "r",
        "re",
        "cpy",
        "nop",
    }
    assert algo.coll == "reducescatter"


def test_output_is_byte_identical_on_repeat(tmp_path):
    first, out = _compile(tmp_path, "dgx-h100-rail", "--set", "boxes=4", "--k", "1", "--coll", "allgather")
    text = out.read_text()
    again, _ = _compile(tmp_path, "dgx-h100-rail", "--set", "boxes=4", "--k", "1", "--coll", "allgather")
    assert first.exit_code == again.exit_code == 0
    assert out.read_text() == text


def test_options_reach_the_file(tmp_path):
    args = [
        "dgx-a100",
        "--k",
        "1",
        "--proto",
        "LL",
        "--outofplace",
        "--min-bytes",
        "1MiB",
        "--max-bytes",
        "1GiB",
    ]
    result, out = _compile(tmp_path, *args, "--instances", "2", "--coll", "allgather")
    assert result.exit_code == 0, result.output
    algo = read_xml(out.read_text(), str(out))
    assert (algo.proto, algo.inplace, algo.outofplace) == ("LL", 0, 1)
    assert (algo.min_bytes, algo.max_bytes) == (2**20, 2**30)
    assert algo.nchunksperloop == 8 * 1 * 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["dgx-a100", "--k", "2", "--max-k", "4"], "cannot be combined"),
        (["dgx-a100", "--min-bytes", "2MiB", "--max-bytes", "1MiB"], "above --max-bytes"),
        (["dgx-a100", "--min-bytes", "lots"], "--min-bytes 'lots' is not a size"),
        (["dgx-a100", "--instances", "0"], "--instances must be at least 1"),
        (["dgx-a100", "--align", "0"], "--align must be a positive"),
        (["dgx-a100", "--runtime", "mscclpp", "--buffsize", "256KiB"], "which mscclpp does not read"),
        (["no-such-topology"], "no-such-topology"),
    ],
)
def test_bad_options_are_input_errors(tmp_path, args, message):
    result, out = _compile(tmp_path, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not out.exists()


def test_the_users_instances_are_kept_or_the_compile_fails(tmp_path):
    """--instances 100 fits no A100 (112 threadblocks a GPU): it had silently become 50."""
    result, out = _compile(tmp_path, "dgx-a100", "--instances", "100")
    assert result.exit_code == 1 and not out.exists()
    assert result.output.count("k = 1, 100 instance(s): a GPU needs 112 threadblocks") == 1
    assert "50 instance" not in result.output


def test_missing_output_directory_is_an_input_error(tmp_path):
    result = CliRunner().invoke(main, ["compile", "dgx-a100", "-o", str(tmp_path / "nope" / "x.xml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_power_of_two_policy_picks_a_serving_k_and_reports_what_is_given_up():
    topology = load("mi250", {"boxes": "1"})  # optimum k = 3: counts would have to be multiples of 3
    # at the default buffer (4 MiB, 2 MiB calls); finer grains price larger k higher
    result = compile_schedule(topology, CompileOptions(coll="allgather", buffsize=4 << 20))
    assert result.solution.bound.optimal_x_star * 16 == Fraction(2400, 7)
    # powers of two are priced up to 16 although k* = 3; the price (bound discounted for pipelining
    # at 1 GiB) only orders the candidates, the simulation decides
    notes = " ".join(result.notes)
    assert "k = 3 (the optimum) would make nchunksperloop = 48" in notes
    assert re.search(r"chose k = \d+ by simulating the candidates at 1GiB \(algbw GB/s k = 2: ", notes)
    assert result.solution.forest.k in (2, 4, 8) and result.serving.satisfied
    assert result.serving.quantum == result.solution.forest.k
    assert result.file_bound_algbw == result.solution.forest.allgather_algbw < result.bound_algbw
    exact = compile_schedule(topology, CompileOptions(coll="allgather", k=3))
    assert exact.file_bound_algbw == exact.bound_algbw and not exact.serving.satisfied


@same_worker("mi250", 1)
def test_max_bytes_is_the_call_size_k_is_chosen_for():
    """The candidates are simulated at the user's largest size: 8 GiB calls give k = 8's 128 chunks
    32 iterations instead of 4 (302.5 against 299.3 GB/s at 1 GiB)."""
    topology = load("mi250", {"boxes": "1"})
    options = CompileOptions(coll="allgather", max_bytes=8 * 2**30, user_range=True)
    result = compile_schedule(topology, options)
    note = next(note for note in result.notes if note.startswith("chose k = "))
    assert "simulating the candidates at 8GiB" in note
    default = preset_compile("mi250", 1, "allgather")
    at_1gib = next(note for note in default.notes if note.startswith("chose k = "))
    assert "simulating the candidates at 1GiB" in at_1gib

    def k8(text: str) -> float:
        return float(re.search(r"k = 8: ([\d.]+)", text).group(1))

    assert k8(note) > k8(at_1gib)


@same_worker("dgx-a100", 2)
def test_k_is_chosen_for_pipelining_at_the_reference_size_and_k_overrides():
    topology = load("dgx-a100", {"boxes": "2"})
    auto = preset_compile("dgx-a100", 2, "allgather")
    # k = 1 (342.857 GB/s over 32 iterations of a 1 GiB call) is priced above k = 8 (345.946 GB/s over
    # 4); the candidates simulated within 1 % of the fastest at 1 GiB, the one fastest at 64 MiB wins
    note = next(note for note in auto.notes if note.startswith("chose k = "))
    tried = {int(k): float(v) for k, v in re.findall(r"k = (\d+): ([\d.]+)", note)}
    assert 1 in tried and auto.solution.forest.k in tried
    assert tried[auto.solution.forest.k] >= 0.99 * max(tried.values())
    forced = compile_schedule(topology, CompileOptions(coll="allgather", k=8))
    assert forced.file_bound_algbw > auto.file_bound_algbw and forced.serving.satisfied


def test_align_option_serves_the_requested_multiples():
    topology = load("dgx-a100", {"boxes": "2"})
    result = compile_schedule(topology, CompileOptions(coll="allgather", align=13 * 1024))
    assert result.serving.satisfied and 13 * 1024 % result.serving.quantum == 0
    assert serving(16 * 13, "allgather", 16, 13 * 1024).satisfied  # the optimum k = 13 is a candidate
    assert not serving(16 * 13, "allgather", 16, None).satisfied


def test_serving_rules_follow_the_size_multiplier():
    assert serving(128, "allreduce", 16, None).quantum == 128
    assert serving(128, "allgather", 16, None).quantum == 8  # count × 16 divisible by 128
    assert not serving(24 * 4, "allreduce", 24, None).satisfied  # 24 GPUs: never a power of two
    assert serving(24 * 4, "allreduce", 24, 3 * 2**10).satisfied


def test_serving_is_described_with_the_count_in_the_right_number():
    """A file of 4 chunks on 4 GPUs serves every allgather count: "a multiple of 1 elements"."""
    assert serving(4, "allgather", 4, None).describe() == (
        "every count that is a multiple of 1 element (all powers of two >= 1)"
    )
    assert serving(128, "allreduce", 16, None).describe() == (
        "every count that is a multiple of 128 elements (all powers of two >= 128)"
    )


def test_an_allreduce_on_a_gpu_count_that_is_no_power_of_two_shares_a_power_of_two_loop():
    """On 3 GPUs (as on 24) N·k chunks never divide a power of two, so a file with equal shares runs
    for no power-of-two count. The roots share 8 chunks as 2, 3, 3 instead: the file serves every
    power of two from 8 elements, and the report says how the loop is shared. Counted one half after
    the other, the heavier roots' traffic allows 8/9 of the trees' own figure; the file runs its halves
    at once on the line's opposite directions, and its trees' line is what its busiest arc allows
    (50 GB/s, the line's links), a bound it meets. A user's alignment keeps equal shares, and one
    that no k meets is said so."""
    topology = load(str(Path(__file__).parents[1] / "lowering" / "fixtures" / "line3.yaml"))
    one_way = CompileOptions(coll="allreduce", k=1, lanes="rate", runtime="msccl-executor")  # no variants
    result = compile_schedule(topology, one_way)
    assert result.algorithm.nchunksperloop == 8 and result.loop_shares == (2, 3, 3)
    assert result.serving.satisfied and result.serving.quantum == 8
    forest, arcs = result.solution.forest, topology.arc_bandwidths()
    equal = coll_algbw(forest, "allreduce")
    shared = coll_algbw(forest, "allreduce", shares=(2, 3, 3), arc_bandwidths=arcs)
    assert shared == equal * 8 / 9  # the heavier roots carry 3 of 8 chunks, not 1 of 3
    assert result.file_bound_algbw == 50 >= max(row.algbw for row in result.predicted)
    report = "\n".join(report_lines(result, "x.xml"))
    assert "8 chunks per loop shared 2 or 3 per root (power-of-two counts on 3 GPUs)" in report
    assert {row.nbytes for row in result.predicted} == {1 << 20, 64 << 20, 1 << 30}  # no size moved
    aligned = compile_schedule(topology, replace(one_way, align=3))
    assert aligned.algorithm.nchunksperloop == 3 and aligned.loop_shares is None
    assert aligned.file_bound_algbw == 50 and equal == Fraction(75, 2)  # its halves at once too
    # the search also tries each k with twice the instances (a shared loop times two still serves them)
    # and with twice the chunks per loop, shared 5 or 6 per root at k = 1: the file the pick takes
    # reports its own loop's shares
    auto = compile_schedule(topology, CompileOptions(coll="allreduce", runtime="msccl-executor"))
    assert any("(2 instances, a lane per transfer)" in note for note in auto.notes)
    assert any("k = 1 (16 chunks per loop): " in note for note in auto.notes)
    loop = auto.algorithm.nchunksperloop // auto.instances
    assert auto.loop_shares == spread_shares(3, loop) and sum(auto.loop_shares) == loop
    # at the user's k = 1 the finer loop is written (49.0 GB/s at 1 GiB against 49.3, within the band,
    # and the pick's product over 64 MiB and 1 MiB favours it): its report gives that loop's shares
    finer = compile_schedule(topology, CompileOptions(coll="allreduce", k=1, runtime="msccl-executor"))
    assert finer.algorithm.nchunksperloop // finer.instances == 16 and finer.loop_shares == (5, 5, 6)
    odd = compile_schedule(topology, CompileOptions(coll="allreduce", align=5, runtime="msccl-executor"))
    assert not odd.serving.satisfied and any("--align" in note for note in odd.notes)
    gather = compile_schedule(topology, CompileOptions(coll="allgather", k=1, runtime="msccl-executor"))
    assert gather.algorithm.nchunksperloop == 3 * gather.instances and gather.serving.satisfied
    assert gather.loop_shares is None


@same_worker("mi250", 2)
def test_k_is_chosen_by_simulating_the_candidates():
    """2x16 MI250 on RCCL: the price of a k only orders the candidates (larger k merge more
    threadblocks); the simulation of each candidate at 1 GiB picks the fastest program, and the
    figures it reports are those of each candidate compiled on its own (with the same buffer)."""
    topology = load("mi250", {"boxes": "2"})
    auto = preset_compile("mi250", 2, "allreduce")  # on RCCL, the preset's runtime
    assert auto.runtime == "rccl"
    tried = _simulated_lowerings(auto.notes)
    by_k = {
        int(label.split()[2]): figure for label, figure in sorted(tried.items(), key=lambda item: item[1])
    }
    assert len(by_k) >= 2 and by_k[auto.solution.forest.k] >= 0.97 * max(tried.values())
    other = min(k for k in by_k if k != auto.solution.forest.k)
    buffer = auto.buffer_bytes or DEFAULT_BUFFER_BYTES
    alone = compile_schedule(
        topology, CompileOptions(coll="allreduce", runtime="rccl", k=other, buffsize=buffer)
    )
    again = _simulated_lowerings(alone.notes)
    assert again and all(figure == pytest.approx(tried[label], abs=0.05) for label, figure in again.items())


def _simulated_lowerings(notes: list[str]) -> dict[str, float]:
    """The simulated algbw per lowering that the "chose k = ..." note lists (label -> GB/s)."""
    note = next(note for note in notes if note.startswith("chose k = "))
    return {label: float(value) for label, value in re.findall(r"(k = \d+(?: \([^)]*\))?): ([\d.]+)", note)}


def test_output_does_not_depend_on_the_hash_seed(tmp_path):
    import os
    import subprocess
    import sys

    collc = Path(sys.executable).with_name("collc")
    texts = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}.xml"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        args = [str(collc), "compile", "dgx-a100", "--set", "boxes=2", "--k", "2", "-o", str(out)]
        subprocess.run(args, check=True, capture_output=True, env=env, timeout=120)
        texts.append(out.read_bytes())
    assert texts[0] == texts[1]


def test_a_candidate_whose_busiest_arc_cannot_be_close_is_not_simulated(monkeypatch):
    """1x16 MI250 allreduce on RCCL, with k = 2's ceiling planted at 100 GB/s (its busiest arc allows
    160; the fastest candidate simulates 158.6 at 1 GiB with the 256 KiB buffer compile deploys):
    k = 2 is never simulated with that buffer, the note gives its ceiling, and every simulation stays
    under its candidate's real ceiling."""
    real = driver.Fitted.ceiling.fget
    planted = 100.0

    def ceiling(item: driver.Fitted) -> float:
        return planted if item.solution.forest.k == 2 else real(item)

    monkeypatch.setattr(driver.Fitted, "ceiling", property(ceiling))
    state = begin(load("mi250"), CompileOptions(coll="allreduce", runtime="rccl"))
    while state.best is None:
        advance(state)
    assert state.best.buffer_bytes == 256 << 10 and state.best.solution.forest.k != 2
    twos = [item for item in state.fitted if item.solution.forest.k == 2]
    assert twos and all(proto != state.best.proto for item in twos for _, _, proto in item.predictor._seen)
    others = [item for item in state.fitted if item.solution.forest.k != 2]
    assert all(any(proto == state.best.proto for _, _, proto in item.predictor._seen) for item in others)
    for item in state.fitted:
        for (_, nbytes, _), time_us in item.predictor._seen.items():
            assert nbytes / time_us / 1000 <= real(item)
    note = next(note for note in state.notes if note.startswith("chose k = "))
    assert f"k = 2: at most {planted:.1f}" in note


def test_ceilings_hold_where_an_allreduce_beats_reduce_scatter_plus_allgather():
    """A line of three GPUs: the reduce half runs towards the middle GPU and the broadcast half away
    from it, on the other direction of the same links, so the file beats the reduce-scatter +
    allgather figure (37.5 GB/s); the busiest-arc ceiling still holds, and the report does not call
    that figure optimal."""
    fixture = Path(__file__).resolve().parents[1] / "lowering" / "fixtures" / "line3.yaml"
    state = begin(load(fixture), CompileOptions(coll="allreduce"))
    while state.result is None:
        advance(state)
    best = state.best
    assert best.algbw(2**30) > 1.2 * float(state.result.bound_algbw) == 1.2 * 37.5
    for item in state.fitted:
        for (_, nbytes, _), time_us in item.predictor._seen.items():
            assert nbytes / time_us / 1000 <= item.ceiling
    report = "\n".join(report_lines(state.result, "x.xml"))
    assert "reduce-scatter + allgather bound of allreduce" in report and "optimal bound" not in report
    # every candidate's every simulated size stays under the cut ceiling: 50 GB/s each way per link
    assert state.model.ceiling_algbw("allreduce") == 50
    for item in state.fitted:
        for (_, nbytes, _), time_us in item.predictor._seen.items():
            assert nbytes / time_us / 1000 <= 50 * (1 + 1e-9)


def test_the_allreduce_note_stays_off_other_collectives(tmp_path):
    """Four GPUs on a 10^6 GB/s switch, one of them through a 10^-6 GB/s port: the allgather is
    simulated at its bound to float precision, a hair above it, and its report carried the note on
    allreduce overlapping its halves, which says nothing about an allgather."""
    topology = tmp_path / "ratio.yaml"
    links = [f"  - {{src: r{i}, dst: sw, bandwidth: {1000000 if i < 3 else 0.000001}}}" for i in range(4)]
    nodes = ["  - {name: sw, kind: switch}", *(f"  - {{name: r{i}, kind: gpu}}" for i in range(4))]
    topology.write_text("\n".join(["name: ratio", "nodes:", *nodes, "links:", *links, ""]))
    result = CliRunner().invoke(
        main, ["compile", str(topology), "--coll", "allgather", "-o", str(tmp_path / "ag.xml"), "--json"]
    )
    assert result.exit_code == 0, result.output
    notes = json.loads(result.output)["notes"]
    assert not any("reduce-scatter + allgather bound" in note for note in notes), notes


def test_an_allreduce_above_the_reduce_scatter_plus_allgather_bound_is_explained(tmp_path):
    """Eight GPUs on a switch, one port at 100 GB/s: the file is simulated at 1.7 times the
    reduce-scatter + allgather figure (57.1 GB/s); its trees' line is what its busiest arc allows with
    both halves at once (100 GB/s), and the report and --json say so and name the ceiling no allreduce
    exceeds (100 GB/s, that port) instead of leaving a figure above the only bound shown; collc
    simulate, which has no trees' line, says the same under its table."""
    fixture = str(Path(__file__).resolve().parents[1] / "lowering" / "fixtures" / "switch8-slow-port.yaml")
    result, out = _compile(tmp_path, fixture)
    assert result.exit_code == 0, result.output
    at_once = "this file's trees carry its reduce-scatter and allgather halves at once on the runtime's paths"
    assert f"{at_once} (100.0 GB/s algbw at most)" in result.output
    assert "no allreduce exceeds 100.0 GB/s algbw on this fabric" in result.output
    document = json.loads(
        CliRunner().invoke(main, ["compile", fixture, "-o", str(out), "--force", "--json"]).output
    )
    assert document["bound_algbw"] == pytest.approx(400 / 7, abs=1e-3) and document["ceiling_algbw"] == 100
    figures = [row["algbw"] for row in document["predicted"]]
    assert max(figures) > 1.5 * document["bound_algbw"] and max(figures) <= 100
    assert any(note.startswith(at_once) for note in document["notes"])
    simulated = CliRunner().invoke(
        main, ["simulate", fixture, str(out), "--buffsize", f"{document['buffsize'] or DEFAULT_BUFFER_BYTES}"]
    )
    assert simulated.exit_code == 0, simulated.output
    assert "note: collc is above the bound column" in simulated.output
    assert "no allreduce exceeds 100.0 GB/s algbw on this fabric" in simulated.output
    # the file's name records the buffer compile chose (512 KiB here), and simulate and verify use it
    # when none is given; a file without that record is simulated at the runtime's default
    buffsize = document["buffsize"]
    assert buffsize == 512 << 10 and read_xml(out.read_text()).name.endswith(f"-buffsize-{buffsize}")
    recorded = CliRunner().invoke(main, ["simulate", fixture, str(out), "--sizes", "1GiB"])
    assert f"{out} at NCCL_BUFFSIZE=512KiB, which its name records;" in recorded.output.splitlines()[0]
    at_1gib = [line for line in simulated.output.splitlines() if line.strip().startswith("1GiB |")]
    assert recorded.output.splitlines()[3] == at_1gib[0]  # the same figures as with --buffsize
    verified = CliRunner().invoke(main, ["verify", str(out)])
    assert f"NCCL_BUFFSIZE={buffsize}: the buffer the file's name records" in verified.output
    untagged = tmp_path / "untagged.xml"
    untagged.write_text(out.read_text().replace(f"-buffsize-{buffsize}", "", 1))
    default = CliRunner().invoke(main, ["simulate", fixture, str(untagged), "--sizes", "1MiB"])
    assert f"{untagged} at the runtime's default NCCL_BUFFSIZE=4MiB;" in default.output.splitlines()[0]
    swept = CliRunner().invoke(main, ["simulate", fixture, str(out), "--sizes", "1MiB", "--json"])
    assert json.loads(swept.output)["ceiling_algbw"] == 100


def test_allgather_ceiling_is_its_bound_and_a_report_below_the_bound_has_no_such_note(tmp_path):
    """For allgather the bound is the ceiling, and a file under its bound gets no note about it."""
    result, _ = _compile(tmp_path, "dgx-a100", "--coll", "allgather", "--json")
    document = json.loads(result.output)
    assert document["ceiling_algbw"] == document["bound_algbw"]
    assert not any("above the" in note for note in document["notes"])


def test_an_allreduce_with_its_own_reduce_forest_stays_under_its_ceilings():
    """On a fabric whose two directions differ the halves of an allreduce run on forests of their own
    and overlap on different arcs; the busiest-arc ceiling of each file still holds."""
    fixture = Path(__file__).resolve().parents[1] / "lowering" / "fixtures" / "asym-ring4.yaml"
    state = begin(load(fixture), CompileOptions(coll="allreduce"))
    while state.best is None:
        advance(state)
    assert state.separate_reduce and len(state.fitted) > 1
    for item in state.fitted:
        assert item.reduce_forest is not None
        for (_, nbytes, _), time_us in item.predictor._seen.items():
            assert nbytes / time_us / 1000 <= item.ceiling


def _tried(state) -> list[int]:
    """The k of every candidate fitted, in order (lane-per-transfer variants left out)."""
    return [item.solution.forest.k for item in state.fitted if not item.lowered.split_lanes]


def _chosen_state(preset: str, boxes: int, coll: str, lanes: str = "auto"):
    state = begin(load(preset, {"boxes": str(boxes)}), CompileOptions(coll=coll, lanes=lanes))
    while state.best is None:
        advance(state)
    return state


def test_candidates_beyond_the_first_three_are_tried_while_their_bound_could_win():
    """2x8 H100 allgather: k = 2, 4 and 8 are priced first (same bound, 533.3) and simulate at 521.3
    at best (k = 4, lanes split, 256 KiB buffer); k = 1, priced fifth, has a bound of 514.3, within
    3 % of that, so it is solved, lowered and simulated too (505.8 GB/s at the default buffer)."""
    state = _chosen_state("dgx-h100", 2, "allgather")
    tried = _tried(state)
    assert tried[:3] == [2, 4, 8] and 1 in tried[3:]
    one = next(item for item in state.fitted if item.solution.forest.k == 1)
    assert float(one.bound) < 533.3 and float(one.bound) >= (1 - driver.EQUIVALENT) * state.fastest
    assert one.simulated(2**30)


def test_the_wide_search_skips_candidates_whose_bound_cannot_reach_the_fastest():
    """1x16 MI250 reduce-scatter: k = 1's trees are bounded at 266.7 GB/s, far below what the first
    candidates simulate, so it is never solved or lowered, while k = 4 (bound 320.0, priced fourth)
    is."""
    state = _chosen_state("mi250", 1, "reducescatter")
    tried = {item.solution.forest.k for item in state.fitted}
    assert 1 not in tried and len(tried) > driver.SIMULATED_CANDIDATES
    names = list(dict.fromkeys(item.lowered.algorithm.name for item in state.fitted))  # one per k
    later = set(names[driver.SIMULATED_CANDIDATES :])
    late = [item for item in state.fitted if item.lowered.algorithm.name in later]
    assert late and all(float(item.bound) >= (1 - driver.EQUIVALENT) * state.fastest for item in late)


def test_the_wide_search_is_only_for_programs_that_simulate_cheaply(monkeypatch):
    monkeypatch.setattr(driver, "WIDE_SEARCH_STEPS", 0)
    monkeypatch.setattr(driver, "_blocks_candidates", lambda state, wide: [])  # the priced search alone
    state = _chosen_state("dgx-h100", 2, "allgather")
    assert [item.solution.forest.k for item in state.fitted] == [2, 4, 8]  # and no lane variants


def test_a_wide_search_lowers_every_joined_candidate_apart_too():
    """8x8 A100 allreduce: k = 1's program is small enough for the wide search, k = 2's joined (52,751 steps)
    is not, and its depths are joined to fit the A100's 108 threadblocks. It is also lowered with its
    depths kept apart (merged threadblocks), which simulates faster (96.3 against 87.3 GB/s at 1 GiB;
    106.2 paced): that file beat NCCL's tree from 512 MiB up, where without that lowering compile
    found no size at which any candidate wins. The box-block file (104.3 paced) now beats it at every
    size and is emitted."""
    state = _chosen_state("dgx-a100", 8, "allreduce")
    assert state.fitted[0].lowered.usage.total_steps <= driver.WIDE_SEARCH_STEPS
    k2 = [item for item in state.fitted if item.solution.forest.k == 2]
    assert any(item.lowered.usage.total_steps > driver.WIDE_SEARCH_STEPS for item in k2)
    assert {bool(item.lowered.joined_stages) for item in k2} == {True, False}
    apart, joined = (
        replace(
            next(item for item in k2 if item.lowered.join_stages == way), buffer_bytes=state.best.buffer_bytes
        )
        for way in (False, True)
    )
    assert apart.algbw(2**30) > joined.algbw(2**30)


def test_a_program_too_large_to_search_lowers_only_the_first_candidate(monkeypatch):
    """Above LONE_CANDIDATE_STEPS steps only the first candidate is lowered and simulated, and the
    report says how many were left untried (64x8 H100 rail allreduce: 150 s -> 51 s, the same file;
    here the limit is lowered so that the first programs are above it). Where the fabric has box
    blocks, they come first (their trees are the shallow ones at scale); else the best priced k."""
    monkeypatch.setattr(driver, "WIDE_SEARCH_STEPS", 0)
    monkeypatch.setattr(driver, "LONE_CANDIDATE_STEPS", 0)
    state = _chosen_state("dgx-h100", 2, "allgather")
    assert {(item.solution.forest.k, item.solution.forest.blocks) for item in state.fitted} == {(1, True)}
    (note,) = [note for note in state.notes if note.startswith("only k = 1 (box blocks) was")]
    assert "left untried" in note and "--k tries one" in note
    state = _chosen_state("mi250", 1, "allgather")
    assert len({item.solution.forest.k for item in state.fitted}) == 1
    (note,) = [note for note in state.notes if note.startswith("only k = ")]
    assert "the best priced candidate" in note


def test_each_candidate_is_also_simulated_with_split_lanes():
    """2x8 A100 reduce-scatter: k = 2 with lanes sized by rate simulates at 291.8 GB/s (256 KiB
    buffer), with a lane per transfer at 341.2 (bound 346.7); the variant is simulated beside its
    candidate and emitted."""
    state = _chosen_state("dgx-a100", 2, "reducescatter")
    variants = [item for item in state.fitted if item.lowered.split_lanes]
    assert variants and {item.solution.forest.k for item in variants} <= set(_tried(state))
    best = state.best
    assert best.lowered.split_lanes
    at_best = [replace(item, buffer_bytes=best.buffer_bytes) for item in state.fitted]
    k2 = [item for item in at_best if item.solution.forest.k == 2]
    (by_rate,) = [item for item in k2 if not item.lowered.split_lanes and not item.lowered.paced]
    (split,) = [item for item in k2 if item.lowered.split_lanes and item.instances == 1]
    assert split.algbw(2**30) > 1.15 * by_rate.algbw(2**30)
    assert best.algbw(2**30) >= split.algbw(2**30)
    assert any("k = 2 (a lane per transfer)" in note for note in state.notes)


@pytest.mark.parametrize("lanes", ["rate", "split"])
def test_lanes_lowers_every_candidate_only_the_way_asked(lanes):
    """--lanes rate / split: one lowering per candidate (each program name once), besides its paced
    variant; with split, a lane per transfer (k = 2, 156.3 GB/s at 1 GiB; the default emits k = 4 with
    lanes by rate, 154.7)."""
    state = _chosen_state("dgx1", 1, "reducescatter", lanes)
    assert {item.lowered.split_lanes for item in state.fitted} == {lanes == "split"}
    names = [item.lowered.algorithm.name for item in state.fitted if not item.lowered.paced]
    assert len(names) == len(set(names)) <= driver.WIDE_CANDIDATES
    assert {item.lowered.algorithm.name for item in state.fitted if item.lowered.paced} <= set(names)
    if lanes == "split":
        assert state.best.lowered.split_lanes and state.best.algbw(2**30) > 156


def test_lanes_is_checked_and_reported(tmp_path):
    out = tmp_path / "rs.xml"
    args = ["compile", "dgx1", "--coll", "reducescatter", "-o", str(out)]
    bad = CliRunner().invoke(main, [*args, "--lanes", "one"])
    assert bad.exit_code == 2 and "--lanes" in bad.output and not out.exists()
    result = CliRunner().invoke(main, [*args, "--lanes", "split", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["lanes"] == "split" and report["unsplit_groups"] == 0
    with pytest.raises(InputError, match="--lanes"):
        CompileFlags(lanes="one").options()


def _beyond(figures: dict[int, float]):
    """Figures per size, the largest size's above it (the top of the range grid), and between two
    given sizes a geometric interpolation of theirs (the sizes the range grid adds between them)."""

    def figure(nbytes: int) -> float:
        if nbytes in figures or nbytes > max(figures):
            return figures.get(nbytes, figures[max(figures)])
        below = max(size for size in figures if size < nbytes)
        above = min(size for size in figures if size > nbytes)
        share = math.log(nbytes / below) / math.log(above / below)
        return figures[below] * (figures[above] / figures[below]) ** share

    return figure


WEIGHED = driver.weighing(driver.CompileOptions())  # 1 GiB, then 64 MiB and 1 MiB; no range set


class _Simulated:
    """A stand-in candidate for :func:`driver._pick`: its simulated algbw per size and its ceiling."""

    def __init__(self, name: str, figures: dict[int, float]):
        self.name, self.figures, self.ceiling = name, figures, 1e9

    def algbw(self, nbytes: int) -> float:
        return _beyond(self.figures)(nbytes)

    def runs(self, sizes) -> list:
        return []  # nothing to simulate ahead: the figures are given


def test_the_emitted_candidate_delivers_most_at_the_smaller_sizes_with_the_runtime_taking_its_own():
    """Within 3 % at 1 GiB, the candidate whose file together with the runtime's own algorithms is
    fastest at 64 MiB and 1 MiB (4x8 MI300X allgather's figures): a file slower than the runtime at a
    size leaves it to the runtime, so only what beats the runtime counts."""
    gib, mib = 2**30, 2**20
    large_k = _Simulated("k = 32", {gib: 504.4, 64 * mib: 471.0, mib: 14.3})
    small_k = _Simulated("k = 2", {gib: 500.0, 64 * mib: 462.3, mib: 69.7})
    runtime_at_1mib = {gib: 400.0, 64 * mib: 283.3, mib: 17.2}
    picked = driver._pick([large_k, small_k], WEIGHED, _beyond(runtime_at_1mib))
    assert picked is small_k  # 1 MiB: 69.7 against the runtime's 17.2 outweighs 2 % at 64 MiB
    faster_runtime = {gib: 400.0, 64 * mib: 283.3, mib: 100.0}  # neither file is used at 1 MiB
    assert driver._pick([large_k, small_k], WEIGHED, _beyond(faster_runtime)) is large_k
    slower = _Simulated("k = 1", {gib: 486.0, 64 * mib: 500.0, mib: 80.0})  # 3.6 % slower at 1 GiB
    assert driver._pick([large_k, slower], WEIGHED, _beyond(runtime_at_1mib)) is large_k


def test_a_file_that_beats_the_runtime_at_more_of_the_sizes_weighed_is_picked_first():
    """1x16 MI250 allgather's figures: three files within 3 % at 1 GiB. k = 16 at 256 KiB is the
    fastest there and loses to RCCL's ring at 64 MiB; k = 16 at 128 KiB is the fastest at 64 MiB;
    k = 8 with two instances beats the ring at both and delivers most over the two, so it is emitted
    (the product of 64 MiB alone picked k = 16 and gave up 0.6 % at 1 GiB for 0.3 % at 64 MiB; the
    product over both picked the file the runtime's ring beats at 64 MiB)."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 316.4, 64 * mib: 270.5, mib: 29.2}
    fastest = _Simulated("k = 16, 256 KiB", {gib: 331.3, 64 * mib: 265.4, mib: 28.0})
    at_64mib = _Simulated("k = 16, 128 KiB", {gib: 323.7, 64 * mib: 271.4, mib: 28.0})
    both = _Simulated("k = 8, two instances", {gib: 325.8, 64 * mib: 270.7, mib: 28.0})
    assert driver._delivered(fastest, WEIGHED, _beyond(runtime)).taken == 1
    assert driver._delivered(both, WEIGHED, _beyond(runtime)).rank == (2, 29.2 * 270.7 * 325.8)
    assert driver._pick([fastest, at_64mib, both], WEIGHED, _beyond(runtime)) is both
    assert WEIGHED.rule() == (
        "within 3% of the fastest, the one that beats the runtime at most of 1GiB, 64MiB and 1MiB, "
        "then with the runtime's own delivers most there"
    )


def test_a_file_near_the_bound_is_not_traded_for_the_smaller_sizes():
    """3x8 V100 allreduce's figures (bound 37.5 GB/s): k = 2 with split lanes is within 3 % of the
    fastest at 1 GiB and delivers more at 64 MiB and 1 MiB, but it is 0.942 of the bound where k = 4
    with paced senders is 0.968, so the band stops at 95 % of the bound. Where no file reaches that
    floor, or the runtime reaches it too (the file is then for the smaller sizes), the band is the
    usual 3 %."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 26.0, 64 * mib: 25.2, mib: 12.7}
    split = _Simulated("k = 2 (split lanes)", {gib: 35.3, 64 * mib: 33.6, mib: 16.6})
    paced = _Simulated("k = 4 (paced)", {gib: 36.3, 64 * mib: 31.0, mib: 9.9})
    assert driver._pick([paced, split], WEIGHED, _beyond(runtime)) is split  # no floor: the 3 % band
    floored = driver.near_optimal(WEIGHED, Fraction(75, 2))
    assert floored.floor == pytest.approx(35.625)
    assert driver._pick([paced, split], floored, _beyond(runtime)) is paced
    # the fastest below the floor: the floor does not apply, the 3 % band does
    slower = _Simulated("k = 4 (paced)", {gib: 35.5, 64 * mib: 31.0, mib: 9.9})
    assert driver._pick([slower, split], floored, _beyond(runtime)) is split
    near_runtime = {**runtime, gib: 36.0}  # the runtime within 5 % of the bound at 1 GiB
    assert driver._pick([paced, split], floored, _beyond(near_runtime)) is split
    assert "95% of the bound (35.6) and the runtime does not" in floored.rule()


def test_a_win_the_file_range_cannot_take_counts_for_nothing():
    """A file slower than the runtime at 64 MiB takes sizes above it only (its one range reaches the
    largest size), so its win at 1 MiB is the runtime's 1 MiB (a degraded 4x8 H100 allreduce's
    figures: k = 8 had been picked for 28.3 against 22.8 GB/s at 1 MiB)."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 176.4, 64 * mib: 156.7, mib: 22.8}
    gapped = _Simulated("k = 8", {gib: 190.3, 64 * mib: 140.4, mib: 28.3})
    steady = _Simulated("k = 1", {gib: 193.9, 64 * mib: 163.0, mib: 21.1})
    assert driver._pick([gapped, steady], WEIGHED, _beyond(runtime)) is steady
    assert driver._delivered(gapped, WEIGHED, _beyond(runtime)).product == pytest.approx(156.7 * 22.8)
    below = _Simulated("k = 4", {gib: 150.0, 64 * mib: 160.0, mib: 30.0})  # its range ends below 1 GiB
    assert driver._delivered(below, WEIGHED, _beyond(runtime)).product == pytest.approx(160.0 * 30.0)


def test_a_win_below_a_loss_counts_for_nothing_where_the_range_takes_the_top():
    """8x8 MI300X allreduce's figures: k = 8 loses at 1 GiB and wins at 1 MiB and from 2 GiB up, so
    its range takes the sizes from 2 GiB up (the run that reaches the top of the grid) and its 1 MiB
    is the runtime's; k = 1, 2.8 % faster at 1 GiB and a little slower at 1 MiB, is picked and used
    at 1 MiB. Weighed without the top, k = 8 was picked and then not used at 1 MiB."""
    gib, mib, top = 2**30, 2**20, grid()[-1]
    runtime = {top: 200.0, gib: 198.1, 64 * mib: 172.8, mib: 20.4}
    upper = _Simulated("k = 8", {top: 250.0, gib: 193.1, 64 * mib: 75.9, mib: 33.2})
    lower = _Simulated("k = 1", {top: 199.0, gib: 198.6, 64 * mib: 173.0, mib: 25.0})
    assert driver._delivered(upper, WEIGHED, _beyond(runtime)).product == pytest.approx(172.8 * 20.4)
    assert driver._pick([upper, lower], WEIGHED, _beyond(runtime)) is lower


def test_a_loss_on_the_range_grid_between_two_wins_splits_them():
    """4x8 A100 allreduce's figures: the box-block file with two instances wins at 1 MiB and 64 MiB
    and loses to the tree at 4 and 16 MiB, so its range starts above 16 MiB and its 1 MiB is the
    runtime's; the file that does not win at 1 MiB but is faster at 64 MiB is picked."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 101.9, 256 * mib: 98.4, 64 * mib: 93.7, 16 * mib: 78.9, 4 * mib: 48.4, mib: 20.0}
    blocks = _Simulated(
        "k = 1 (box blocks)",
        {gib: 127.4, 256 * mib: 122.0, 64 * mib: 104.3, 16 * mib: 71.5, 4 * mib: 45.5, mib: 27.7},
    )
    trees = _Simulated(
        "k = 1", {gib: 130.0, 256 * mib: 125.0, 64 * mib: 107.9, 16 * mib: 80.0, 4 * mib: 40.0, mib: 16.7}
    )
    assert driver._delivered(blocks, WEIGHED, _beyond(runtime)).product == pytest.approx(104.3 * 20.0)
    assert driver._pick([blocks, trees], WEIGHED, _beyond(runtime)) is trees
    steady = _Simulated("k = 1 (box blocks)", {**blocks.figures, 16 * mib: 80.0, 4 * mib: 50.0})
    assert driver._delivered(steady, WEIGHED, _beyond(runtime)).product == pytest.approx(104.3 * 27.7)


def test_where_the_fastest_files_are_never_used_one_that_is_used_is_picked():
    """32x8 H100 rail allreduce (256 GPUs): the box-block file is the fastest at 1 GiB and loses to
    the tree at every size weighed; a file far slower at 1 GiB wins at 1 MiB and is emitted."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 197.8, 64 * mib: 170.2, mib: 19.1}
    blocks = _Simulated("k = 1 (box blocks)", {gib: 191.7, 64 * mib: 121.5, mib: 14.6})
    k2 = _Simulated("k = 2", {gib: 157.4, 64 * mib: 140.0, mib: 21.0})
    assert not driver._delivered(blocks, WEIGHED, _beyond(runtime)).used
    assert driver._pick([blocks, k2], WEIGHED, _beyond(runtime)) is k2
    losing = _Simulated("k = 2", {gib: 157.4, 64 * mib: 140.0, mib: 15.0})
    assert driver._pick([blocks, losing], WEIGHED, _beyond(runtime)) is blocks  # nothing is used: the fastest


def test_the_pick_weighs_the_sizes_a_user_range_takes_and_only_those():
    """A range set by the user is written as it is: sizes below its start are never the file's, and
    the file runs every size in it, winning or not, so its own figures count there."""
    gib, mib = 2**30, 2**20
    assert driver.Weighing(gib, (mib, 64 * mib), False) == WEIGHED
    large = driver.weighing(CompileOptions(min_bytes=256 * mib, user_range=True))
    assert large == driver.Weighing(gib, (), True)
    assert driver.weighing(CompileOptions(min_bytes=2 * mib, user_range=True)).smaller == (64 * mib,)
    assert driver.weighing(CompileOptions(min_bytes=4 * gib, user_range=True)).reference == 4 * gib
    small = driver.weighing(CompileOptions(max_bytes=4 * mib, user_range=True))
    assert small == driver.Weighing(4 * mib, (4 << 10, 256 << 10), True)
    # a bundle's compiles leave the range to the bundle's plan: weighed as without a range
    assert driver.weighing(CompileOptions(user_range=True)) == WEIGHED


def test_above_a_user_set_start_the_fastest_file_there_is_picked():
    """1x16 MI250 reduce-scatter's figures: k = 2 wins at 1 MiB and loses to RCCL's ring at 1 GiB;
    k = 8 (two instances, paced) is 3 % faster at 1 GiB and beats the ring there. Without a range
    the 1 MiB win decides; with ``--min-bytes 256MiB`` no such size is the file's, and the faster
    file at 1 GiB is emitted (k = 2 was, slower than RCCL at every size it served)."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 316.4, 64 * mib: 270.5, mib: 29.2}
    k2 = _Simulated("k = 2", {gib: 314.7, 64 * mib: 251.6, mib: 42.0})
    k8 = _Simulated("k = 8", {gib: 324.3, 64 * mib: 235.0, mib: 35.1})
    assert driver._pick([k2, k8], WEIGHED, _beyond(runtime)) is k2
    large = driver.weighing(CompileOptions(min_bytes=256 * mib, user_range=True))
    assert driver._pick([k2, k8], large, _beyond(runtime)) is k8
    # a range down to 1 MiB runs the file at 64 MiB too, where k = 2's own 251.6 counts, not the ring's
    wide = driver.weighing(CompileOptions(min_bytes=mib, user_range=True))
    assert driver._delivered(k8, wide, _beyond(runtime)) == (35.1 * 235.0, 324.3, 3, True)
    assert driver._pick([k2, k8], wide, _beyond(runtime)) is k2
    # --min-bytes alone leaves the top where the file wins: k = 2, which loses from 64 MiB up, had been
    # picked for its own 64 MiB figure and then written nowhere (exit 1)
    start = driver.weighing(CompileOptions(min_bytes=64 * mib, user_end="min"))
    assert not start.forced and start.smaller == (64 * mib,)
    assert driver._pick([k2, k8], start, _beyond(runtime)) is k8


def test_where_the_smaller_sizes_are_the_runtimes_either_way_the_faster_file_at_the_reference_wins():
    """Two files used at 1 GiB only deliver the runtime's own at 64 MiB and 1 MiB: the faster of the
    two at 1 GiB is emitted, not the better priced."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 400.0, 64 * mib: 500.0, mib: 100.0}
    priced_first = _Simulated("k = 2", {gib: 490.0, 64 * mib: 450.0, mib: 50.0})
    faster = _Simulated("k = 8", {gib: 500.0, 64 * mib: 440.0, mib: 40.0})
    assert driver._delivered(priced_first, WEIGHED, _beyond(runtime))[:2] == (500.0 * 100.0, 490.0)
    assert driver._pick([priced_first, faster], WEIGHED, _beyond(runtime)) is faster


def test_a_box_block_file_that_loses_everywhere_sends_the_search_on():
    """32x8 H100 rail allreduce's figures: the box-block file loses to the tree at every size the
    pick weighs, so the priced k are tried after it; one that wins at 1 MiB would be enough."""
    gib, mib = 2**30, 2**20
    runtime = {gib: 197.8, 64 * mib: 170.2, mib: 19.1}
    losing = _Simulated("k = 1 (box blocks)", {gib: 191.7, 64 * mib: 121.5, mib: 14.6})
    assert not driver._used([losing], WEIGHED, _beyond(runtime))
    winning = _Simulated("k = 1 (box blocks)", {gib: 191.7, 64 * mib: 121.5, mib: 22.0})
    assert driver._used([losing, winning], WEIGHED, _beyond(runtime)) == [winning]


def test_json_says_why_nothing_was_written_with_the_unwritten_files_figures(tmp_path):
    """A CI job reads one JSON document whatever the outcome: a compile that wins nowhere prints the
    report's keys with ``file`` null, the reason, and the simulated figures of the file it did not
    write (none selected); the error line still goes to stderr with exit 1."""
    fabric = tmp_path / "slow.yaml"
    fabric.write_text(SLOW_RING)
    target = tmp_path / "x.xml"
    result = CliRunner().invoke(main, ["compile", str(fabric), *SLOW_NO_WIN, "-o", str(target), "--json"])
    assert result.exit_code == 1 and not target.exists(), result.output
    document = json.loads(result.stdout)
    assert document["file"] is None and document["exit_code"] == 1
    assert "no file written" in document["error"] and "--force" in document["hint"]
    assert document["k"] >= 1 and document["nchunksperloop"] % 5 == 0
    assert [row["bytes"] // 2**20 for row in document["predicted"]] == [1, 64, 1024]
    assert all(not row["selected"] and row["algbw"] > 0 for row in document["predicted"])
    assert "error:" in result.stderr
    forced = CliRunner().invoke(
        main, ["compile", str(fabric), *SLOW_NO_WIN, "-o", str(target), "--json", "--force"]
    )
    assert forced.exit_code == 0 and json.loads(forced.stdout)["file"] == str(target)
    assert any(note.startswith("chose k = ") for note in document["notes"])


def test_the_report_shows_the_file_it_did_not_write_and_how_it_was_chosen(tmp_path):
    """Without --json, a compile that wins nowhere prints the unwritten file's simulated figures beside
    the runtime's, the counts it serves and the compile's notes, then the error line (exit 1)."""
    fabric = tmp_path / "slow.yaml"
    fabric.write_text(SLOW_RING)
    target = tmp_path / "x.xml"
    result = CliRunner().invoke(main, ["compile", str(fabric), *SLOW_NO_WIN, "-o", str(target)])
    assert result.exit_code == 1 and not target.exists(), result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("not written: k = ") and "nchunksperloop = 5" in lines[0]
    assert "event simulation of the file it would write" in lines[1]
    rows = [line for line in lines if line.strip().endswith("no (runtime's own)")]
    assert len(rows) == 3  # 1 MiB, 64 MiB and 1 GiB, none taken
    assert any(line.startswith("  serves ") and "multiple of 1 element " in line for line in lines)
    assert any(line.startswith("  note: chose k = ") for line in lines)
    assert "no file written" in result.stderr and "no file written" not in result.stdout


def test_the_no_win_message_shows_slow_links_figures_in_significant_digits(tmp_path):
    """A ring with two links of 0.001 GB/s: the closest figures are about 0.00125 GB/s, which one
    decimal printed as "0.0 vs 0.0"."""
    fabric = tmp_path / "slow.yaml"
    fabric.write_text(SLOW_RING)
    result = CliRunner().invoke(main, ["compile", str(fabric), *SLOW_NO_WIN, "-o", str(tmp_path / "x.xml")])
    assert result.exit_code == 1, result.output
    closest = re.search(r"closest: ([\d.e-]+) vs ([\d.e-]+) GB/s", result.output)
    assert closest and 0 < float(closest[2]) < 0.01 and float(closest[1]) > 0, result.output


def test_the_fastest_lowering_of_each_k_near_the_top_is_simulated_again_with_paced_senders():
    """4x8 MI300X allreduce (256 KiB buffer): the fastest lowering of each k near the top is lowered
    again paced (k = 2 with its tree depths kept apart: 221.6 GB/s unpaced, 229.8 paced; with a pair's
    nearest depths joined, 237.1 unpaced and 229.2 paced, so the unpaced one is emitted). Only the
    fastest lowering of a k is paced, and only near the top (docs/compile.md §3)."""
    state = _chosen_state("mi300x", 4, "allreduce")
    assert state.best.algbw(2**30) > 225
    paced = [item for item in state.fitted if item.lowered.paced]
    names = {item.lowered.algorithm.name for item in state.fitted}
    assert len({item.lowered.algorithm.name for item in paced}) == len(paced) < len(names)
    assert any("free senders paced" in note for note in state.notes)


def test_a_candidate_a_pacing_gain_behind_the_fastest_is_paced():
    """1x8 V100 allreduce: k = 8 with two instances simulates at 79.4 GB/s unpaced, 3.6 % behind the
    fastest unpaced candidate (82.4), and at 82.8 paced: the fastest, and faster at 1 MiB too. A band
    of 3 % (EQUIVALENT) never paced it (80.9 GB/s written). All at the 256 KiB buffer; the file is
    emitted for 512 KiB, where it delivers a little more at 1 MiB (34.7 against 34.4 GB/s)."""
    state = _chosen_state("dgx1", 1, "allreduce")
    assert state.best.lowered.paced and state.best.instances == 2
    assert replace(state.best, buffer_bytes=256 << 10).algbw(2**30) > 82.5


def test_allgather_is_not_paced():
    state = _chosen_state("dgx1", 1, "allgather")
    assert not any(item.lowered.paced for item in state.fitted) and not state.paced


def test_a_candidate_near_its_trees_bound_is_not_paced():
    """1x8 A100 allreduce simulates within 1 % of its trees' bound: pacing has nothing to close, so no
    candidate is lowered a third time (small service jobs keep their compile time)."""
    state = _chosen_state("dgx-a100", 1, "allreduce")
    assert state.best.algbw(2**30) >= 0.98 * float(state.best.bound)
    assert not state.paced


def test_nvswitch_boxes_whose_gpu_pairs_share_a_pcie_switch_and_nic_beat_the_ring(tmp_path):
    """A common cloud node, written flat: hop count alone routed GPU pairs over their 32 GB/s PCIe
    switch instead of the NVSwitch (0.49 of the bound, 0.6 of the ring at 1 GiB)."""
    fixture = Path(__file__).resolve().parents[1] / "solver" / "fixtures" / "shared-pcie-nics-x2.yaml"
    result, _ = _compile(tmp_path, str(fixture), "--coll", "allgather", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    large = next(row for row in report["predicted"] if row["bytes"] == 2**30)
    assert large["selected"] and large["algbw"] >= 0.95 * report["bound_algbw"]
    assert large["algbw"] >= 1.1 * large["ring_algbw"]
