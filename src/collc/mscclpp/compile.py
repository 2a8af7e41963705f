"""``collc compile --runtime mscclpp``: the verified MSCCL++ execution plan of a compiled schedule.

The schedule is compiled as for the XML runtimes, under the ``mscclpp`` runtime profile and with at
most :data:`STEP_CAPS` steps per threadblock (the first cap whose lowering and translation fit), and
then:

1. translated into a plan (:func:`collc.mscclpp.lower.to_plan`);
2. verified: the written text goes through :func:`collc.mscclpp.verify.verify_plan_text` (the
   executor's rules, then deadlock, races and the collective's result, its pipelines simulated);
3. read back (:func:`collc.mscclpp.reader.read_plan`) and turned into the event simulation's steps,
   which must do the same work as the program it came from (:func:`collc.mscclpp.lower_sim.differences`);
4. predicted with the executor's own parameters (:class:`collc.mscclpp.lower_sim.PlanCost`); unless
   the user gave a range, its size range is chosen from that prediction, as for XML files.

A failure in 2 or 3 is a bug in collc: :class:`InvariantError`, nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from collc.compile.driver import (
    CompileOptions,
    CompileResult,
    NoWin,
    advance,
    begin,
    compile_schedule,
    with_range,
)
from collc.compile.outlook import grid, outlook
from collc.compile.ranges import ByteRange, at_end, predicted_range
from collc.errors import InputError, InvariantError
from collc.lowering.limits import DoesNotFit
from collc.mscclpp.lower import PIPELINE_UNIT_BYTES, PlanDoesNotFit, message_ceiling, to_plan
from collc.mscclpp.lower_sim import PlanCost, differences, to_algorithm
from collc.mscclpp.plan import BUFFER_ALIGNMENT, MAX_OPERATIONS, MSCCLPP_VERSION, ExecutionPlan
from collc.mscclpp.reader import read_plan
from collc.mscclpp.verify import verify_plan_text
from collc.mscclpp.writer import to_json
from collc.predict.sweep import Memo
from collc.progress import Report, silent
from collc.topology.model import Topology

RUNTIME = "mscclpp"
#: steps per threadblock the lowering may use, tried in order: with 10 the translation always fits the
#: executor's 64 operations (at most 6 per step, plus the handshake and the pipeline op); larger caps
#: let large fabrics fit their threadblock limit, and their translation is then measured
STEP_CAPS = (10, 16, 24, 32)


@dataclass(frozen=True)
class PlanResult:
    """The compiled schedule (its report's predictions and verification are the plan's), the plan
    and its JSON text."""

    result: CompileResult
    plan: ExecutionPlan
    text: str


def compile_plan(topology: Topology, options: CompileOptions) -> PlanResult:
    """Compile ``topology``'s schedule for MSCCL++ (module doc)."""
    if options.proto != "Simple":
        raise InputError(
            f"--runtime mscclpp writes Simple-protocol plans, not {options.proto}",
            hint="drop --proto (collc's plans write straight into the peer's buffers)",
        )
    only_inplace = options.inplace and not options.outofplace  # a plan is one or the other
    options = replace(options, runtime=RUNTIME, inplace=only_inplace, outofplace=not only_inplace)
    result = _fitted(topology, options)
    predictor = Memo(PlanCost(result.model.network, result.algorithm, PIPELINE_UNIT_BYTES))
    chosen, forced = result.byte_range, False
    if not options.user_range:
        given = ByteRange(options.min_bytes, options.max_bytes)
        rows = outlook(result.model, result.algorithm, grid(), RUNTIME, predictor)
        won, _ = predicted_range(
            rows,
            RUNTIME,
            lambda nbytes: outlook(result.model, result.algorithm, [nbytes], RUNTIME, predictor)[0],
            options.user_end,
            given,
        )
        if won is None and not options.force:
            raise NoWin(
                f"collc's MSCCL++ plan for {options.coll} on {topology.name} is predicted slower than "
                "the runtime's own ring/tree at every size; no plan written",
                hint="keep the runtime's own algorithm; --force writes it anyway, --min-bytes with "
                "--max-bytes set the whole range yourself",
            )
        chosen, forced = (given if won is None else at_end(won, options.user_end, given)), won is None
    result = replace(with_range(result, _executable(chosen, result)), forced=forced)
    plan = to_plan(result.algorithm, topology, inplace=only_inplace)
    text = to_json(plan)
    report = verify_plan_text(text, "the plan")
    if not report.ok:
        problems = "; ".join(f"{p.rule}: {p.message}" for p in report.errors[:10])
        raise InvariantError(
            f"the MSCCL++ plan failed verification ({len(report.errors)} errors): {problems}"
        )
    changed = differences(result.algorithm, to_algorithm(read_plan(text)))
    if changed:
        raise InvariantError(f"the plan read back does other work than its program: {'; '.join(changed[:5])}")
    report.notes.append(f"the plan targets MSCCL++ {MSCCLPP_VERSION}")
    # the schedule was compiled as if forced: the XML program's "forced" note is not the plan's
    notes = [note for note in result.notes if not note.startswith("forced:")]
    if forced:
        notes.append("forced: the plan is predicted slower than the runtime's own algorithms at every size")
    notes.append(_summary(plan))
    return PlanResult(replace(result, predictor=predictor, verification=report, notes=notes), plan, text)


