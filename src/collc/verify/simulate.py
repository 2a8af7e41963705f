"""Chunk-level simulation of an MSCCL program: deadlock, races, undefined reads, leftover messages,
writes to the input and the collective's postcondition.

Threadblocks are deterministic sequential processes that talk through single-producer single-consumer
FIFOs of ``depth`` calls (2 on Simple, 8 on LL/LL128, see collc.verify.calls) and through monotone
per-threadblock flags. Enabled actions stay enabled until taken, so one greedy run decides whether the
program completes. The scheduler is event driven: a blocked threadblock records what it waits for and is woken
only when that message, FIFO slot or flag arrives, so the cost is linear in the number of calls.

Each transmission of ``cnt`` chunks runs as ceil(cnt / call_chunks) primitive calls; the large
message case is ``call_chunks = 1``, the small message case ``71``. Control flow never depends on data,
so one run serves every placement: each :class:`Placement` (in-place or out-of-place aliasing) keeps its
own symbolic memory and race bookkeeping, updated by the same calls. Every access is checked against
the chunk's last write and the reads since (FastTrack-style), so a race is two unordered accesses of
different threadblocks to one chunk, one of them a write. Happens-before (program order, flag waits,
messages) is recorded as the run goes, and each check is a question answered when the run ends
(collc.verify.order: vector clocks restricted to one rank at a time, memory linear in the program).
"""

from __future__ import annotations

import bisect
import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from collc.errors import Location
from collc.msccl.program import Algorithm, Step
from collc.progress import Report, silent
from collc.verify import collective
from collc.verify.collective import Value
from collc.verify.fold import Transmission
from collc.verify.order import Order
from collc.verify.report import Problem, Severity, Tally

PROGRESS_EVERY = 1024  # threadblock runs between two progress reports


@dataclass(frozen=True)
class Case:
    """One simulated run: FIFO depth in calls, chunks per call, the placements whose data is tracked,
    and the call sizes it stands for (see collc.verify.calls)."""

    depth: int
    call_chunks: int
    placements: tuple[bool, ...] = ()  # True = in-place aliasing, False = out-of-place
    sizes: str = ""

    def __str__(self) -> str:
        calls = "one chunk per call" if self.call_chunks == 1 else f"up to {self.call_chunks} chunks per call"
        return f"FIFO depth {self.depth}, {calls}" + (f": {self.sizes}" if self.sizes else "")


class Call(NamedTuple):
    """One primitive call in flight on a connection."""

    #: what it carries, per tracked placement (None where the data is not tracked)
    values: list[list[Value] | None] | None
    #: chunks it carries, and the first of them within its step
    span: int
    cursor: int
    #: ``cnt`` of the sending step (a receive of another ``cnt`` desynchronises the FIFO)
    cnt: int
    #: the sender's happens-before version and its own entry (its epoch) when it sent
    version: int
    epoch: int
    #: the sending threadblock and the index of its transmission
    sender: int
    transmission: int


class Stamp(NamedTuple):
    """A threadblock's happens-before version with its own entry, as of one publish."""

    version: int
    epoch: int


class _Stop(Exception):
    """Ends a simulation whose model is no longer meaningful (e.g. desynchronised FIFO)."""


class _Storage:
    """One buffer of one rank under one aliasing: symbolic values and race bookkeeping per chunk."""

    __slots__ = ("name", "number", "readers", "values", "write_epoch", "write_step", "writer")

    def __init__(self, name: str, values: list[Value], number: int):
        self.name = name
        self.number = number  # its place among its placement's storages
        self.values = values
        self.writer = [-1] * len(values)  # threadblock of the last write, -1 = the initial input
        self.write_epoch = [0] * len(values)
        self.write_step = [-1] * len(values)
        self.readers: list[dict[int, tuple[int, int]] | None] = [None] * len(values)  # since that write


#: a race question's two accesses: (this access, the earlier one)
ACCESSES = (("read", "write"), ("write", "write"), ("write", "read"))
READ_AFTER_WRITE, WRITE_AFTER_WRITE, WRITE_AFTER_READ = range(len(ACCESSES))


