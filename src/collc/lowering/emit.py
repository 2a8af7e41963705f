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

import numpy as np
from numba import njit

from collc.errors import InvariantError
from collc.kernels import kernel
from collc.lowering.assign import Assignment
from collc.lowering.limits import MAX_REDUCE_CHAIN, fuses
from collc.lowering.plan import SIDES, Plan
from collc.lowering.sequence import rows_of
from collc.msccl.program import BUFFERS, STEP_TYPES, Algorithm, GpuProgram, Step, Threadblock


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
    events = events_in_order(plan, assignment, order)
    after_ptr, after_idx = rows_of(after, len(plan.transfers))
    base = plan.ends.buffer_bases()
    rows, bad = _fill_steps(events, base, after_ptr, after_idx, max(map(len, assignment.tbs), default=1))
    if bad >= 0:
        raise InvariantError(
            f"GPU {events.gpu[bad]} threadblock {events.tb[bad]}: step keys are not increasing at "
            f"{events.key[bad]}"
        )
    programs = [
        [
            Threadblock(
                tb_id,
                assignment.lanes[spec.send_lane].dst if spec.send_lane is not None else -1,
                assignment.lanes[spec.recv_lane].src if spec.recv_lane is not None else -1,
                spec.chan,
            )
            for tb_id, spec in enumerate(specs)
        ]
        for specs in assignment.tbs
    ]
    emitted = _append_steps(rows, programs, pace)
    gpus = []
    for gpu, tbs in enumerate(programs):
        if pace:
            _pace_free_senders(tbs, emitted[gpu])
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


class Events(NamedTuple):
    """Every operation's step on every GPU before waits (:attr:`collc.lowering.plan.Plan.ends`) in
    emission order, by GPU and then by ``order``'s rank (``key``), with the threadblock that runs it."""

    gpu: np.ndarray
    key: np.ndarray
    tb: np.ndarray
    kind: np.ndarray
    node: np.ndarray
    src_buf: np.ndarray
    src_off: np.ndarray
    dst_buf: np.ndarray
    dst_off: np.ndarray
    cnt: np.ndarray


def events_in_order(plan: Plan, assignment: Assignment, order: tuple[Sequence[int], Sequence[int]]) -> Events:
    """The :class:`Events` of ``plan`` placed by ``assignment`` and ranked by ``order``."""
    ends = plan.ends
    ranks = np.concatenate((np.asarray(order[0], dtype=np.int64), np.asarray(order[1], dtype=np.int64)))
    key = ranks[ends.node]
    columns = (ends.gpu, key, end_tbs(plan, assignment), ends.kind, ends.node)
    columns += (ends.src_buf, ends.src_off, ends.dst_buf, ends.dst_off, ends.cnt)
    at = np.lexsort((key, ends.gpu))
    return Events(*(column[at] for column in columns))


def end_tbs(plan: Plan, assignment: Assignment) -> np.ndarray:
    """The threadblock that runs every end of :attr:`collc.lowering.plan.Plan.ends` (on its GPU): a
    transfer's send on its lane's sending threadblock, its receive on the receiving one, a local op
    on the threadblock of its host end."""
    tbs = np.full((len(SIDES), len(assignment.lanes)), -1, dtype=np.int64)  # per side and lane
    for (_gpu, lane, side), tb in assignment.tb_of.items():
        tbs[SIDES.index(side), lane] = tb
    ends = plan.ends
    found = tbs[ends.side, np.asarray(assignment.lane_of, dtype=np.int64)[ends.host]]
    if (found < 0).any():
        raise InvariantError("an operation's lane has no threadblock at that end")
    return found


class Emitted(NamedTuple):
    """A step as the emitter appended it: threadblock, index of the step in it, and its type."""

    tb: int
    step: int
    kind: str


# Columns of the emitter's step table (:func:`_fill_steps`), one row per step in emission order.
GPU, TB, INDEX, KIND, SRC_BUF, SRC_OFF, DST_BUF, DST_OFF, CNT, DEPID, DEPS, HASDEP = range(12)
_SEND, _RECV, _NOP = STEP_TYPES.index("s"), STEP_TYPES.index("r"), STEP_TYPES.index("nop")