def _summary(plan: ExecutionPlan) -> str:
    """The plan's use of the executor's tables, for the report."""
    ops = max(tb.op_count() for gpu in plan.gpus for tb in gpu.threadblocks)
    tbs = max(len(gpu.threadblocks) for gpu in plan.gpus)
    ends = {kind: 0 for kind in ("memory", "port")}
    for gpu in plan.gpus:
        for kind, peers in gpu.channels:
            ends[kind] += len(peers)
    return (
        f"MSCCL++ {MSCCLPP_VERSION} plan: {tbs} threadblocks per GPU, {ops} operations per threadblock at "
        f"most (limit {MAX_OPERATIONS}), {ends['memory']} memory and {ends['port']} port channel ends, "
        f"pipelined in {PIPELINE_UNIT_BYTES // 1024} KiB units; it takes calls of {plan.min_message_size:,} "
        f"to {plan.max_message_size:,} bytes that split into 16-byte-aligned chunks"
    )


def _fitted(topology: Topology, options: CompileOptions) -> CompileResult:
    """The schedule compiled with the first step cap (:data:`STEP_CAPS`) whose lowering fits the
    threadblock limit and whose translation fits the executor's tables. The range is left to the
    plan's own prediction (the schedule is compiled as if forced)."""
    failures = []
    for cap in STEP_CAPS:
        state = begin(topology, replace(options, force=not options.user_range))
        state.limits = replace(state.limits, max_steps_per_tb=cap)
        try:
            while state.result is None:
                advance(state)
            to_plan(state.result.algorithm, topology)
        except (DoesNotFit, PlanDoesNotFit) as error:
            failures.append(f"at most {cap} steps per threadblock: {error.message}")
            continue
        return replace(state.result, options=options)
    raise PlanDoesNotFit(
        f"no MSCCL++ plan fits {topology.name}: " + "; ".join(failures),
        hint="a plan has at most 64 operations per threadblock; try --max-k with a small budget or "
        "--instances 1",
    )


def _executable(chosen: ByteRange, result: CompileResult) -> ByteRange:
    """The range within what the executor runs: a call must split into 16-byte-aligned chunks (so it
    starts at one aligned element per chunk) and stay within its 32-bit offsets (message_ceiling)."""
    algo = result.algorithm
    gpu = algo.gpus[0]
    chunks = gpu.o_chunks if algo.coll == "allgather" else gpu.i_chunks
    ceiling = message_ceiling(algo)
    return ByteRange(
        max(chosen.min_bytes, BUFFER_ALIGNMENT * chunks),
        min(chosen.max_bytes, ceiling) if chosen.max_bytes else ceiling,
    )


def wants_plan(topology: Topology, options: CompileOptions) -> bool:
    """Whether this compile is for MSCCL++ (asked for, or the topology's runtime)."""
    return (options.runtime or topology.metadata.runtime) == RUNTIME


def compile_output(
    topology: Topology, options: CompileOptions, progress: Report = silent
) -> tuple[CompileResult, str]:
    """The compiled schedule and the text of the file to write: a plan's JSON for MSCCL++, else XML
    (``progress`` hears the compile's steps)."""
    if wants_plan(topology, options):
        planned = compile_plan(topology, options)
        return planned.result, planned.text
    result = compile_schedule(topology, options, progress)
    return result, result.xml


def deploy_lines(filename: str) -> list[str]:
    """How to run a plan with MSCCL++ v0.10.x: through its executor API on every rank. Its NCCL shim
    (``libmscclpp_nccl.so``) loads only the plans bundled with MSCCL++, by their fixed names under
    ``$MSCCLPP_CACHE_DIR/default``, so a plan of collc's is run through the API."""
    return [
        f"  # MSCCL++ {MSCCLPP_VERSION}: every rank loads {filename} (same file on every node) and runs it:",
        f'  #   C++:    mscclpp::ExecutionPlan plan("{filename}", rank); executor.execute(rank, send, recv, '
        "sendBytes, recvBytes, dtype, plan, stream)",
        f'  #   Python: plan = mscclpp.ExecutionPlan("{filename}", rank); executor.execute(...)',
        "  # calls must be multiples of 16 bytes x the plan's chunks and inside its message-size range",
    ]