class _Questions:
    """The race checks of one run, as questions to happens-before (:class:`Order`) and, per question,
    what a report would name: kept in arrays, a few bytes each, since a 128-GPU program asks 100,000.

    Consecutive questions of one call about one call of another threadblock, the same kind of access
    to the same buffer, have the same answer: only the first (its lowest chunk) is asked."""

    def __init__(self, order: Order):
        self.order = order
        self._last: tuple[int, ...] = ()
        # per question: asker and its step, the other threadblock and its step, kind + 3 × storage, chunk
        self._gid, self._step, self._other, self._other_step = array("q"), array("q"), array("q"), array("q")
        self._code, self._index = array("q"), array("q")

    def ask(
        self,
        gid: int,
        epoch: int,
        step: int,
        other: int,
        other_epoch: int,
        other_step: int,
        kind: int,
        storage: _Storage,
        index: int,
    ) -> None:
        """Ask whether ``other``'s access at ``other_epoch`` happens before ``gid``'s at ``epoch``."""
        key = (gid, epoch, other, other_epoch, kind, storage.number)
        if key == self._last:
            return
        self._last = key
        self.order.ask(gid, other, other_epoch)
        self._gid.append(gid)
        self._step.append(step)
        self._other.append(other)
        self._other_step.append(other_step)
        self._code.append(kind + len(ACCESSES) * storage.number)
        self._index.append(index)

    def ask_writer(self, gid: int, epoch: int, step: int, storage: _Storage, index: int, kind: int) -> None:
        """Ask whether the last write of chunk ``index`` of ``storage`` happens before ``gid``'s access."""
        self.ask(
            gid,
            epoch,
            step,
            storage.writer[index],
            storage.write_epoch[index],
            storage.write_step[index],
            kind,
            storage,
            index,
        )

    def about(self, number: int) -> tuple[int, int, int, int, int, int]:
        """Question ``number``: (gid, step, other, other step, kind + 3 × storage number, chunk)."""
        return (
            self._gid[number],
            self._step[number],
            self._other[number],
            self._other_step[number],
            self._code[number],
            self._index[number],
        )