def _append_steps(
    rows: np.ndarray, programs: list[list[Threadblock]], list_emitted: bool
) -> list[list[Emitted]]:
    """Append the step table's rows (:func:`_fill_steps`) to their threadblocks as :class:`Step`
    records, and with ``list_emitted`` list every GPU's steps other than ``nop`` in emission order.
    The rows are read a block at a time: their Python lists would take about half a kilobyte per step
    at once (1.4 million steps at 512 GPUs)."""
    order: list[list[Emitted]] = [[] for _ in programs]
    for start in range(0, len(rows), ROWS_AT_ONCE):
        for gpu, tb, index, kind, src_buf, src_off, dst_buf, dst_off, cnt, depid, deps, hasdep in rows[
            start : start + ROWS_AT_ONCE
        ].tolist():
            step_type = STEP_TYPES[kind]
            programs[gpu][tb].steps.append(
                Step(
                    index,
                    step_type,
                    BUFFERS[src_buf],
                    src_off,
                    BUFFERS[dst_buf],
                    dst_off,
                    cnt,
                    depid,
                    deps,
                    hasdep,
                )
            )
            if list_emitted and kind != _NOP:
                order[gpu].append(Emitted(tb, index, step_type))
    return order


ROWS_AT_ONCE = 1 << 16  # rows of the step table turned into Python objects at a time


