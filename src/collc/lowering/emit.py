"""Stage 3 of the lowering: keyed operations on threadblocks -> ordered steps with dependencies.

Per GPU, every operation (the send or receive side of a transfer, or a local ``cpy``/``re``) is
appended to its threadblock in increasing key order. Cross-threadblock ordering comes from a
last-writer table per ``(buffer, chunk)``: a step that reads or overwrites a chunk last written by
another threadblock waits for that step (``depid``/``deps``; further waits become ``nop`` steps right
before it), and the step waited for gets ``hasdep="1"``.

Write-after-read needs no flag: the only chunk a GPU overwrites after reading it elsewhere is its own
input slot in in-place allreduce (read on the way up, written on the way down), and that write is
ordered behind the read through the messages of the tree (read -> send up -> ... -> root -> ... ->
receive), see docs/lowering.md §4.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from collc.errors import InvariantError
from collc.lowering.assign import Assignment
from collc.lowering.limits import MAX_REDUCE_CHAIN, reduce_chains
from collc.lowering.plan import LocalOp, Plan, Span, Transfer
from collc.msccl.program import BUFFERS, Algorithm, GpuProgram, Step, Threadblock


def emit(
    plan: Plan,
    assignment: Assignment,
    order: tuple[Sequence[int], Sequence[int]],
    *,
    after: dict[int, list[int]],
    name: str,
    proto: str,
    inplace: bool,
    outofplace: bool,
    min_bytes: int,
    max_bytes: int,
    pace: bool = False,
) -> Algorithm:
    """Build the :class:`Algorithm` for ``plan`` placed by ``assignment``.

    ``order`` gives the rank every transfer and local op is emitted by (see
    :func:`collc.lowering.sequence.schedule_keys`); it must increase along the data flow like the
    plan's keys.
    ``after`` maps a transfer to transfers whose sends its send waits for on the same GPU
    (:func:`collc.lowering.assign.feeders_first`); ``order`` must put those first.
    ``pace``: tie each GPU's free-running senders to its dependent traffic (:func:`_pace_free_senders`).
    """
    events = _events_per_gpu(plan, assignment, order)
    gpus = []
    for gpu in range(plan.num_gpus):
        tbs = [
            Threadblock(
                tb_id,
                assignment.lanes[spec.send_lane].dst if spec.send_lane is not None else -1,
                assignment.lanes[spec.recv_lane].src if spec.recv_lane is not None else -1,
                spec.chan,
            )
            for tb_id, spec in enumerate(assignment.tbs[gpu])
        ]
        sizes = {"i": plan.i_chunks, "o": plan.o_chunks, "s": plan.s_chunks[gpu]}
        emitted = _fill_steps(tbs, sorted(events[gpu]), after, sizes)
        if pace:
            _pace_free_senders(tbs, emitted)
        for tb in tbs:
            _cap_reduce_chains(tb.steps)
        gpus.append(GpuProgram(gpu, plan.i_chunks, plan.o_chunks, plan.s_chunks[gpu], tbs))
    return Algorithm(
        name=name,
        proto=proto,
        nchannels=assignment.nchannels,
        nchunksperloop=plan.nchunksperloop,
        ngpus=plan.num_gpus,
        coll=plan.coll,
        inplace=int(inplace),
        outofplace=int(outofplace),
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        gpus=gpus,
    )


# One event = (rank, order, tb id, step type, source, target): ``order`` breaks ties deterministically.
Event = tuple[int, tuple[int, int], int, str, Span, Span]


def _events_per_gpu(
    plan: Plan, assignment: Assignment, order: tuple[Sequence[int], Sequence[int]]
) -> list[list[Event]]:
    transfer_keys, local_keys = order
    events: list[list[Event]] = [[] for _ in range(plan.num_gpus)]
    for index, transfer in enumerate(plan.transfers):
        lane = assignment.lane_of[index]
        send_tb = assignment.tb_of[(transfer.src, lane, "send")]
        recv_tb = assignment.tb_of[(transfer.dst, lane, "recv")]
        events[transfer.src].append(
            (transfer_keys[index], (0, index), send_tb, "s", transfer.source, transfer.source)
        )
        events[transfer.dst].append(
            (transfer_keys[index], (1, index), recv_tb, "r", transfer.target, transfer.target)
        )
    for index, op in enumerate(plan.local_ops):
        events[op.gpu].append(
            (
                local_keys[index],
                (2, index),
                host_tb(op, plan.transfers, assignment),
                op.type,
                op.source,
                op.target,
            )
        )
    return events


def host_tb(op: LocalOp, transfers: tuple[Transfer, ...], assignment: Assignment) -> int:
    """The threadblock that runs local op ``op``: the one at its host transfer's end on ``op.gpu``."""
    transfer_index, side = op.host
    transfer = transfers[transfer_index]
    gpu = transfer.src if side == "send" else transfer.dst
    if gpu != op.gpu:
        raise InvariantError(f"local op on GPU {op.gpu} is hosted by a transfer end on GPU {gpu}")
    return assignment.tb_of[(gpu, assignment.lane_of[transfer_index], side)]


class Emitted(NamedTuple):
    """A step as the emitter appended it: threadblock, index of the step in it, and its type."""

    tb: int
    step: int
    kind: str


