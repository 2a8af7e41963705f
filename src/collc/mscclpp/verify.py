"""Verify an MSCCL++ execution plan against the v0.10.x executor: its rules, then a simulation.

The executor loads a plan per rank, checks almost nothing, and runs every threadblock's ops in order
without any barrier between them. A wrong index reads another channel or buffer, a missing signal
hangs, and a missing ``nop`` lets a signal overtake the data it announces. This module reports each of
those before the plan reaches a GPU, with the same :class:`~collc.verify.report.VerifyReport` and
located problems as the XML verifier (docs/verify.md, "MSCCL++ execution plans", lists the rules).

1. **Rules** (:class:`_Lint`): the limits of the device plan (64 ops and 16 channels of each type per
   threadblock, 8 channels and 10 buffers per op, 16 barriers and semaphores), every index against
   what it indexes, chunk bounds, the buffers and channel types each op kind really uses, the
   collective's chunk counts, and the ``nop`` a signal needs after data: an op runs on all threads of
   the block but a signal only on the first few, and the executor puts no ``__syncthreads`` between ops.
2. **Simulation** (:class:`_Simulation`): threadblocks run greedily with symbolic data (the values of
   :mod:`collc.verify.collective`) and vector clocks (:mod:`collc.verify.clocks`). Control never
   depends on data, so one run decides completion. An op's k-th channel or semaphore is served by
   thread k: what a wait teaches reaches the other threads only at the next ``nop`` or barrier, and two
   ops of one threadblock are ordered only by one of those or by something else (a packet round trip).
   Signals and waits are counting semaphores per channel (the k-th wait on a channel is released by the
   k-th signal through its paired channel on the peer: the i-th channel from rank a to rank b pairs with
   the i-th from b to a); relaxed signals and waits order nothing but control. A port channel's proxy is
   a process of its own: it performs the channel's puts and signals in order, so a wait orders only the
   puts of the channel it waits on, and a put's source stays in use after the kernel unless a ``pwsf``
   waited for the flush. Packets (LL) carry their own flag: a packet read waits until the slot is
   written in the same call and is ordered after that write. The plan runs once with every pipeline
   at one chunk per iteration, once with every pipeline in one iteration, and twice in a row on the same
   buffers (ranks meet only at the end of their own kernel) for hazards between calls. The runs report
   deadlocks, races, signals nobody waits for (the next call's wait would pass early), unbalanced
   semaphores, writes into a rank's output that its kernel does not wait for, and the collective's
   postcondition.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from collc.errors import InputError, Location, location_in
from collc.mscclpp.reader import (
    BufferRef,
    Gpu,
    JsonPath,
    Op,
    Plan,
    PlanSyntaxError,
    Threadblock,
    read_plan,
    render_path,
)
from collc.topology.model import Topology
from collc.verify import MAX_SIMULATED_CHUNKS, MAX_SIMULATED_CLOCK_ENTRIES, collective
from collc.verify.clocks import Clock, ClockFactory
from collc.verify.collective import Value
from collc.verify.report import Problem, Severity, Tally, VerifyReport

#: the executor version whose rules this module applies
TARGET = "MSCCL++ v0.10.x"

# device-plan limits of the v0.10.x executor (execution_common.hpp)
MAX_OPERATION = 64
MAX_CHANNEL = 16
MAX_CHANNEL_PER_OPERATION = 8
MAX_BUFFERS_PER_OPERATION = 10
MAX_DEVICE_SYNCERS = 16
MAX_DEVICE_SEMAPHORES = 16
MAX_THREADS_PER_BLOCK = 1024
#: rules whose repetition in a later run of the simulation follows from the first run's finding
_CONSEQUENTIAL = frozenset({"deadlock", "leftover-signal", "semaphore-balance"})
#: the largest byte offset the executor's operations hold
_U32 = 2**32 - 1
#: op executions of the longest simulation run (a minute or two of CPU at the limit; collc's 16-GPU
#: allreduce plan needs about 12,000)
MAX_SIMULATED_STEPS = 2**22

SIGNALS = frozenset({"signal", "rlxsignal"})
WAITS = frozenset({"wait", "rlxwait"})
PUTS = frozenset({"put", "pws", "pwsf"})
#: ops whose effect collc does not model: the verifier says so instead of accepting the plan
UNSIMULATED = frozenset({"glres", "gstore", "gstorepkt"})
#: ops that read or write data (run by every thread of the block)
DATA_OPS = frozenset(
    {"put", "pws", "pwsf", "get", "copy", "re", "res", "rre", "rres"}
    | {"ppkt", "rppkt", "respkt", "repkt", "recpkt", "recspkt", "cpkt", "upkt"}
)
PACKET_OPS = frozenset({"ppkt", "rppkt", "respkt", "repkt", "recpkt", "recspkt", "cpkt", "upkt"})
SYNCS = frozenset({"nop", "barrier"})
#: ops that sum their sources
REDUCES = frozenset({"re", "res", "rre", "rres", "respkt", "repkt", "recpkt", "recspkt"})


@dataclass(frozen=True)
class Access:
    """One operand of an op as the kernel uses it: ``rank``'s buffer ``letter`` (``p``: scratch in
    packet format), chunks ``index .. index+size``, read or written, and whether through a remote
    pointer or a port channel's proxy (``channel``, the GPU-level port channel index)."""

    rank: int
    letter: str
    index: int
    size: int
    write: bool
    ref: BufferRef
    channel: int | None = None
    packet: bool = False  # the handler treats the operand as packets (data and flags, in scratch)


def verify_plan_text(
    text: str, filename: str | None = None, topology: Topology | None = None
) -> VerifyReport:
    """Read and verify a plan; a parser-rule violation is the report's one problem. Raises
    :class:`InputError` only for input beyond collc's limits. With ``topology``, a plan for another
    number of ranks is an error (``topology-ngpus``, as for an MSCCL XML file)."""
    try:
        plan = read_plan(text, filename)
    except PlanSyntaxError as error:
        if error.rule == "input-limit":
            raise
        problem = Problem(error.rule, "error", error.message, error.location, error.hint)
        return VerifyReport(filename=filename, runtime=TARGET, problems=[problem])
    report = verify_plan(plan, filename)
    if topology is not None and topology.num_gpus != len(plan.gpus):
        report.problems.insert(
            0,
            Problem(
                "topology-ngpus",
                "error",
                f"the plan is for {len(plan.gpus)} ranks but topology {topology.name} has "
                f"{topology.num_gpus} GPUs",
                location_in(filename),
                "verify against the topology the plan was compiled for",
            ),
        )
    return report


def lint_plan(plan: Plan) -> list[Problem]:
    """The executor's rules, checked statically (step 1 of the module docstring, no simulation)."""
    lint = _Lint(plan)
    lint.run()
    return lint.problems


def verify_plan(plan: Plan, filename: str | None = None) -> VerifyReport:
    """Check ``plan`` against the executor's rules, then simulate it (when the rules leave it
    meaningful) for deadlock, races and the collective's result."""
    report = VerifyReport(filename=filename, runtime=TARGET)
    report.problems.extend(lint_plan(plan))
    if report.errors:
        report.notes.append("not simulated: the plan breaks the executor's rules above")
        return report
    _check_simulation_size(plan, filename)
    pipelined = any(op.name == "pipeline" for gpu in plan.gpus for tb in gpu.threadblocks for op in tb.ops)
    seen: set[tuple[str, str]] = set()
    runs = [(False, 1), (True, 1)] if pipelined else [(False, 1)]
    for once, calls in [*runs, (False, 2)]:
        for problem in _Simulation(plan, once=once, calls=calls).run():
            # a later run adds what is new; a hang or leftover it repeats only follows from the first
            repeated = problem.rule in _CONSEQUENTIAL and problem.rule in {rule for rule, _ in seen}
            if (problem.rule, problem.message) not in seen and not repeated:
                seen.add((problem.rule, problem.message))
                report.problems.append(problem)
    sizes = served_sizes(plan)
    if sizes is not None:
        report.notes.append(sizes)
    placement = "in-place" if plan.inplace else "out-of-place"
    checked = "" if plan.collective in collective.CHECKED_COLLECTIVES else " (no postcondition known)"
    report.notes.append(f"simulated {plan.collective}{checked}, {placement}, {len(plan.gpus)} rank(s)")
    report.notes.append("two consecutive calls on the same buffers simulated for hazards between calls")
    if pipelined:
        report.notes.append(
            "pipelines simulated at one chunk per iteration (num_chunks iterations: the finest interleaving) "
            "and at one iteration (calls whose chunks fit one unit_size)"
        )
    return report