@njit(cache=True)
def _fill_steps(
    events: Events, base: np.ndarray, after_ptr: np.ndarray, after_idx: np.ndarray, max_tbs: int
) -> tuple[np.ndarray, int]:
    """Every event's step with the waits the last-writer table requires, and for a send the waits
    ``after`` asks for (its GPU's NIC-feeding sends, emitted before it): the step table (columns
    :data:`GPU` .. :data:`HASDEP`), and the event whose threadblock's keys do not increase, else -1.

    A send reads its source, a receive writes its target, and ``cpy``/``re`` read their source and
    write their target (``re`` reads its target too, which the write covers); all of these count for
    the waits. A step waits for the last step of every other threadblock that wrote a chunk it reads
    or writes: the wait on the lowest threadblock becomes its ``depid``/``deps``, every further one a
    ``nop`` right before it, and every step waited for gets ``hasdep``. One pass over the events:
    linear in the chunks moved. The last-writer table (the row of a chunk's last writing step, the
    buffers side by side from ``base``, :meth:`collc.lowering.plan.Ends.buffer_bases`) is reused GPU
    after GPU: an entry stamped with another GPU is empty. The step table is int32 (every field is
    an index, offset or count far below 2**31): at 512 GPUs it holds 1.4 million steps.
    """
    count = len(events.gpu)
    writer = np.full(base[-1], -1, dtype=np.int64)
    stamp = np.full(base[-1], -1, dtype=np.int64)
    sent = np.full(len(after_ptr), -1, dtype=np.int64)  # per transfer: the row of its send
    waited = np.full(max_tbs, -1, dtype=np.int64)  # per threadblock: the row of its latest step waited for
    waiting = np.empty(max_tbs, dtype=np.int64)  # the threadblocks waited for
    steps = np.zeros(max_tbs, dtype=np.int64)
    last_key = np.full(max_tbs, -1, dtype=np.int64)
    rows = np.empty((count + count // 4 + 16, 12), dtype=np.int32)  # grown when the nops need more
    emitted = 0
    gpu = -1
    for e in range(count):
        if events.gpu[e] != gpu:
            gpu = events.gpu[e]
            steps[:] = 0
            last_key[:] = -1
        tb, kind, cnt = events.tb[e], events.kind[e], events.cnt[e]
        if last_key[tb] >= events.key[e]:
            return rows[:emitted], e
        last_key[tb] = events.key[e]
        num_waiting = 0
        if kind != _RECV:
            first = base[events.src_buf[e]] + events.src_off[e]
            for chunk in range(first, first + cnt):
                if stamp[chunk] == gpu:
                    num_waiting = _wait_for(writer[chunk], tb, rows, waited, waiting, num_waiting)
        if kind != _SEND:
            first = base[events.dst_buf[e]] + events.dst_off[e]
            for chunk in range(first, first + cnt):
                if stamp[chunk] == gpu:
                    num_waiting = _wait_for(writer[chunk], tb, rows, waited, waiting, num_waiting)
        else:
            for p in range(after_ptr[events.node[e]], after_ptr[events.node[e] + 1]):
                num_waiting = _wait_for(sent[after_idx[p]], tb, rows, waited, waiting, num_waiting)
        if emitted + num_waiting + 1 > len(rows):
            grown = np.empty((len(rows) + len(rows) // 2 + num_waiting, 12), dtype=np.int32)
            grown[:emitted] = rows[:emitted]
            rows = grown
        waiting[:num_waiting].sort()
        depid, deps = -1, -1
        for position in range(num_waiting):
            row = waited[waiting[position]]
            waited[waiting[position]] = -1
            rows[row, HASDEP] = 1
            if position == 0:
                depid, deps = rows[row, TB], rows[row, INDEX]
            else:
                dep_tb, dep_step = rows[row, TB], rows[row, INDEX]
                _put(
                    rows, emitted, gpu, tb, steps[tb], _NOP, 0, -1, 1, -1, 0, dep_tb, dep_step
                )  # i[-1] -> o[-1]
                steps[tb] += 1
                emitted += 1
        src_buf, src_off = events.src_buf[e], events.src_off[e]
        dst_buf, dst_off = events.dst_buf[e], events.dst_off[e]
        _put(rows, emitted, gpu, tb, steps[tb], kind, src_buf, src_off, dst_buf, dst_off, cnt, depid, deps)
        steps[tb] += 1
        if kind == _SEND:
            sent[events.node[e]] = emitted
        else:  # every other step writes its target
            first = base[events.dst_buf[e]] + events.dst_off[e]
            for chunk in range(first, first + cnt):
                stamp[chunk], writer[chunk] = gpu, emitted
        emitted += 1
    return rows[:emitted], -1


@kernel
def _put(
    rows: np.ndarray,
    at: int,
    gpu: int,
    tb: int,
    index: int,
    kind: int,
    src_buf: int,
    src_off: int,
    dst_buf: int,
    dst_off: int,
    cnt: int,
    depid: int,
    deps: int,
) -> None:
    """Write a step into row ``at`` of the step table (``hasdep`` unset until a step waits for it)."""
    rows[at, GPU], rows[at, TB], rows[at, INDEX], rows[at, KIND] = gpu, tb, index, kind
    rows[at, SRC_BUF], rows[at, SRC_OFF], rows[at, DST_BUF], rows[at, DST_OFF] = (
        src_buf,
        src_off,
        dst_buf,
        dst_off,
    )
    rows[at, CNT], rows[at, DEPID], rows[at, DEPS], rows[at, HASDEP] = cnt, depid, deps, 0


@kernel
def _wait_for(
    row: int, tb: int, rows: np.ndarray, waited: np.ndarray, waiting: np.ndarray, num_waiting: int
) -> int:
    """Wait for the step in ``row`` (of another threadblock), unless a later step of its threadblock is
    waited for; ``row`` -1: nothing to wait for. The new count of threadblocks waited for."""
    if row < 0 or rows[row, TB] == tb:
        return num_waiting
    other = rows[row, TB]
    if waited[other] < 0:
        waiting[num_waiting] = other
        num_waiting += 1
        waited[other] = row
    elif rows[waited[other], INDEX] < rows[row, INDEX]:
        waited[other] = row
    return num_waiting


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
        elif fuses(previous, step):
            run += 1
        else:
            run = 1
        if run == MAX_REDUCE_CHAIN:
            step.hasdep = 1  # a published member ends the chain: the next re starts a new one
            run = 0
        previous = step