def _fill_steps(
    tbs: list[Threadblock], events: list[Event], after: dict[int, list[int]], sizes: dict[str, int]
) -> list[Emitted]:
    """Append every event to its threadblock with the waits the last-writer table requires, and for
    a send the waits ``after`` asks for (its GPU's NIC-feeding sends, emitted before it).

    A send reads its source, a receive writes its target, and ``cpy``/``re`` read their source and
    write their target (``re`` reads its target too, which the write covers); all of these count for
    the waits. One pass over the events: each chunk the step touches is looked up once in the table,
    so the work is linear in the chunks moved. The table is a list per buffer of ``sizes[buffer]``
    chunks (a chunk's last writing step as ``(tb, step)``, or None), read and written a span's slice
    at a time. This loop runs once per step of every lowering (a third of a million steps per
    program at 128 GPUs), so it avoids allocations where a span has one chunk or no writer waits.
    """
    last_writer: dict[str, list[tuple[int, int] | None]] = {buf: [None] * sizes[buf] for buf in BUFFERS}
    last_key: dict[int, int] = {}
    sent: dict[int, tuple[int, int]] = {}
    emitted: list[Emitted] = []  # in key order
    for key, order, tb_id, kind, source, target in events:
        previous = last_key.get(tb_id)
        if previous is not None and previous >= key:
            raise InvariantError(f"threadblock {tb_id}: step keys {previous} and {key} are not increasing")
        last_key[tb_id] = key
        waits: dict[int, int] = {}  # threadblock -> the last of its steps this one waits for
        if kind != "r":
            _add_waits(waits, last_writer[source.buf], source, tb_id)
        if kind != "s":
            _add_waits(waits, last_writer[target.buf], target, tb_id)
        else:
            for first in after.get(order[1], ()):
                _add_wait(waits, sent.get(first), tb_id)
        steps = tbs[tb_id].steps
        depid, deps = -1, -1
        if waits:
            ordered = sorted(waits.items()) if len(waits) > 1 else list(waits.items())
            for dep_tb, dep_step in ordered[1:]:
                steps.append(Step(len(steps), "nop", "i", -1, "o", -1, 0, dep_tb, dep_step, 0))
            depid, deps = ordered[0]
            for dep_tb, dep_step in ordered:
                tbs[dep_tb].steps[dep_step].hasdep = 1
        index = len(steps)
        step = Step(index, kind, source.buf, source.off, target.buf, target.off, source.cnt, depid, deps)
        steps.append(step)
        emitted.append(Emitted(tb_id, index, kind))
        if kind == "s":
            sent[order[1]] = (tb_id, index)
        elif target.cnt == 1:  # every other step writes its target
            last_writer[target.buf][target.off] = (tb_id, index)
        else:
            last_writer[target.buf][target.off : target.off + target.cnt] = [(tb_id, index)] * target.cnt
    return emitted


def _add_waits(waits: dict[int, int], table: list[tuple[int, int] | None], span: Span, tb_id: int) -> None:
    """The waits on the last writers of ``span``'s chunks (``table``: the span's buffer), into ``waits``."""
    if span.cnt == 1:
        _add_wait(waits, table[span.off], tb_id)
        return
    previous_blocker = None
    for blocker in table[span.off : span.off + span.cnt]:
        if blocker is not previous_blocker:  # a span written by one step: one lookup
            previous_blocker = blocker
            _add_wait(waits, blocker, tb_id)


def _add_wait(waits: dict[int, int], blocker: tuple[int, int] | None, tb_id: int) -> None:
    """Wait for ``blocker`` (a step of another threadblock), unless a later step of it is waited for."""
    if blocker is not None and blocker[0] != tb_id and waits.get(blocker[0], -1) < blocker[1]:
        waits[blocker[0]] = blocker[1]


def _pace_free_senders(tbs: list[Threadblock], emitted: list[Emitted]) -> None:
    """Tie every free-running sending threadblock of a GPU to the GPU's dependent traffic.

    A threadblock that only sends data that is always there (a reduce-scatter leaf's input, a
    broadcast root's copy) never waits, and since receives consume at once its FIFO never fills:
    it runs iterations ahead and takes its full share of the arcs it crosses, while the sends that
    wait for their children's partial sums fall behind every iteration; an arc fed by those
    laggards idles early in the call and ends late (mi250 reduce-scatter k = 8: the call ends
    ~290 µs after its busiest arcs are done). So the last send of each such threadblock waits,
    in the same iteration, for the first send of a dependent threadblock emitted before it (else
    the first receive): the free threadblock then starts iteration i + 1 only after that send of
    iteration i. The waited-for step has a smaller key, so §4's argument is unchanged.
    """
    free = {tb.id for tb in tbs if tb.recv < 0 and tb.steps and all(step.depid < 0 for step in tb.steps)}
    if not free or len(free) == len(tbs):
        return
    last_send: dict[int, tuple[int, Emitted]] = {}  # free threadblock -> (position, its last send)
    first: dict[str, tuple[int, Emitted]] = {}  # "s"/"r" -> (position, the first dependent one)
    for position, event in enumerate(emitted):
        if event.tb in free:
            if event.kind == "s":
                last_send[event.tb] = (position, event)
        elif event.kind in ("s", "r") and event.kind not in first:
            first[event.kind] = (position, event)
    for position, send in sorted(last_send.values()):
        waited = next((first[k][1] for k in ("s", "r") if k in first and first[k][0] < position), None)
        if waited is None:
            continue
        step = tbs[send.tb].steps[send.step]
        step.depid, step.deps = waited.tb, waited.step
        tbs[waited.tb].steps[waited.step].hasdep = 1


def _cap_reduce_chains(steps: list[Step]) -> None:
    """Break fused ``re`` chains longer than the safe 15 by publishing every 15th member (§3.3)."""
    run = 0
    previous = None
    for step in steps:
        if step.type != "re":
            run = 0
        elif previous is not None and reduce_chains([previous, step]) == [2]:
            run += 1
        else:
            run = 1
        if run == MAX_REDUCE_CHAIN:
            step.hasdep = 1  # a published member ends the chain: the next re starts a new one
            run = 0
        previous = step