def _check_simulation_size(plan: Plan, filename: str | None) -> None:
    """Refuse, before any allocation, a plan whose simulation would exceed collc's limits: the chunks
    it tracks, the clocks of its processes (threadblocks and port proxies) and the op executions of its
    longest run (two calls, every pipeline at one chunk per iteration)."""
    chunks = sum(gpu.input_chunks + gpu.output_chunks + 2 * gpu.scratch_chunks for gpu in plan.gpus)
    processes = sum(len(gpu.threadblocks) + len(_channel_peers(gpu, "port")) for gpu in plan.gpus)
    steps = 2 * sum(
        len(op.inner) * (op.num_chunks or 1) if op.name == "pipeline" else 1
        for gpu in plan.gpus
        for tb in gpu.threadblocks
        for op in tb.ops
    )
    if (
        chunks > MAX_SIMULATED_CHUNKS
        or processes * len(plan.gpus) > MAX_SIMULATED_CLOCK_ENTRIES
        or steps > MAX_SIMULATED_STEPS
    ):
        raise InputError(
            f"the plan has {chunks:,} chunks, {processes:,} threadblocks and port channels on "
            f"{len(plan.gpus)} rank(s) and {steps:,} op executions to simulate; collc simulates at most "
            f"{MAX_SIMULATED_CHUNKS:,} chunks, {MAX_SIMULATED_CLOCK_ENTRIES:,} threadblocks × ranks and "
            f"{MAX_SIMULATED_STEPS:,} op executions",
            location=Location(filename),
            hint="use fewer chunks per buffer or per pipeline",
        )


def _where(op: Op) -> str:
    return f"{render_path(op.path)} ({op.name})"