class Placement:
    """The memory of every rank under one aliasing, with its postcondition checks."""

    def __init__(self, simulator: Simulator, inplace: bool, track_races: bool):
        self.simulator = simulator
        self.inplace = inplace
        self.track_races = track_races
        if track_races:
            assert simulator.order is not None, "races are checked against the recorded happens-before"
            self.questions = _Questions(simulator.order)
        self.label = "in-place" if inplace else "out-of-place"
        self.layouts: dict[int, collective.Layout] = {}
        self.storages: dict[tuple[int, str], _Storage] = {}
        #: (rank, buffer letter) -> (storage, base offset, is the input of an out-of-place call)
        self.views: dict[tuple[int, str], tuple[_Storage, int, bool]] = {}
        algo = simulator.algo
        for gpu in algo.gpus:
            buffers = collective.layout(
                simulator.coll, algo.nchunksperloop, algo.ngpus, gpu.id, gpu.s_chunks, inplace=inplace
            )
            if buffers is None:
                continue
            self.layouts[gpu.id] = buffers
            memory = collective.initial_memory(
                simulator.coll, algo.nchunksperloop, algo.ngpus, gpu.id, buffers
            )
            for name, values in memory.items():
                self.storages[(gpu.id, name)] = _Storage(name, values, len(self.storages))
            for letter, (name, base) in buffers.names.items():
                self.views[(gpu.id, letter)] = (
                    self.storages[(gpu.id, name)],
                    base,
                    name == "i" and not inplace,
                )

    def read(self, gid: int, rank: int, buffer: str, offset: int, span: int, step: int) -> list[Value]:
        storage, base, _ = self.views[(rank, buffer)]
        start = base + offset
        if self.track_races:
            ask_writer, epoch = self.questions.ask_writer, self.simulator.epoch[gid]
            writer, readers = storage.writer, storage.readers
            for index in range(start, start + span):
                other = writer[index]
                if other >= 0 and other != gid:
                    ask_writer(gid, epoch, step, storage, index, READ_AFTER_WRITE)
                seen = readers[index]
                if seen is None:
                    readers[index] = {gid: (epoch, step)}
                else:
                    seen[gid] = (epoch, step)
        values = storage.values[start : start + span]
        if None in values:
            index = start + values.index(None)
            self.report(
                "undefined-read",
                f"{self.simulator.where(gid, step)} reads {storage.name}[{index}] of rank {rank} before "
                "anything wrote it (scratch and output are not initialised)",
                gid,
                step,
                "write the chunk (receive, copy or reduce into it) before reading it",
                key=(gid, step),
            )
        return values

    def write(self, gid: int, rank: int, buffer: str, offset: int, values: list[Value], step: int) -> None:
        storage, base, is_input = self.views[(rank, buffer)]
        if is_input:
            self.report(
                "writes-input",
                f"{self.simulator.where(gid, step)} writes the user's input buffer i of an out-of-place call",
                gid,
                step,
                "write into o or s; NCCL treats the send buffer as const",
                key=(gid, step),
            )
        start = base + offset
        end = start + len(values)
        if self.track_races:
            ask, ask_writer = self.questions.ask, self.questions.ask_writer
            epoch = self.simulator.epoch[gid]
            writer, write_epoch, readers = storage.writer, storage.write_epoch, storage.readers
            write_step = storage.write_step
            for index in range(start, end):
                other = writer[index]
                if other >= 0 and other != gid:
                    ask_writer(gid, epoch, step, storage, index, WRITE_AFTER_WRITE)
                seen = readers[index]
                if seen is not None:
                    for reader, (read_epoch, read_step) in seen.items():
                        if reader != gid:
                            ask(
                                gid,
                                epoch,
                                step,
                                reader,
                                read_epoch,
                                read_step,
                                WRITE_AFTER_READ,
                                storage,
                                index,
                            )
                    readers[index] = None
                writer[index] = gid
                write_epoch[index] = epoch
                write_step[index] = step
        storage.values[start:end] = values

    def report_races(self) -> None:
        """Report the accesses whose questions happens-before answered no, in the order they were asked."""
        questions, storages = self.questions, list(self.storages.values())
        for number in self.simulator.order.unordered():  # type: ignore[union-attr]
            gid, step, other, other_step, code, index = questions.about(int(number))
            access, other_access = ACCESSES[code % len(ACCESSES)]
            storage = storages[code // len(ACCESSES)]
            self.race(
                gid,
                step,
                access,
                other,
                other_step,
                other_access,
                self.simulator.owner[gid][0],
                storage,
                index,
            )

    def race(
        self,
        gid: int,
        step: int,
        access: str,
        other: int,
        other_step: int,
        other_access: str,
        rank: int,
        storage: _Storage,
        index: int,
    ) -> None:
        """The ``access`` of ``gid`` and the earlier ``other_access`` of ``other`` to one chunk are not
        ordered by happens-before."""
        where = self.simulator.where
        self.report(
            "race",
            f"the {access} by {where(gid, step)} and the {other_access} by {where(other, other_step)} of "
            f"{storage.name}[{index}] of rank {rank} are not ordered by program order, a dependency or a "
            "message",
            gid,
            step,
            'add a dependency (depid/deps with hasdep="1" on the awaited step) between the two steps',
            key=(min((gid, step), (other, other_step)), max((gid, step), (other, other_step))),
        )

    def report(
        self,
        rule: str,
        message: str | Callable[[], str],
        gid: int | None = None,
        step: int | None = None,
        hint: str | None = None,
        key: tuple | None = None,
        severity: Severity = "error",
    ) -> None:
        """A data problem of this placement (labelled with it)."""
        self.simulator.report(rule, message, gid, step, hint, key, severity, placement=self.label)

    def check_postcondition(self) -> None:
        simulator = self.simulator
        coll, nchunks, ngpus = simulator.coll, simulator.algo.nchunksperloop, simulator.algo.ngpus
        if coll not in collective.CHECKED_COLLECTIVES or len(self.layouts) != ngpus:
            return
        output_size = collective.real_sizes(coll, nchunks, ngpus)[1]  # type: ignore[index]
        outputs: list[list[Value]] = []
        for rank in range(ngpus):
            storage, base, _ = self.views[(rank, "o")]
            outputs.append(storage.values[base : base + output_size])
        root = collective.infer_root(coll, outputs, ngpus)
        for rank in range(ngpus):
            expected = collective.expected_outputs(coll, nchunks, ngpus, rank, root)
            for chunk, (want, found) in enumerate(zip(expected, outputs[rank], strict=True)):
                if want == "any" or want == found:
                    continue
                self.report(
                    "postcondition",
                    partial(_postcondition_message, rank, chunk, want, found, nchunks),
                    hint="the file does not compute the collective its coll attribute names",
                    key=(rank, chunk),
                )
            if self.inplace:
                self.check_untouched(rank, expected)

    def check_untouched(self, rank: int, expected: list[Value | str]) -> None:
        """In place, user-buffer chunks outside the postcondition should keep the input (NCCL leaves
        them intact), e.g. the other ranks' blocks of an in-place reducescatter."""
        simulator = self.simulator
        nchunks = simulator.algo.nchunksperloop
        storage, _, _ = self.views[(rank, "i")]
        output, output_base, _ = self.views[(rank, "o")]
        constrained = set()
        if output is storage:
            constrained = {output_base + chunk for chunk, want in enumerate(expected) if want != "any"}
        buffers = self.layouts[rank]
        initial = collective.initial_memory(simulator.coll, nchunks, simulator.algo.ngpus, rank, buffers)
        for index, (before, after) in enumerate(zip(initial[storage.name], storage.values, strict=True)):
            if index not in constrained and before is not None and before != after:
                self.report(
                    "clobbers-input",
                    partial(_clobber_message, rank, storage.name, index, before, after, nchunks),
                    hint="use scratch (s) for intermediate values",
                    key=(rank, storage.name, index),
                    severity="warning",
                )


class Simulator:
    """One run of one :class:`Case` over a folded program (see module docstring)."""

    def __init__(
        self,
        algo: Algorithm,
        coll: str,
        folded: dict[tuple[int, int], list[Transmission]],
        case: Case,
        filename: str | None,
        progress: Report = silent,
    ):
        self.algo = algo
        self.coll = coll
        self.progress = progress
        self.finished = 0  # threadblocks that ran their last step
        self.case = case
        self.filename = filename
        self.problems: list[Problem] = []
        self.tally = Tally()  # at most MAX_LISTED problems of a rule listed per placement and case
        self.reported: set[tuple] = set()
        self.owner: list[tuple[int, int]] = []  # gid -> (rank, tb id)
        self.steps: list[list[Step]] = []
        self.transmissions: list[list[Transmission]] = []
        self.gid_of: dict[tuple[int, int], int] = {}
        peers = []
        for gpu in sorted(algo.gpus, key=lambda g: g.id):
            for tb in sorted(gpu.tbs, key=lambda t: t.id):
                self.gid_of[(gpu.id, tb.id)] = len(self.owner)
                self.owner.append((gpu.id, tb.id))
                self.steps.append(tb.steps)
                self.transmissions.append(folded[(gpu.id, tb.id)])
                peers.append((gpu.id, tb.send, tb.recv, tb.chan))
        count = len(self.owner)
        self.connections: dict[tuple[int, int, int], int] = {}
        self.sender_of: dict[int, int] = {}
        self.receiver_of: dict[int, int] = {}
        self.out_conn = [-1] * count
        self.in_conn = [-1] * count
        for gid, (rank, send, recv, chan) in enumerate(peers):
            if send >= 0:
                self.out_conn[gid] = self._connection((rank, send, chan))
                self.sender_of.setdefault(self.out_conn[gid], gid)
            if recv >= 0:
                self.in_conn[gid] = self._connection((recv, rank, chan))
                self.receiver_of.setdefault(self.in_conn[gid], gid)
        self.fifos: list[deque[Call]] = [deque() for _ in self.connections]
        self.waits: list[tuple] = [()] * count
        # happens-before is answered one rank at a time (collc.verify.order): slot = a threadblock's
        # rank index, local = its index among that rank's threadblocks
        slots = {rank: slot for slot, rank in enumerate(dict.fromkeys(rank for rank, _ in self.owner))}
        self.slot = [slots[rank] for rank, _ in self.owner]
        sizes = [0] * len(slots)
        self.local = []
        for slot in self.slot:
            self.local.append(sizes[slot])
            sizes[slot] += 1
        # a transmission of cnt chunks runs at most cnt calls (one if local), each one epoch
        most_calls = max((sum(max(t.cnt, 1) for t in ts) for ts in self.transmissions), default=0)
        # only a run that checks races needs happens-before
        self.order = Order(self.slot, self.local, most_calls) if case.placements else None
        self.epoch = [0] * count  # each threadblock's own entry: the calls it has made
        self.published = [-1] * count
        self.publish_positions: list[list[int]] = [[] for _ in range(count)]
        self.publish_stamps: list[list[Stamp]] = [[] for _ in range(count)]
        self.awaited = self._awaited_positions() if self.order is not None else []
        self.flag_waiters: list[list[int]] = [[] for _ in range(count)]
        self.pc = [0] * count
        self.cursor = [0] * count
        self.deps_done = [False] * count
        # in-place aliasing merges i and o, so its races include every out-of-place race (the same
        # accesses, the same clocks, fewer distinct locations): races are tracked once, there
        self.placements = [
            Placement(self, inplace, track_races=inplace or True not in case.placements)
            for inplace in case.placements
        ]
        # the run's own progress (Simulator.run): threadblocks to run, which are queued, runs so far
        self._ready: deque[int] | None = None
        self._queued: list[bool] = []
        self._runs = 0
        self._deciding: Iterator[tuple[int, int]] | None = None  # the race checks' groups, once run

    def version(self, gid: int) -> int:
        """``gid``'s current happens-before version (0 where the run checks no races)."""
        return self.order.current[gid] if self.order is not None else 0

    def _connection(self, key: tuple[int, int, int]) -> int:
        return self.connections.setdefault(key, len(self.connections))

    def _awaited_positions(self) -> list[list[int]]:
        """Per threadblock, the positions somebody waits for (ascending): only the publishes that
        release one of them keep their stamp."""
        awaited: list[set[int]] = [set() for _ in self.owner]
        for gid, (rank, _) in enumerate(self.owner):
            for t in self.transmissions[gid]:
                for tb, position in t.waits:
                    waited = self.gid_of.get((rank, tb))
                    if waited is not None:
                        awaited[waited].add(position)
        return [sorted(positions) for positions in awaited]

    # -- reporting ---------------------------------------------------------------------------------

    def report(
        self,
        rule: str,
        message: str | Callable[[], str],
        gid: int | None = None,
        step: int | None = None,
        hint: str | None = None,
        key: tuple | None = None,
        severity: Severity = "error",
        placement: str | None = None,
    ) -> None:
        """Record a problem once per ``key`` (default: once per message), listing at most MAX_LISTED of a
        rule (:class:`collc.verify.report.Tally`).
        A ``message`` that is costly to build is passed as a function (with a ``key``): it is called
        only for the problems listed."""
        if key is None:
            assert isinstance(message, str), "a message built on demand needs a key"
            key = (rule, placement, message)
        else:
            key = (rule, placement, *key)
        if key in self.reported:
            return
        self.reported.add(key)
        label = f"{placement}, {self.case}" if placement else str(self.case)
        if not self.tally.admit(rule, severity, label):
            return
        location = None
        if gid is not None and step is not None and 0 <= step < len(self.steps[gid]):
            line = self.steps[gid][step].line
            if line is not None or self.filename is not None:  # IR from the lowering has no lines
                location = Location(self.filename, line)
        text = message if isinstance(message, str) else message()
        self.problems.append(Problem(rule, severity, f"{text} ({label})", location, hint))

    def where(self, gid: int, step: int) -> str:
        rank, tb = self.owner[gid]
        kind = self.steps[gid][step].type if 0 <= step < len(self.steps[gid]) else "?"
        return f"rank {rank} tb {tb} step {step} ({kind})"

    def finish(self) -> None:
        """Report the races (decided now that the run has recorded its happens-before) and count the
        problems of each rule beyond those listed."""
        for placement in self.placements:
            if placement.track_races:
                placement.report_races()
        self.problems.extend(self.tally.summaries())

    # -- the run -----------------------------------------------------------------------------------

    def run(self, deadline: float = math.inf) -> list[Problem] | None:
        """Run the case to its end and return its problems, or return None once ``deadline`` (a
        :func:`time.perf_counter` reading, checked every :data:`PROGRESS_EVERY` threadblock runs and
        after each group of ranks whose race checks are decided) has passed; calling again goes on
        where it stopped, so a long case can run in bounded slices."""
        count = len(self.owner)
        stage = f"verify: {self.case}"
        if self._ready is None:
            self._ready, self._queued = deque(range(count)), [True] * count
            self.progress(stage, 0, count)
        ready, queued = self._ready, self._queued
        try:
            while ready:
                gid = ready.popleft()
                queued[gid] = False
                self._runs += 1
                if not self._runs % PROGRESS_EVERY:
                    self.progress(stage, self.finished, count)
                for woken in self.advance(gid):
                    if not queued[woken]:
                        queued[woken] = True
                        ready.append(woken)
                if not self._runs % PROGRESS_EVERY and time.perf_counter() >= deadline:
                    return None
        except _Stop:
            self.finish()
            return self.problems
        self.progress(stage, self.finished, count)
        if self.order is not None:  # the race checks, decided a group of ranks at a time
            if self._deciding is None:
                self._deciding = self.order.decide()
            for done, groups in self._deciding:
                self.progress(f"verify: race checks ({self.case})", done, groups)
                if time.perf_counter() >= deadline:
                    return None
        stuck = [gid for gid in range(count) if self.pc[gid] < len(self.transmissions[gid])]
        if stuck:
            self.report_deadlock(stuck)
        else:
            self.report_leftovers()
            for placement in self.placements:
                placement.check_postcondition()
        self.finish()
        return self.problems

    def release(self) -> None:
        """Break the cycle between the placements and the simulator, so that the memory and the
        recorded happens-before are freed now, not at the next cyclic garbage collection."""
        self.placements.clear()

    def advance(self, gid: int) -> list[int]:
        """Run ``gid`` until it blocks or finishes; return the threadblocks its actions woke."""
        woken: list[int] = []
        transmissions = self.transmissions[gid]
        rank = self.owner[gid][0]
        call_chunks, depth, waits, epochs = self.case.call_chunks, self.case.depth, self.waits, self.epoch
        in_conn, out_conn = self.in_conn[gid], self.out_conn[gid]
        in_fifo = self.fifos[in_conn] if in_conn >= 0 else None
        out_fifo = self.fifos[out_conn] if out_conn >= 0 else None
        sender = self.sender_of.get(in_conn, -1)
        receiver = self.receiver_of.get(out_conn, -1)
        waiting_for_room, waiting_for_message = ("send", in_conn), ("recv", out_conn)
        placements, order, version = self.placements, self.order, self.version
        while self.pc[gid] < len(transmissions):
            index = self.pc[gid]
            t = transmissions[index]
            if not self.deps_done[gid] and not self.satisfy_waits(gid, rank, t):
                return woken
            self.deps_done[gid] = True
            receives, sends, cnt = t.receives, t.sends, t.cnt
            cursor = self.cursor[gid]
            while cursor < cnt:
                if receives and not in_fifo:
                    waits[gid] = ("recv", in_conn)
                    self.cursor[gid] = cursor
                    return woken
                if sends and len(out_fifo) >= depth:  # type: ignore[arg-type]
                    waits[gid] = ("send", out_conn)
                    self.cursor[gid] = cursor
                    return woken
                # a local step (cpy, re) interacts with nothing between its calls: one call is the same
                span = cnt - cursor if cnt - cursor < call_chunks or not (sends or receives) else call_chunks
                incoming = None
                if receives:
                    incoming = in_fifo.popleft()  # type: ignore[union-attr]
                    if sender >= 0 and waits[sender] == waiting_for_room:
                        woken.append(sender)
                    if incoming.cnt != cnt or incoming.cursor != cursor:
                        self.mismatch(gid, t, incoming)
                    if order is not None:
                        order.join(gid, incoming.version, incoming.sender, incoming.epoch)
                epochs[gid] += 1
                outgoing = None
                if placements:
                    outgoing = [
                        _execute(
                            placement,
                            gid,
                            rank,
                            t,
                            cursor,
                            span,
                            incoming.values[number] if incoming else None,
                        )
                        for number, placement in enumerate(placements)
                    ]
                if sends:
                    out_fifo.append(Call(outgoing, span, cursor, cnt, version(gid), epochs[gid], gid, index))  # type: ignore[union-attr]
                    if receiver >= 0 and waits[receiver] == waiting_for_message:
                        woken.append(receiver)
                waits[gid] = ()
                cursor += span
            self.cursor[gid] = 0
            self.pc[gid] = index + 1
            self.deps_done[gid] = False
            if t.publishes is not None:
                self.publish(gid, t.publishes, woken)
        self.finished += 1
        return woken

    def satisfy_waits(self, gid: int, rank: int, t: Transmission) -> bool:
        """Whether every flag ``t`` waits for is published; if so, join the stamps of the publishes
        that released them (the first publish at or above each awaited position)."""
        for tb, position in t.waits:
            waited = self.gid_of[(rank, tb)]
            if self.published[waited] < position:
                self.waits[gid] = ("flag", waited, position)
                self.flag_waiters[waited].append(gid)
                return False
        if self.order is not None:
            for tb, position in t.waits:
                waited = self.gid_of[(rank, tb)]
                first = bisect.bisect_left(self.publish_positions[waited], position)
                if first < len(self.publish_stamps[waited]):  # a negative position needs no publish
                    stamp = self.publish_stamps[waited][first]
                    self.order.join(gid, stamp.version, waited, stamp.epoch)
        return True

    def publish(self, gid: int, position: int, woken: list[int]) -> None:
        self.published[gid] = position
        if self.order is not None:
            self._keep_stamp(gid, position)
        woken.extend(self.flag_waiters[gid])
        self.flag_waiters[gid] = []

    def _keep_stamp(self, gid: int, position: int) -> None:
        """Keep ``gid``'s happens-before stamp at its publish of ``position`` where the publish
        releases a wait: one above the previous kept publish (the first one also those on a negative
        position, which join the first kept publish if it exists by then)."""
        previous = self.publish_positions[gid][-1] if self.publish_positions[gid] else -1
        awaited = self.awaited[gid]
        first_above_previous = bisect.bisect_right(awaited, previous)
        if first_above_previous < len(awaited) and awaited[first_above_previous] <= position:
            self.publish_positions[gid].append(position)
            self.publish_stamps[gid].append(Stamp(self.version(gid), self.epoch[gid]))

    def mismatch(self, gid: int, t: Transmission, call: Call) -> None:
        """A receive consumed a call from a send of another ``cnt``: the FIFO desynchronises."""
        sender_step = self.transmissions[call.sender][call.transmission].last_step
        self.report(
            "cnt-mismatch",
            f"{self.where(gid, t.last_step)} with cnt={t.cnt} receives a call of {call.span} chunk(s) "
            f"from {self.where(call.sender, sender_step)} with cnt={call.cnt}; the FIFO desynchronises",
            gid,
            t.last_step,
            "paired send and receive steps must have the same cnt",
        )
        raise _Stop

    # -- end-of-run checks -------------------------------------------------------------------------

    def describe_wait(self, gid: int) -> tuple[str, int | None]:
        """What ``gid`` waits for, and the threadblock that would have to act to release it."""
        wait = self.waits[gid]
        if wait and wait[0] == "flag":
            _, waited, position = wait
            rank, tb = self.owner[waited]
            return (
                f"tb {tb} of rank {rank} to publish position {position} (it has published "
                f"{self.published[waited]})",
                waited,
            )
        if wait and wait[0] in ("recv", "send"):
            kind, conn = wait
            src, dst, chan = next(key for key, value in self.connections.items() if value == conn)
            if kind == "recv":
                return f"a message from rank {src} on channel {chan}", self.sender_of.get(conn)
            return (
                f"room in the FIFO to rank {dst} on channel {chan} ({self.case.depth} calls queued)",
                self.receiver_of.get(conn),
            )
        return "nothing (internal)", None

    def current_step(self, gid: int) -> int:
        transmissions = self.transmissions[gid]
        return transmissions[self.pc[gid]].last_step if self.pc[gid] < len(transmissions) else -1

    def report_deadlock(self, stuck: list[int]) -> None:
        """One problem naming the cycle of waits (or the chain that ends at a finished threadblock)."""
        stuck_set = set(stuck)
        start = stuck[0]
        chain: list[int] = []
        seen: dict[int, int] = {}
        node: int | None = start
        while node is not None and node in stuck_set and node not in seen:
            seen[node] = len(chain)
            chain.append(node)
            node = self.describe_wait(node)[1]
        links = [f"{self.where(g, self.current_step(g))} waits for {self.describe_wait(g)[0]}" for g in chain]
        if node is not None and node in seen:
            text = "deadlock: a cycle of waits: " + "; ".join(links[seen[node] :]) + " (back to the first)"
        elif node is None:
            text = "deadlock: " + "; ".join(links) + "; nothing will ever release the last wait"
        else:
            rank, tb = self.owner[node]
            text = "deadlock: " + "; ".join(links) + f"; but tb {tb} of rank {rank} has already finished"
        text += f". {len(stuck)} threadblock(s) never finish"
        self.report(
            "deadlock",
            text,
            start,
            self.current_step(start),
            "check the message order of each connection, the FIFO depth of the protocol and that every "
            "awaited step is published",
        )

    def report_leftovers(self) -> None:
        for (src, dst, chan), conn in sorted(self.connections.items()):
            fifo = self.fifos[conn]
            if fifo:
                sender, transmission = fifo[0].sender, fifo[0].transmission
                step = self.transmissions[sender][transmission].last_step
                self.report(
                    "leftover-message",
                    f"{len(fifo)} call(s) from rank {src} to rank {dst} on channel {chan} are never received "
                    f"(first sent by {self.where(sender, step)})",
                    sender,
                    step,
                    "every send needs a matching receive on the peer (same channel, same order)",
                )


def _postcondition_message(rank: int, chunk: int, want: Value, found: Value, nchunks: int) -> str:
    found_text = collective.describe(found, nchunks)
    if found is not None:
        found_text += f" ({collective.difference(want, found, nchunks)})"
    return f"rank {rank} o[{chunk}] should hold {collective.describe(want, nchunks)} but holds {found_text}"


def _clobber_message(rank: int, name: str, index: int, before: Value, after: Value, nchunks: int) -> str:
    return (
        f"rank {rank} {name}[{index}] is outside the collective's output but is changed from "
        f"{collective.describe(before, nchunks)} to {collective.describe(after, nchunks)}; "
        "NCCL leaves it intact"
    )


def _execute(
    placement: Placement,
    gid: int,
    rank: int,
    t: Transmission,
    cursor: int,
    span: int,
    incoming: list[Value] | None,
) -> list[Value] | None:
    """Apply the step type's semantics to chunks ``cursor … cursor+span-1`` of one placement;
    return what the call sends."""
    if rank not in placement.layouts:
        return None
    kind, step = t.type, t.last_step
    if kind == "s":
        return placement.read(gid, rank, t.srcbuf, t.srcoffs[0] + cursor, span, step)
    if kind == "r" or kind == "rcs":
        placement.write(gid, rank, t.dstbuf, t.dstoff + cursor, incoming, step)  # type: ignore[arg-type]
        return incoming
    nchunks = placement.simulator.algo.nchunksperloop
    if kind == "cpy":
        values = placement.read(gid, rank, t.srcbuf, t.srcoffs[0] + cursor, span, step)
        placement.write(gid, rank, t.dstbuf, t.dstoff + cursor, values, step)
        return None
    if kind == "re":
        values = placement.read(gid, rank, t.dstbuf, t.dstoff + cursor, span, step)
        for offset in t.srcoffs:
            sources = placement.read(gid, rank, t.srcbuf, offset + cursor, span, step)
            values = [collective.combine(a, b, nchunks) for a, b in zip(values, sources, strict=True)]
        placement.write(gid, rank, t.dstbuf, t.dstoff + cursor, values, step)
        return None
    # rrs, rrc, rrcs: incoming (+) src
    sources = placement.read(gid, rank, t.srcbuf, t.srcoffs[0] + cursor, span, step)
    values = [collective.combine(a, b, nchunks) for a, b in zip(incoming, sources, strict=True)]  # type: ignore[arg-type]
    if kind != "rrs":
        placement.write(gid, rank, t.dstbuf, t.dstoff + cursor, values, step)
    return values if kind != "rrc" else None


def simulate(
    algo: Algorithm,
    coll: str,
    folded: dict[tuple[int, int], list[Transmission]],
    case: Case,
    filename: str | None = None,
    progress: Report = silent,
) -> list[Problem]:
    """Problems of one simulated :class:`Case` (empty when the program completes correctly);
    ``progress`` hears how many threadblocks have finished."""
    simulator = Simulator(algo, coll, folded, case, filename, progress)
    try:
        problems = simulator.run()
        assert problems is not None  # no deadline
        return problems
    finally:
        simulator.release()