class _Reporter:
    """Collects problems once per key, at most MAX_LISTED per rule (:class:`collc.verify.report.Tally`),
    each located at its JSON path."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.problems: list[Problem] = []
        self._seen: set[tuple] = set()
        self._tally = Tally()

    def add(
        self,
        rule: str,
        path: JsonPath | None,
        message: str,
        hint: str | None = None,
        severity: Severity = "error",
        key: tuple | None = None,
    ) -> None:
        key = (rule, *(key if key is not None else (path, message)))
        if key in self._seen:
            return
        self._seen.add(key)
        if not self._tally.admit(rule, severity):
            return
        location = self.plan.locate(path) if path is not None else None
        self.problems.append(Problem(rule, severity, message, location, hint))

    def finish(self) -> None:
        self.problems.extend(self._tally.summaries())


def _largest_call(plan: Plan) -> int | None:
    """The largest call size (input bytes; output for allgather) whose buffers all fit 32-bit offsets."""
    limits = []
    for gpu in plan.gpus:
        chunks = plan.call_chunks(gpu)
        if not chunks:
            continue
        scratch = Fraction(gpu.scratch_chunks * (2 if plan.protocol == "LL" else 1), chunks)
        limits.append(int(Fraction(_U32) / max(Fraction(1), scratch)))
    return min(limits, default=None)


def _call_chunks(plan: Plan) -> int:
    """The chunks every call is cut into (the first GPU's, :meth:`Plan.call_chunks`); 0 where the plan
    names no GPU, no chunks or no buffer_alignment, so that it takes no call."""
    return plan.call_chunks(plan.gpus[0]) if plan.gpus and plan.buffer_alignment else 0


def takes_call(plan: Plan, nbytes: int) -> bool:
    """Whether the executor runs ``plan`` for a call of ``nbytes`` (:func:`served_sizes` in words): a
    multiple of buffer_alignment × chunks, between min_message_size and max_message_size."""
    chunks = _call_chunks(plan)
    step = plan.buffer_alignment * chunks
    return bool(chunks) and plan.min_message_size <= nbytes <= plan.max_message_size and nbytes % step == 0


def served_sizes(plan: Plan) -> str | None:
    """Which call sizes the executor accepts, in words: multiples of buffer_alignment × chunks (its
    call-time check) between min_message_size and max_message_size."""
    chunks = _call_chunks(plan)
    if not chunks:
        return None
    step = plan.buffer_alignment * chunks
    top = (
        "no upper bound" if plan.max_message_size >= 2**64 - 1 else f"at most {plan.max_message_size:,} bytes"
    )
    return (
        f"the executor takes calls of a multiple of {step:,} bytes (buffer_alignment "
        f"{plan.buffer_alignment} × {chunks} chunks), at least {plan.min_message_size:,} bytes, {top}"
    )


def _expected_chunks(plan: Plan) -> tuple[int, tuple[int, int]] | None:
    """``(N, (input chunks, output chunks))`` the collective needs, N being the whole data in chunks
    (the model of :mod:`collc.verify.collective`), or None when the collective is not known."""
    if not plan.gpus or plan.collective not in collective.CHECKED_COLLECTIVES:
        return None
    gpu, ngpus = plan.gpus[0], len(plan.gpus)
    nchunks = plan.call_chunks(gpu)
    sizes = collective.real_sizes(plan.collective, nchunks, ngpus)
    return (nchunks, sizes) if sizes is not None else None


class _Lint(_Reporter):
    """The executor's rules, checked statically (module docstring, step 1)."""

    def run(self) -> None:
        plan = self.plan
        for unknown in plan.unknown_fields:
            also = f"; did you mean {unknown.suggestion!r}?" if unknown.suggestion else ""
            self.add(
                "unknown-field",
                unknown.path,
                f"{render_path(unknown.path)}: the v0.10.x executor ignores this field{also}",
                hint="field names change between MSCCL++ releases: write the plan for v0.10.x",
                severity="warning",
            )
        if plan.protocol not in ("Simple", "LL"):
            self.add(
                "protocol",
                ("protocol",),
                f"protocol {plan.protocol!r}: the executor runs every protocol but 'LL' as 'Simple'",
                hint="write 'Simple' or 'LL'",
                severity="warning",
            )
        if plan.buffer_alignment == 0:
            self.add("plan-range", ("buffer_alignment",), "buffer_alignment 0: the executor divides by it")
        if not 1 <= plan.threads_per_block <= MAX_THREADS_PER_BLOCK:
            self.add(
                "threads",
                ("num_threads_per_block",),
                f"num_threads_per_block {plan.threads_per_block}: the kernel is built for 1..1024",
            )
        if plan.min_message_size > plan.max_message_size:
            self.add(
                "size-range",
                ("min_message_size",),
                f"min_message_size {plan.min_message_size} exceeds max_message_size "
                f"{plan.max_message_size}: the executor refuses every call",
                severity="warning",
            )
        if not plan.gpus:
            self.add("plan-range", ("gpus",), "gpus is empty: the plan has no rank to run")
        self.check_chunk_counts()
        self.check_offsets()
        for rank, gpu in enumerate(plan.gpus):
            self.check_gpu(rank, gpu)
        self.finish()

    def check_chunk_counts(self) -> None:
        plan = self.plan
        expected = _expected_chunks(plan)
        for rank, gpu in enumerate(plan.gpus):
            if gpu.input_chunks == 0 and gpu.output_chunks == 0:
                self.add("chunk-counts", gpu.path, f"gpus[{rank}]: input_chunks and output_chunks are both 0")
            elif expected is not None and (gpu.input_chunks, gpu.output_chunks) != expected[1]:
                want_i, want_o = expected[1]
                self.add(
                    "chunk-counts",
                    gpu.path,
                    f"gpus[{rank}]: {plan.collective} on {len(plan.gpus)} ranks needs input_chunks {want_i} "
                    f"and output_chunks {want_o} (chunks are one size: input/input_chunks = "
                    f"output/output_chunks), found {gpu.input_chunks} and {gpu.output_chunks}",
                    hint="give every rank the same chunking of the collective's input and output",
                )

    def check_offsets(self) -> None:
        """The executor's operations hold 32-bit byte offsets: a call whose largest buffer (the user
        buffer the call is sized by, or the scratch, twice as large on LL) passes 4 GiB wraps them."""
        plan = self.plan
        largest = _largest_call(plan)
        if largest is not None and plan.max_message_size > largest:
            self.add(
                "offset-limit",
                ("max_message_size",),
                f"max_message_size {plan.max_message_size} admits calls above {largest:,} bytes, where "
                "the executor's 32-bit buffer offsets wrap",
                hint=f"set max_message_size to at most {largest}",
                severity="warning",
            )

    def check_gpu(self, rank: int, gpu: Gpu) -> None:
        ngpus = len(self.plan.gpus)
        if gpu.id != rank:
            self.add(
                "gpu-id",
                (*gpu.path, "id"),
                f"gpus[{rank}] has id {gpu.id}: the executor reads rank r's plan from gpus[r] and throws "
                "'GPU rank does not match'",
            )
        for channel in gpu.channels:
            for position, peer in enumerate(channel.peers):
                if peer >= ngpus or peer == rank:
                    self.add(
                        "channel-peer",
                        (*channel.path, "connected_to", position),
                        f"{render_path(channel.path)} connects rank {rank} to rank {peer}, which is "
                        + ("itself" if peer == rank else f"not one of the {ngpus} ranks"),
                    )
        for buffer in gpu.remote_buffers:
            if buffer.rank >= ngpus:
                self.add(
                    "remote-buffer",
                    (*buffer.path, "rank"),
                    f"{render_path(buffer.path)} belongs to rank {buffer.rank}, not one of the {ngpus} ranks",
                )
        if not gpu.threadblocks:
            self.add(
                "plan-range",
                (*gpu.path, "threadblocks"),
                f"gpus[{rank}].threadblocks is empty: the executor would launch its kernel with no block, "
                "which CUDA refuses",
            )
        for position, tb in enumerate(gpu.threadblocks):
            if tb.id != position:
                self.add(
                    "threadblock-id",
                    (*tb.path, "id"),
                    f"{render_path(tb.path)} has id {tb.id}: the executor takes a threadblock's ops from its "
                    "position but its channels and buffers from its id",
                    hint="number the threadblocks 0, 1, 2, ... in order",
                )
            self.check_threadblock(rank, gpu, tb)

    def check_threadblock(self, rank: int, gpu: Gpu, tb: Threadblock) -> None:
        counts = _channel_counts(gpu)
        for kind, ids in tb.channels.items():
            if kind in ("memory", "port") and len(ids) > MAX_CHANNEL:
                self.add(
                    "channel-limit",
                    (*tb.path, "channels"),
                    f"{render_path(tb.path)} holds {len(ids)} {kind} channels; the device plan has room for "
                    f"{MAX_CHANNEL}",
                )
            for index in ids:
                if index >= counts.get(kind, 0):
                    self.add(
                        "channel-index",
                        (*tb.path, "channels"),
                        f"{render_path(tb.path)}.channels lists {kind} channel {index}, but gpus[{rank}] "
                        f"declares {counts.get(kind, 0)} {kind} channel(s) (one per connected_to entry)",
                    )
        for kind, ids in tb.remote_buffers.items():
            if len(ids) > MAX_CHANNEL:
                self.add(
                    "remote-buffer-limit",
                    (*tb.path, "remote_buffer_refs"),
                    f"{render_path(tb.path)} refers to {len(ids)} remote buffers by {kind} channel; the "
                    f"device plan has room for {MAX_CHANNEL}",
                )
            for index in ids:
                if index >= len(gpu.remote_buffers):
                    self.add(
                        "remote-buffer-index",
                        (*tb.path, "remote_buffer_refs"),
                        f"{render_path(tb.path)} refers to remote buffer {index}; gpus[{rank}] declares "
                        f"{len(gpu.remote_buffers)}",
                    )
                elif kind not in gpu.remote_buffers[index].access:
                    self.add(
                        "remote-buffer-access",
                        (*tb.path, "remote_buffer_refs"),
                        f"{render_path(tb.path)} accesses remote buffer {index} by {kind} channel, but its "
                        f"access_channel_types are {list(gpu.remote_buffers[index].access)}: the executor "
                        "then uses whatever buffer sits at index 0",
                        hint=f"add {kind!r} to the remote buffer's access_channel_types",
                    )
        total = sum(1 + len(op.inner) for op in tb.ops)
        if total > MAX_OPERATION:
            self.add(
                "op-limit",
                (*tb.path, "ops"),
                f"{render_path(tb.path)} has {total} ops; the v0.10.x executor throws above "
                f"{MAX_OPERATION} per threadblock",
                hint="spread the ops over more threadblocks",
            )
        for op in tb.ops:
            self.check_op(rank, gpu, tb, op)
        self.check_syncs(tb)

    # -- one op --------------------------------------------------------------------------------------

    def check_op(self, rank: int, gpu: Gpu, tb: Threadblock, op: Op) -> None:
        where = _where(op)
        if op.name == "pipeline":
            self.check_pipeline(rank, gpu, tb, op)
            return
        what = _unsimulated(op)
        if what is not None:
            self.add(
                "not-simulated",
                op.path,
                f"{where}: collc does not simulate {what}; the plan cannot be verified",
                hint="collc verifies plans of put/get/copy/reduce, packet, signal/wait, barrier and "
                "semaphore ops",
                key=(what,),
            )
            return
        if op.name in ("signal", "wait", "rlxsignal", "rlxwait", "flush") or (
            op.name in PUTS and op.channel_type == "port"
        ):
            self.check_channels(tb, op)
        if op.name == "flush":
            flushed = len(op.dst)
            if op.channel_type != "port":
                self.add("op-channel", op.path, f"{where}: flush needs channel_type 'port'")
            elif flushed < len(op.channel_ids or ()):
                self.add(
                    "flush-noop",
                    op.path,
                    f"{where}: the v0.10.x kernel flushes as many channels as the op has dst_buff entries "
                    f"({flushed}), not its {len(op.channel_ids or ())} channel_ids",
                    hint="do not rely on this flush to free the source of a port put",
                    severity="warning",
                )
        if op.name == "barrier":
            self.check_barrier(gpu, op)
        if op.name in ("sem_acquire", "sem_release"):
            ids = op.semaphore_ids or ()
            if not ids or len(ids) > MAX_DEVICE_SEMAPHORES:
                self.add("op-fields", op.path, f"{where}: needs 1..{MAX_DEVICE_SEMAPHORES} semaphore_ids")
            for index in ids:
                if index >= len(gpu.semaphores):
                    self.add(
                        "semaphore-id",
                        op.path,
                        f"{where}: semaphore {index}, but gpus[{rank}] declares {len(gpu.semaphores)}",
                    )
        if op.name in DATA_OPS:
            self.check_data_op(gpu, tb, op)

    def check_pipeline(self, rank: int, gpu: Gpu, tb: Threadblock, pipeline: Op) -> None:
        """A pipeline runs its ops ceil(num_chunks × chunk size / unit_size) times, each time on the next
        unit_size bytes of every operand: the operands must be num_chunks chunks each, and the packet
        handlers, which ignore the iteration, cannot run inside one."""
        where = _where(pipeline)
        if not pipeline.unit_size or not pipeline.num_chunks:
            self.add(
                "pipeline-fields",
                pipeline.path,
                f"{where}: unit_size {pipeline.unit_size} and num_chunks {pipeline.num_chunks} must be "
                "positive (the executor divides by unit_size)",
            )
            return
        for op in pipeline.inner:
            if op.name == "pipeline" or op.name in PACKET_OPS:
                self.add(
                    "pipeline-op",
                    op.path,
                    f"{_where(op)} inside a pipeline: the v0.10.x kernel "
                    + (
                        "runs one level of pipeline"
                        if op.name == "pipeline"
                        else "runs packet ops on their whole operands in every iteration"
                    ),
                    hint="move the op out of the pipeline",
                )
                continue
            sizes = {ref.size for ref in (*op.src, *op.dst)}
            if sizes - {pipeline.num_chunks}:
                self.add(
                    "pipeline-sizes",
                    op.path,
                    f"{_where(op)} moves {sorted(sizes)} chunk(s) inside a pipeline of num_chunks "
                    f"{pipeline.num_chunks}: the iterations stop at num_chunks (a larger operand is cut "
                    "short, a smaller one is overrun)",
                    hint="give every operand of a pipelined op num_chunks chunks",
                )
            self.check_op(rank, gpu, tb, op)

    def check_channels(self, tb: Threadblock, op: Op) -> None:
        where = _where(op)
        if op.channel_type not in ("memory", "port"):
            self.add(
                "op-channel",
                op.path,
                f"{where}: needs channel_type 'memory' or 'port', found {op.channel_type!r}",
                hint="signal, wait and port puts act on the channels of one type",
            )
            return
        ids = op.channel_ids
        if not ids:
            self.add(
                "op-fields",
                op.path,
                f"{where}: has no channel_ids, so the kernel acts on no channel",
                hint="list the threadblock's channels this op acts on in channel_ids",
            )
            return
        if len(ids) > MAX_CHANNEL_PER_OPERATION:
            self.add("channel-limit", op.path, f"{where}: {len(ids)} channels; an op takes at most 8")
        held = tb.channels.get(op.channel_type, ())
        for position, index in enumerate(ids):
            if index >= len(held):
                self.add(
                    "channel-index",
                    (*op.path, "channel_ids", position),
                    f"{where}: channel_ids[{position}] = {index}, but {render_path(tb.path)} holds "
                    f"{len(held)} {op.channel_type} channel(s): the kernel reads an unset channel",
                    hint="channel_ids index the threadblock's own channel list (its 'channels' entry)",
                )

    def check_barrier(self, gpu: Gpu, op: Op) -> None:
        where = _where(op)
        if op.barrier_id is None or op.num_threadblocks is None:
            self.add("op-fields", op.path, f"{where}: needs barrier_id and num_threadblocks")
            return
        if op.barrier_id >= MAX_DEVICE_SYNCERS:
            self.add("barrier-id", op.path, f"{where}: barrier_id {op.barrier_id}; the kernel has 16 (0..15)")
        if not 1 <= op.num_threadblocks <= len(gpu.threadblocks):
            self.add(
                "barrier-count",
                op.path,
                f"{where}: num_threadblocks {op.num_threadblocks}, but the rank has {len(gpu.threadblocks)}",
            )

    def check_operand(self, gpu: Gpu, tb: Threadblock, op: Op, ref: BufferRef) -> bool:
        """Whether an operand names a buffer; reports why not (a bad remote buffer of the threadblock is
        reported with the threadblock)."""
        if _target(self.plan, gpu, tb, op, ref) is not None:
            return True
        where = render_path(ref.path)
        kind = op.channel_type or "none"
        held = tb.remote_buffers.get(kind, ())
        if ref.buffer_id is None:
            if ref.buffer is not None:  # the buffer of a rank whose id is out of range (gpu-id says so)
                return False
            self.add("op-buffers", ref.path, f"{where}: names neither a buffer type nor a buffer_id")
        elif ref.buffer_id >= len(held):
            self.add(
                "remote-buffer-index",
                (*ref.path, "buffer_id"),
                f"{where}: buffer_id {ref.buffer_id}, but {render_path(tb.path)} refers to {len(held)} "
                f"remote buffer(s) by {kind} channel",
                hint="buffer_id indexes the threadblock's remote_buffer_refs of the op's channel type",
            )
        return False

    def check_data_op(self, gpu: Gpu, tb: Threadblock, op: Op) -> None:
        where = _where(op)
        shape = _SHAPES[op.name]
        for side, refs, remote_from in (
            ("src_buff", op.src, shape.remote_src),
            ("dst_buff", op.dst, shape.remote_dst),
        ):
            if not shape.low(side) <= len(refs) <= MAX_BUFFERS_PER_OPERATION:
                self.add(
                    "op-buffers",
                    op.path,
                    f"{where}: {len(refs)} {side} entries; {op.name} takes {shape.describe(side)}",
                )
                return
            for position, ref in enumerate(refs):
                want_remote = remote_from is not None and position >= remote_from
                if ref.remote != want_remote:
                    self.add(
                        "op-buffers",
                        ref.path,
                        f"{render_path(ref.path)}: the kernel takes {op.name}'s {side}[{position}] as a "
                        + ("remote buffer (buffer_id)" if want_remote else "local buffer (type)"),
                    )
                    return
        if any(ref.remote for ref in (*op.src, *op.dst)) or op.name in PUTS:
            allowed = ("memory", "port") if op.name in PUTS or op.name in ("ppkt", "rppkt") else ("memory",)
            if op.channel_type not in allowed:
                self.add(
                    "op-channel",
                    op.path,
                    f"{where}: reaches remote buffers by channel_type {op.channel_type!r}; {op.name} works "
                    f"through {' or '.join(repr(a) for a in allowed)} channels",
                )
                return
        if not all([self.check_operand(gpu, tb, op, ref) for ref in (*op.src, *op.dst)]):
            return
        if op.name in ("pws", "pwsf") and op.channel_type == "memory":
            self.add(
                "put-signal-channel",
                op.path,
                f"{where}: on a memory channel the v0.10.x kernel performs {op.name} as a plain put and "
                "sends no signal",
                hint="use channel_type 'port' for pws/pwsf, or a put, a nop and a signal on memory channels",
            )
        if op.name in PACKET_OPS and self.plan.protocol != "LL":
            self.add(
                "packet-protocol",
                op.path,
                f"{where}: packet ops need protocol 'LL' (its scratch holds data and flags, twice the size)",
            )
        accesses = list(_accesses(self.plan, gpu, tb, op))
        sizes = {access.size for access in accesses}
        if len(sizes) > 1:
            self.add(
                "op-sizes",
                op.path,
                f"{where}: operands of sizes {sorted(sizes)}; the kernel moves the first operand's size "
                "for all",
                hint="give every src_buff and dst_buff entry of one op the same size",
            )
        for access in accesses:
            self.check_bounds(access)
            if access.packet and access.letter != "p":
                self.add(
                    "op-buffers",
                    access.ref.path,
                    f"{render_path(access.ref.path)}: {op.name} handles this operand as packets, which the "
                    f"kernel keeps in scratch, not in {access.letter!r}",
                    hint="packet operands are scratch chunks (type 's', or a remote buffer of type 's')",
                )
        if op.name == "get":
            for src, dst in zip(op.src, op.dst, strict=False):
                if src.index != dst.index:
                    self.add(
                        "get-offsets",
                        op.path,
                        f"{where}: the v0.10.x kernel swaps a get's offsets (it writes the local buffer at "
                        f"the source's offset, chunk {src.index}, and reads the remote one at chunk "
                        f"{dst.index})",
                        hint="use the same index on both sides of a get, or a put from the other rank",
                    )
        if op.name in PUTS | {"ppkt", "rppkt"} and op.channel_type == "port":
            self.check_port_peers(gpu, tb, op)
        if len({ref.buffer for ref in op.src if not ref.remote}) > 1 and op.name in PUTS | {"ppkt"}:
            self.add(
                "op-buffers",
                op.path,
                f"{where}: the kernel takes every source of a {op.name} from the buffer of src_buff[0]",
            )

    def check_bounds(self, access: Access) -> None:
        gpu = self.plan.gpus[access.rank]
        sizes = {
            "i": gpu.input_chunks,
            "o": gpu.output_chunks,
            "s": gpu.scratch_chunks,
            "p": gpu.scratch_chunks,
        }
        have = sizes[access.letter]
        if access.size == 0 or access.index + access.size > have:
            name = "s" if access.letter == "p" else access.letter
            self.add(
                "chunk-bounds",
                access.ref.path,
                f"{render_path(access.ref.path)}: chunks {access.index}..{access.index + access.size - 1} of "
                f"buffer {name!r} of rank {access.rank}, which has {have} chunk(s)",
                hint="index and size count chunks of the buffer (input_chunks, output_chunks or "
                "scratch_chunks)",
            )

    def check_port_peers(self, gpu: Gpu, tb: Threadblock, op: Op) -> None:
        ids, held = op.channel_ids or (), tb.channels.get("port", ())
        peers = _channel_peers(gpu, "port")
        for position, ref in enumerate(op.dst):
            if position >= len(ids):
                self.add(
                    "op-fields",
                    op.path,
                    f"{_where(op)}: dst_buff[{position}] has no channel in channel_ids (one port channel per "
                    "destination)",
                )
                return
            if ids[position] >= len(held) or held[ids[position]] >= len(peers):
                return  # reported as channel-index
            target = _target(self.plan, gpu, tb, op, ref)
            peer = peers[held[ids[position]]]
            if target is not None and target[0] != peer:
                self.add(
                    "channel-peer",
                    (*op.path, "channel_ids", position),
                    f"{_where(op)}: writes rank {target[0]}'s buffer through the port channel to rank {peer}",
                    hint="pick the channel whose connected_to rank owns the destination buffer",
                )

    # -- nops --------------------------------------------------------------------------------------

    def check_syncs(self, tb: Threadblock) -> None:
        """A signal (or release) right after a data op, with no ``nop`` between, overtakes the data: the
        first threads signal while the others may still move it. (Waits and data touched twice in one
        segment are checked by the simulation, which knows whether something else orders them.)"""
        last_data: Op | None = None
        for op in _flatten(tb.ops, iterations=2):
            if op.name in SYNCS:
                last_data = None
            elif op.name in DATA_OPS:
                last_data = op
            elif (
                (op.name in SIGNALS or op.name == "sem_release")
                and last_data is not None
                and not _port_follow_up(last_data, op)
            ):
                self.add(
                    "missing-sync",
                    op.path,
                    f"{_where(op)} follows {_where(last_data)} with no nop between: its first threads "
                    "signal while the others may still move the data",
                    hint='insert {"name": "nop"} before the signal',
                )


def _flatten(ops: tuple[Op, ...], iterations: int) -> list[Op]:
    """The ops in execution order, each pipeline's ops repeated ``iterations`` times."""
    return [inner for op in ops for inner in (op.inner * iterations if op.name == "pipeline" else (op,))]


class _Step(NamedTuple):
    """One op as a threadblock executes it: iteration ``iteration`` of ``iterations`` of its pipeline
    (0 of 1 outside pipelines), in call ``call`` of the run."""

    op: Op
    iteration: int = 0
    iterations: int = 1
    call: int = 0

    def slice(self, access: Access) -> Access:
        """The part of an operand this iteration moves: the next ``size / iterations`` chunks."""
        if self.iterations == 1:
            return access
        width = access.size // self.iterations
        return dataclasses.replace(access, index=access.index + self.iteration * width, size=width)


def _steps(tb: Threadblock, once: bool, calls: int, threadblocks: int) -> tuple[_Step, ...]:
    """A threadblock's ops in execution order for ``calls`` consecutive calls; a pipeline runs its ops
    num_chunks times (one chunk of every operand per iteration) or, with ``once``, one time on whole
    operands. Between two calls, every threadblock of the rank meets at the kernel's end: the next
    kernel on the rank's stream starts after the whole previous one."""
    steps: list[_Step] = []
    for call in range(calls):
        if call:
            end = Op(tb.path, "barrier", barrier_id=-call, num_threadblocks=threadblocks)
            steps.append(_Step(end, call=call))
        for op in tb.ops:
            if op.name != "pipeline":
                steps.append(_Step(op, call=call))
                continue
            count = 1 if once else op.num_chunks or 1
            steps.extend(
                _Step(inner, iteration, count, call) for iteration in range(count) for inner in op.inner
            )
    return tuple(steps)


def _unsimulated(op: Op) -> str | None:
    """What of ``op`` collc does not model, or None."""
    if op.name in UNSIMULATED:
        return f"'{op.name}'"
    if op.tbg is not None:
        return "threadblock groups (tbg_info)"
    if any(ref.switch_channel_id is not None for ref in (*op.src, *op.dst)):
        return "switch channels (NVLS)"
    return None


def _port_follow_up(data_op: Op, signal: Op) -> bool:
    """A port put followed by a signal on the same port channels: each thread issues both into its
    channel's FIFO, which the proxy serves in order."""
    return (
        data_op.name in PUTS
        and data_op.channel_type == "port"
        and signal.channel_type == "port"
        and (signal.channel_ids or ()) == (data_op.channel_ids or ())[: len(signal.channel_ids or ())]
    )


def _channel_counts(gpu: Gpu) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for channel in gpu.channels:
        counts[channel.type] += len(channel.peers) if channel.type != "switch" else 1
    return counts


def _channel_peers(gpu: Gpu, kind: str) -> list[int]:
    """The peer of each GPU-level channel of ``kind``, in the executor's order (one per connected_to)."""
    return [peer for channel in gpu.channels if channel.type == kind for peer in channel.peers]


@dataclass(frozen=True)
class _Shape:
    """How many operands an op kind reads and writes and from which position they are remote."""

    src: tuple[int, int]  # (at least, at most)
    dst: tuple[int, int]
    remote_src: int | None = None  # index of the first remote src (None: all local)
    remote_dst: int | None = None

    def low(self, side: str) -> int:
        return (self.src if side == "src_buff" else self.dst)[0]

    def describe(self, side: str) -> str:
        low, high = self.src if side == "src_buff" else self.dst
        return f"{low}" if low == high else f"{low} to {high}"


_ANY = MAX_BUFFERS_PER_OPERATION
_SHAPES = {
    "copy": _Shape((1, 1), (1, 1)),
    "put": _Shape((1, _ANY), (1, _ANY), remote_dst=0),
    "pws": _Shape((1, _ANY), (1, _ANY), remote_dst=0),
    "pwsf": _Shape((1, _ANY), (1, _ANY), remote_dst=0),
    "get": _Shape((1, _ANY), (1, _ANY), remote_src=0),
    "re": _Shape((2, _ANY), (1, 1)),
    "res": _Shape((2, _ANY), (2, _ANY), remote_dst=1),
    "rre": _Shape((2, _ANY), (1, 1), remote_src=1),
    "rres": _Shape((2, _ANY), (2, _ANY), remote_src=1, remote_dst=1),
    "ppkt": _Shape((1, _ANY), (1, _ANY), remote_dst=0),
    "rppkt": _Shape((1, 1), (1, _ANY), remote_dst=0),
    "respkt": _Shape((2, _ANY), (2, _ANY), remote_dst=1),
    "repkt": _Shape((2, _ANY), (1, 1)),
    "recspkt": _Shape((2, _ANY), (3, _ANY), remote_dst=2),
    "recpkt": _Shape((2, _ANY), (2, 2)),
    "cpkt": _Shape((1, 1), (1, 1)),
    "upkt": _Shape((1, 1), (1, 1)),
}


def _target(plan: Plan, gpu: Gpu, tb: Threadblock, op: Op, ref: BufferRef) -> tuple[int, str] | None:
    """``(rank, buffer letter)`` of an operand: a buffer of ``gpu``, or the remote buffer its
    ``buffer_id`` names among the threadblock's remote buffers of the op's channel type; None when the
    names do not resolve."""
    if ref.buffer_id is None:
        return (gpu.id, ref.buffer) if ref.buffer is not None and gpu.id < len(plan.gpus) else None
    held = tb.remote_buffers.get(op.channel_type or "none", ())
    if ref.buffer_id >= len(held) or held[ref.buffer_id] >= len(gpu.remote_buffers):
        return None
    remote = gpu.remote_buffers[held[ref.buffer_id]]
    return (remote.rank, remote.buffer) if remote.rank < len(plan.gpus) else None


def _accesses(plan: Plan, gpu: Gpu, tb: Threadblock, op: Op) -> Iterator[Access]:
    """Every operand of a data op as the v0.10.x kernel uses it (execution_kernel.hpp's handlers),
    skipping operands that do not resolve (reported by the lint)."""
    name = op.name
    port = op.channel_type == "port"
    port_ids = tb.channels.get("port", ())

    def channel_of(position: int) -> int | None:
        ids = op.channel_ids or ()
        if not port or position >= len(ids) or ids[position] >= len(port_ids):
            return None
        return port_ids[ids[position]]

    def packet(letter: str) -> str:
        return "p" if letter == "s" else letter

    for position, ref in enumerate(op.src):
        found = _target(plan, gpu, tb, op, ref)
        if found is None:
            continue
        owner, letter = found
        if name in PUTS or name == "ppkt":
            letter = op.src[0].buffer or letter  # the kernel reads every source from src_buff[0]'s buffer
        is_packet = (
            (name == "ppkt" and port)
            or name in ("rppkt", "upkt")
            or (name in ("respkt", "repkt", "recpkt", "recspkt") and position > 0)
        )
        channel = channel_of(position) if name in PUTS | {"ppkt"} else None
        yield Access(
            owner,
            packet(letter) if is_packet else letter,
            ref.index,
            ref.size,
            False,
            ref,
            channel,
            is_packet,
        )
    for position, ref in enumerate(op.dst):
        found = _target(plan, gpu, tb, op, ref)
        if found is None:
            continue
        owner, letter = found
        is_packet = (
            name in ("ppkt", "rppkt", "cpkt")
            or (name in ("respkt", "repkt") and position > 0)
            or (name in ("recpkt", "recspkt") and position > 0)
        )
        channel = channel_of(position) if name in PUTS | {"ppkt", "rppkt"} else None
        yield Access(
            owner, packet(letter) if is_packet else letter, ref.index, ref.size, True, ref, channel, is_packet
        )


# -- simulation --------------------------------------------------------------------------------------


@dataclass
class _Stamp:
    """What a signal, a packet or a release carries: its sender's clock and own entry."""

    clock: Clock
    gid: int
    epoch: int
    relaxed: bool = False


class _Memory:
    """One storage of one rank: symbolic values and the last write and reads since, per chunk."""

    def __init__(self, values: list[Value]):
        self.values = values
        self.writer = [-1] * len(values)
        self.write_epoch = [0] * len(values)
        self.write_op: list[Op | None] = [None] * len(values)
        self.write_stamp: list[_Stamp | None] = [None] * len(values)
        self.write_call = [0] * len(values)
        self.readers: list[dict[int, tuple[int, Op, int]]] = [{} for _ in values]  # gid -> (epoch, op, call)


class _Simulation(_Reporter):
    """One greedy run of the plan (module docstring, step 2).

    Processes (``gid``) are the threadblocks of every rank, then one proxy per port channel. A
    process's vector clock has one block per rank (threadblocks then proxies of that rank).
    """

    def __init__(self, plan: Plan, once: bool = False, calls: int = 1):
        super().__init__(plan)
        self.calls = calls
        self.ngpus = len(plan.gpus)
        expected = _expected_chunks(plan)
        self.nchunks = expected[0] if expected is not None else 0
        self.owner: list[tuple[int, int]] = []  # gid -> (rank, local position)
        self.ops: list[tuple[_Step, ...]] = []
        self.tbs: list[Threadblock | None] = []
        self.proxy: dict[tuple[int, int], int] = {}  # (rank, port channel) -> gid
        widths = []
        for gpu in plan.gpus:
            for position, tb in enumerate(gpu.threadblocks):
                self.owner.append((gpu.id, position))
                self.ops.append(_steps(tb, once, calls, len(gpu.threadblocks)))
                self.tbs.append(tb)
            for channel in range(len(_channel_peers(gpu, "port"))):
                self.proxy[(gpu.id, channel)] = len(self.owner)
                self.owner.append((gpu.id, len(gpu.threadblocks) + channel))
                self.ops.append(())
                self.tbs.append(None)
            widths.append(len(gpu.threadblocks) + len(_channel_peers(gpu, "port")))
        # an epoch grows by one per operation at most (a proxy's per put it serves): bounded by them all
        most_epochs = 1 + sum(len(ops) for ops in self.ops)
        self.clocks = ClockFactory(self.ngpus, max(widths, default=0), most_epochs)
        count = len(self.owner)
        self.clock = [self.clocks.zero] * count
        self.epoch = [1] * count
        self.pc = [0] * count
        self.blocked: list[str | None] = [None] * count
        #: what the threads that waited learnt since the last sync (None: nothing more than ``clock``)
        self.pending: list[Clock | None] = [None] * count
        #: how many of each threadblock's first threads waited since its last sync (they share ``pending``)
        self.waited = [0] * count
        #: epoch of each threadblock's last sync (its ops before it are ordered before its ops after)
        self.synced = [0] * count
        self.waiters: dict[tuple, list[int]] = defaultdict(list)
        self.pairs = self._pair_channels()
        self.inbox: dict[tuple[int, str, int], list[_Stamp]] = defaultdict(list)
        self.consumed: dict[tuple[int, str, int], int] = defaultdict(int)
        self.barriers: dict[tuple[int, int], list[tuple[int, _Stamp, int]]] = defaultdict(list)
        self.released: dict[int, Clock] = {}  # threadblocks let through a barrier: what they learn
        self.semaphores = {
            (gpu.id, index): deque([None] * value)
            for gpu in plan.gpus
            for index, value in enumerate(gpu.semaphores)
        }
        self.memory: dict[tuple[int, str], _Memory] = {}
        self.views: dict[tuple[int, str], tuple[_Memory, int]] = {}
        self._build_memory()

    # -- setup -------------------------------------------------------------------------------------

    def _pair_channels(self) -> dict[tuple[int, str, int], tuple[int, int] | None]:
        """(rank, type, channel) -> (peer, the peer's channel it is connected to) or None: the k-th
        channel of a type from a to b meets the k-th from b to a (the executor tags connections per peer
        in declaration order; an extra one gets a connection nobody holds a channel of)."""
        occurrences: dict[tuple[int, str, int, int], int] = {}
        pairs: dict[tuple[int, str, int], tuple[int, int] | None] = {}
        for gpu in self.plan.gpus:
            for kind in ("memory", "port"):
                seen: dict[int, int] = defaultdict(int)
                for channel, peer in enumerate(_channel_peers(gpu, kind)):
                    occurrences[(gpu.id, kind, peer, seen[peer])] = channel
                    pairs[(gpu.id, kind, channel)] = (peer, seen[peer])
                    seen[peer] += 1
        return {
            key: (value[0], occurrences[(value[0], key[1], key[0], value[1])])
            if value is not None and (value[0], key[1], key[0], value[1]) in occurrences
            else None
            for key, value in pairs.items()
        }

    def _build_memory(self) -> None:
        plan = self.plan
        for gpu in plan.gpus:
            buffers = None
            if self.nchunks:
                buffers = collective.layout(
                    plan.collective,
                    self.nchunks,
                    self.ngpus,
                    gpu.id,
                    gpu.scratch_chunks,
                    inplace=plan.inplace,
                )
            if buffers is None:  # no known collective: every buffer its own, the input defined
                storages = {"i": gpu.input_chunks, "o": gpu.output_chunks, "s": gpu.scratch_chunks}
                names = {letter: (letter, 0) for letter in storages}
                memory = {letter: [None] * size for letter, size in storages.items()}
                memory["i"] = [(j, 1 << gpu.id, 0) for j in range(gpu.input_chunks)]
            else:
                names = buffers.names
                memory = collective.initial_memory(plan.collective, self.nchunks, self.ngpus, gpu.id, buffers)
            for name, values in memory.items():
                self.memory[(gpu.id, name)] = _Memory(values)
            for letter, (name, base) in names.items():
                self.views[(gpu.id, letter)] = (self.memory[(gpu.id, name)], base)
            for letter in ("p", "s'", "p'"):  # packets; with a double scratch, odd calls' halves
                self.memory[(gpu.id, letter)] = _Memory([None] * gpu.scratch_chunks)
                self.views[(gpu.id, letter)] = (self.memory[(gpu.id, letter)], 0)

    def view(self, access: Access, call: int) -> tuple[_Memory, int]:
        """The storage and base an operand reaches in ``call`` (with use_double_scratch_buffer, odd
        calls use the other half of the scratch)."""
        letter = access.letter
        if self.plan.double_scratch and call % 2 and letter in ("s", "p"):
            letter += "'"
        return self.views[(access.rank, letter)]

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        ready = deque(gid for gid in range(len(self.owner)) if self.ops[gid])
        queued = [True] * len(self.owner)
        while ready:
            gid = ready.popleft()
            queued[gid] = False
            for woken in self.advance(gid):
                if not queued[woken]:
                    queued[woken] = True
                    ready.append(woken)
        stuck = [gid for gid in range(len(self.owner)) if self.pc[gid] < len(self.ops[gid])]
        if stuck:
            for gid in stuck:
                step = self.ops[gid][self.pc[gid]]
                where = _where(step.op)
                if step.iterations > 1:
                    where += f" in iteration {step.iteration + 1} of {step.iterations} of its pipeline"
                self.add(
                    "deadlock",
                    step.op.path,
                    f"{where} never completes: {self.blocked[gid]}",
                    hint="every wait needs a matching signal on the paired channel of the peer",
                    key=(gid,),
                )
        else:
            self.check_leftovers()
            if self.calls == 1:  # the data of a second call sits on the first one's
                self.check_unawaited()
                self.check_postcondition()
        self.finish()
        return self.problems

    def advance(self, gid: int) -> list[int]:
        woken: list[int] = []
        ops = self.ops[gid]
        while self.pc[gid] < len(ops):
            if not self.execute(gid, ops[self.pc[gid]], woken):
                return woken
            self.blocked[gid] = None
            self.pc[gid] += 1
            self.epoch[gid] += 1
        self.sync(gid)  # the kernel ends after every thread
        return woken

    def known_by(self, gid: int, thread: int) -> Clock:
        """What thread ``thread`` of ``gid`` knows: the first threads also what they waited for."""
        pending = self.pending[gid]
        return pending if pending is not None and thread < self.waited[gid] else self.clock[gid]

    def stamp(self, gid: int, relaxed: bool = False, thread: int = 0) -> _Stamp:
        """What a signal or release that thread ``thread`` of ``gid`` sends now carries (an op's k-th
        channel or semaphore is served by thread k)."""
        return _Stamp(self.known_by(gid, thread), gid, self.epoch[gid], relaxed)

    def join(self, gid: int, stamp: _Stamp, waiting_threads: int = 0) -> None:
        """``gid`` learns what ``stamp`` knew; what a wait or acquire learns reaches only the
        ``waiting_threads`` first threads (``pending``) until the next sync."""
        rank, local = self.owner[stamp.gid]
        if waiting_threads:
            into = self.pending[gid] or self.clock[gid]
            self.pending[gid] = self.clocks.join(into, stamp.clock, rank, local, stamp.epoch)
            self.waited[gid] = max(self.waited[gid], waiting_threads)
        else:
            self.clock[gid] = self.clocks.join(self.clock[gid], stamp.clock, rank, local, stamp.epoch)

    def learn(self, gid: int, clock: Clock) -> None:
        """``gid`` (all its threads) learns everything ``clock`` holds."""
        self.clock[gid] = self.clocks.join(self.clock[gid], clock, *self.owner[gid], 0)

    def sync(self, gid: int) -> None:
        """A ``nop`` or barrier: every thread of ``gid`` knows what any of them knew, and everything the
        block did before is ordered before what follows."""
        pending = self.pending[gid]
        if pending is not None:
            self.learn(gid, pending)
            self.pending[gid] = None
            self.waited[gid] = 0
        self.synced[gid] = self.epoch[gid]

    def block(self, gid: int, key: tuple, why: str) -> bool:
        self.blocked[gid] = why
        self.waiters[key].append(gid)
        return False

    def wake(self, key: tuple, woken: list[int]) -> None:
        woken.extend(self.waiters.pop(key, ()))

    def knows(self, gid: int, other: int, epoch: int) -> bool:
        """Whether ``other``'s step at ``epoch`` happens before ``gid``'s current step."""
        rank, local = self.owner[other]
        if other == gid and (self.tbs[gid] is None or epoch == self.epoch[gid] or epoch < self.synced[gid]):
            return True  # a proxy is sequential; one op's threads each handle their own elements
        return int(self.clocks.block(self.clock[gid], rank)[local]) >= epoch

    # -- ops ---------------------------------------------------------------------------------------

    def execute(self, gid: int, step: _Step, woken: list[int]) -> bool:
        op = step.op
        rank = self.owner[gid][0]
        tb = self.tbs[gid]
        assert tb is not None
        name = op.name
        if name in SIGNALS:
            for thread, channel in enumerate(self.channels(tb, op)):
                if op.channel_type == "port":
                    sender, stamp = self.via_proxy(gid, rank, channel, thread), None
                else:
                    sender, stamp = gid, self.stamp(gid, name == "rlxsignal", thread)
                self.signal(
                    sender, rank, op.channel_type or "memory", channel, name == "rlxsignal", woken, stamp
                )
            return True
        if name in WAITS:
            return self.wait(gid, rank, tb, op)
        if name == "flush":
            for channel in self.channels(tb, op)[: len(op.dst)]:
                proxy = self.proxy[(rank, channel)]
                self.join(gid, _Stamp(self.clock[proxy], proxy, self.epoch[proxy]))
            return True
        if name == "barrier":
            return self.barrier(gid, rank, op, woken)
        if name == "sem_release":
            for thread, index in enumerate(op.semaphore_ids or ()):
                self.semaphores[(rank, index)].append(self.stamp(gid, thread=thread))
                self.wake(("sem", rank, index), woken)
            return True
        if name == "sem_acquire":
            for index in op.semaphore_ids or ():
                if not self.semaphores[(rank, index)]:
                    return self.block(
                        gid, ("sem", rank, index), f"semaphore {index} of rank {rank} has no token"
                    )
            for index in op.semaphore_ids or ():
                token = self.semaphores[(rank, index)].popleft()
                if token is not None:
                    self.join(gid, token, waiting_threads=len(op.semaphore_ids or ()))
            return True
        if name in DATA_OPS:
            return self.data(gid, rank, tb, step, woken)
        self.sync(gid)  # nop
        return True

    def channels(self, tb: Threadblock, op: Op) -> list[int]:
        held = tb.channels.get(op.channel_type or "memory", ())
        return [held[index] for index in op.channel_ids or ()]

    def via_proxy(self, gid: int, rank: int, channel: int, thread: int) -> int:
        """Thread ``thread`` hands one request to a port channel's proxy, which learns what that thread
        knows: the data the other threads moved since the last sync may not be there yet."""
        proxy = self.proxy[(rank, channel)]
        self.join(proxy, _Stamp(self.known_by(gid, thread), gid, self.synced[gid]))
        self.epoch[proxy] += 1
        return proxy

    def signal(
        self,
        sender: int,
        rank: int,
        kind: str,
        channel: int,
        relaxed: bool,
        woken: list[int],
        stamp: _Stamp | None = None,
    ) -> None:
        """``sender`` (a threadblock's thread, whose ``stamp`` is given, or a proxy) signals through
        ``rank``'s channel to the paired channel of its peer."""
        pair = self.pairs.get((rank, kind, channel))
        if pair is None:
            peer = _channel_peers(self.plan.gpus[rank], kind)[channel]
            self.add(
                "unpaired-channel",
                None,
                f"rank {rank} signals on its {kind} channel {channel} to rank {peer}, but rank {peer} "
                f"declares no {kind} channel paired with it: nobody can wait for the signal",
                hint=f"declare as many {kind} channels from rank {peer} to rank {rank} as the other way",
                severity="warning",
                key=(rank, kind, channel),
            )
            return
        self.inbox[(pair[0], kind, pair[1])].append(stamp or self.stamp(sender, relaxed))
        self.wake(("chan", pair[0], kind, pair[1]), woken)

    def wait(self, gid: int, rank: int, tb: Threadblock, op: Op) -> bool:
        kind = op.channel_type or "memory"
        channels = self.channels(tb, op)
        need: dict[int, int] = defaultdict(int)
        for channel in channels:
            need[channel] += 1
            key = (rank, kind, channel)
            if len(self.inbox[key]) < self.consumed[key] + need[channel]:
                peer = _channel_peers(self.plan.gpus[rank], kind)[channel]
                pair = self.pairs.get(key)
                why = (
                    f"rank {peer} declares no {kind} channel paired with rank {rank}'s channel {channel}"
                    if pair is None
                    else f"it waits for signal #{self.consumed[key] + need[channel]} on {kind} channel "
                    f"{channel} (from rank {peer}), which rank {peer} sends {len(self.inbox[key])} time(s) "
                    "before it stops"
                )
                return self.block(gid, ("chan", rank, kind, channel), why)
        for channel in channels:
            key = (rank, kind, channel)
            stamp = self.inbox[key][self.consumed[key]]
            self.consumed[key] += 1
            if op.name == "wait" and not stamp.relaxed:
                self.join(gid, stamp, waiting_threads=len(channels))
        return True

    def barrier(self, gid: int, rank: int, op: Op, woken: list[int]) -> bool:
        self.sync(gid)
        if gid in self.released:
            self.learn(gid, self.released.pop(gid))
            return True
        key = (rank, op.barrier_id or 0)
        arrivals = self.barriers[key]
        if all(arrived != gid for arrived, _, _ in arrivals):
            arrivals.append((gid, self.stamp(gid), op.num_threadblocks or 1))
        if len(arrivals) < (op.num_threadblocks or 1):
            what = f"barrier {key[1]}" if key[1] >= 0 else f"the end of call {-key[1]}"
            return self.block(
                gid,
                ("barrier", *key),
                f"{what} of rank {rank} waits for {op.num_threadblocks} threadblocks, {len(arrivals)} arrive",
            )
        counts = {count for _, _, count in arrivals}
        if len(counts) > 1:
            self.add(
                "barrier-count",
                op.path,
                f"{_where(op)}: threadblocks meet at barrier {key[1]} with different num_threadblocks "
                f"{sorted(counts)}",
            )
        met = self.clocks.zero  # what any of them knew: one clock for all (a join per arrival, not per pair)
        for _, stamp, _ in arrivals:
            met = self.clocks.join(met, stamp.clock, *self.owner[stamp.gid], stamp.epoch)
        for arrived, _, _ in arrivals:
            if arrived != gid:
                self.released[arrived] = met
        self.learn(gid, met)
        self.barriers[key] = []
        self.wake(("barrier", *key), woken)
        return True

    def data(self, gid: int, rank: int, tb: Threadblock, step: _Step, woken: list[int]) -> bool:
        op = step.op
        accesses = [step.slice(access) for access in _accesses(self.plan, self.plan.gpus[rank], tb, op)]
        reads = [access for access in accesses if not access.write]
        writes = [access for access in accesses if access.write]
        for access in reads:  # a packet read waits for its flag: a write of this call
            if access.letter == "p":
                memory, base = self.view(access, step.call)
                for index in range(base + access.index, base + access.index + access.size):
                    if memory.values[index] is None or memory.write_call[index] != step.call:
                        return self.block(
                            gid,
                            ("packet", access.rank, index),
                            f"it reads packet chunk s[{index - base}] of rank {access.rank}, which "
                            "nothing writes",
                        )
        read = [
            self.read(
                gid if access.channel is None else self.via_proxy(gid, rank, access.channel, _thread(access)),
                op,
                access,
                step.call,
            )
            for access in reads
        ]
        if op.name in REDUCES:  # every source summed, the sum written to every destination
            total = read[0]
            for more in read[1:]:
                total = [
                    collective.combine(a, b, self.nchunks or 1) for a, b in zip(total, more, strict=True)
                ]
            stored = [total] * len(writes)
        elif op.name in PUTS | {"ppkt", "get"}:  # source k to destination k
            stored = read
        else:  # one source copied to every destination
            stored = [read[0]] * len(writes)
        for access, values in zip(writes, stored, strict=False):
            writer = (
                gid if access.channel is None else self.via_proxy(gid, rank, access.channel, _thread(access))
            )
            self.write(writer, op, access, values, step.call, woken)
            if op.name in ("pws", "pwsf") and access.channel is not None:
                self.signal(writer, rank, "port", access.channel, False, woken)
            if op.name == "pwsf" and access.channel is not None:  # the thread waits for the proxy's flush
                self.join(gid, self.stamp(writer), waiting_threads=_thread(access) + 1)
        return True

    def read(self, gid: int, op: Op, access: Access, call: int) -> list[Value]:
        memory, base = self.view(access, call)
        epoch = self.epoch[gid]
        for index in range(base + access.index, base + access.index + access.size):
            if access.letter == "p":
                stamp = memory.write_stamp[index]
                if stamp is not None:
                    self.join(gid, stamp)
            writer = memory.writer[index]
            if writer >= 0 and not self.knows(gid, writer, memory.write_epoch[index]):
                earlier = (memory.write_op[index], memory.write_call[index])
                self.race((op, call), "read", earlier, "write", access, index - base)
            memory.readers[index][gid] = (epoch, op, call)
            if memory.values[index] is None and call == 0:
                self.add(
                    "undefined-read",
                    op.path,
                    f"{_where(op)} reads {_chunk(access, index - base)} before anything wrote it",
                    hint="scratch and output hold nothing at the start of a call",
                    key=(access.rank, access.letter, index),
                )
        return memory.values[base + access.index : base + access.index + access.size]

    def write(
        self, gid: int, op: Op, access: Access, values: list[Value], call: int, woken: list[int]
    ) -> None:
        memory, base = self.view(access, call)
        epoch = self.epoch[gid]
        if access.letter == "i" and not self.plan.inplace:
            self.add(
                "writes-input",
                op.path,
                f"{_where(op)} writes the user's input buffer of an out-of-place call",
                hint="write into o or s: the caller's send buffer is read-only",
            )
        stamp = self.stamp(gid)
        for offset, index in enumerate(range(base + access.index, base + access.index + access.size)):
            writer = memory.writer[index]
            if writer >= 0 and not self.knows(gid, writer, memory.write_epoch[index]):
                earlier = (memory.write_op[index], memory.write_call[index])
                self.race((op, call), "write", earlier, "write", access, index - base)
            for reader, (read_epoch, read_op, read_call) in memory.readers[index].items():
                if not self.knows(gid, reader, read_epoch):
                    self.race((op, call), "write", (read_op, read_call), "read", access, index - base)
            if access.letter == "p" and memory.values[index] is not None and memory.write_call[index] == call:
                self.add(
                    "packet-rewrite",
                    op.path,
                    f"{_where(op)} writes {_chunk(access, index - base)} a second time in one call: a packet "
                    "reader cannot tell the two writes apart",
                    hint="give every packet its own scratch chunk",
                )
            memory.readers[index] = {}
            memory.writer[index] = gid
            memory.write_epoch[index] = epoch
            memory.write_op[index] = op
            memory.write_call[index] = call
            memory.write_stamp[index] = stamp
            memory.values[index] = values[offset] if offset < len(values) else None
            if access.letter == "p":
                self.wake(("packet", access.rank, index), woken)

    def race(
        self,
        access_op: tuple[Op, int],
        access: str,
        other_op: tuple[Op | None, int],
        other_access: str,
        where: Access,
        index: int,
    ) -> None:
        """``access`` (op, call) and the earlier ``other_access`` of one chunk are unordered."""
        (op, call), (other, other_call) = access_op, other_op
        other_text = _where(other) if other is not None else "another op"
        if other_call == call:
            message = (
                f"the {access} by {_where(op)} and the {other_access} by {other_text} of "
                f"{_chunk(where, index)} are not ordered by a signal and wait, a barrier, a semaphore or "
                "a packet"
            )
            hint = "signal after the first access (with a nop before the signal) and wait before the second"
        else:
            message = (
                f"the {access} by {_where(op)} in one call and the {other_access} by {other_text} in the "
                f"call before, of {_chunk(where, index)}, are not ordered: ranks do not start a call "
                "together, and a port put may still read its source when the kernel ends"
            )
            hint = (
                "before a call writes into a peer, wait for the peer's signal that it is done with the "
                "previous call; free the source of a port put with pwsf (its thread waits for the proxy's "
                "flush) or the peer's receipt before anything overwrites it"
            )
        self.add(
            "race",
            op.path,
            message,
            hint=hint,
            key=(
                op.path,
                None if other is None else other.path,
                where.rank,
                where.letter,
                other_call != call,
            ),
        )

    # -- the end of the call -----------------------------------------------------------------------

    def check_leftovers(self) -> None:
        for key, stamps in sorted(self.inbox.items()):
            extra = len(stamps) - self.consumed[key]
            if extra > 0:
                rank, kind, channel = key
                peer = _channel_peers(self.plan.gpus[rank], kind)[channel]
                self.add(
                    "leftover-signal",
                    self.plan.gpus[rank].path,
                    f"{extra} signal(s) from rank {peer} on rank {rank}'s {kind} channel {channel} are never "
                    "waited for: the next call's wait on it passes at once",
                    hint="wait once for every signal, in the same call",
                )
        for (rank, index), tokens in sorted(self.semaphores.items()):
            initial = self.plan.gpus[rank].semaphores[index]
            if len(tokens) != initial:
                self.add(
                    "semaphore-balance",
                    self.plan.gpus[rank].path,
                    f"semaphore {index} of rank {rank} ends the call at {len(tokens)}, not at its init_value "
                    f"{initial}: the next call starts from a different count",
                    hint="acquire as often as you release",
                )

    def check_unawaited(self) -> None:
        """A write into a rank's output by another rank must happen before that rank's kernel ends
        (before the end of one of its threadblocks), else the call returns before the data is there."""
        ends = {}
        for gid, (rank, _) in enumerate(self.owner):
            if self.tbs[gid] is not None:
                ends.setdefault(rank, []).append(gid)
        for rank in range(self.ngpus):
            memory, base = self.views[(rank, "o")]
            for index in range(base, base + self.plan.gpus[rank].output_chunks):
                writer = memory.writer[index]
                if writer < 0 or (self.owner[writer][0] == rank and self.tbs[writer] is not None):
                    continue
                if not any(self.knows(end, writer, memory.write_epoch[index]) for end in ends.get(rank, ())):
                    op = memory.write_op[index]
                    assert op is not None
                    self.add(
                        "unawaited-write",
                        op.path,
                        f"{_where(op)} writes o[{index - base}] of rank {rank}, and no threadblock of rank "
                        f"{rank} waits for it: the call can return before the data arrives",
                        hint="signal after the write and wait for the signal on the receiving rank",
                        key=(rank, op.path),
                    )

    def check_postcondition(self) -> None:
        plan = self.plan
        if not self.nchunks:
            return
        output = collective.real_sizes(plan.collective, self.nchunks, self.ngpus)[1]  # type: ignore[index]
        outputs = []
        for rank in range(self.ngpus):
            memory, base = self.views[(rank, "o")]
            outputs.append(memory.values[base : base + output])
        root = collective.infer_root(plan.collective, outputs, self.ngpus)
        for rank in range(self.ngpus):
            expected = collective.expected_outputs(plan.collective, self.nchunks, self.ngpus, rank, root)
            for chunk, (want, found) in enumerate(zip(expected, outputs[rank], strict=True)):
                if want == "any" or want == found:
                    continue
                detail = ""
                if found is not None and want is not None and not isinstance(want, str):
                    detail = f" ({collective.difference(want, found, self.nchunks)})"
                self.add(
                    "postcondition",
                    plan.gpus[rank].path,
                    f"rank {rank}'s output chunk {chunk} holds {collective.describe(found, self.nchunks)}, "
                    f"not {collective.describe(want, self.nchunks)}{detail}",
                    hint=f"the plan does not compute the {plan.collective} it names",
                    key=(rank, chunk),
                )


def _thread(access: Access) -> int:
    """The thread that issues a port channel's request for an operand: thread k for the k-th."""
    position = access.ref.path[-1]
    return position if isinstance(position, int) else 0


def _chunk(access: Access, index: int) -> str:
    name = "packet s" if access.letter == "p" else access.letter
    return f"{name}[{index}] of rank {access.rank}"
