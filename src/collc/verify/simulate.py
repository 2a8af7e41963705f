"""Chunk-level simulation of an MSCCL program: deadlock, races, undefined reads, leftover messages,
writes to the input and the collective's postcondition (msccl-xml.md §4.5).

Threadblocks are deterministic sequential processes that talk through single-producer single-consumer
FIFOs of ``depth`` calls (2 on Simple, 8 on LL/LL128, §4.4) and through monotone per-threadblock flags
(§4.2). Enabled actions stay enabled until taken, so one greedy run decides whether the program
completes. The scheduler is event driven: a blocked threadblock records what it waits for and is woken
only when that message, FIFO slot or flag arrives, so the cost is linear in the number of calls.

Each transmission of ``cnt`` chunks runs as ceil(cnt / calls_chunks) primitive calls (§3.1); the large
message case is ``calls_chunks = 1``, the small message case ``71``. Happens-before is tracked with
vector clocks (program order, flag waits, messages); every memory access is checked against the last
write and the reads since, FastTrack-style, so a race is two unordered accesses of different
threadblocks to one chunk, one of them a write.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from collc.errors import Location
from collc.msccl.program import Algorithm, Step
from collc.verify import collective
from collc.verify.collective import Value
from collc.verify.fold import Transmission
from collc.verify.report import Problem

#: at most this many problems of one rule are listed per simulated case (the rest are counted)
MAX_LISTED = 8


@dataclass
class Case:
    """One simulated situation: placement, FIFO depth, chunks per call, and whether data is tracked."""

    inplace: bool
    depth: int
    call_chunks: int
    track_data: bool

    def __str__(self) -> str:
        placement = "in-place" if self.inplace else "out-of-place"
        calls = "one chunk per call" if self.call_chunks == 1 else f"up to {self.call_chunks} chunks per call"
        return f"{placement}, FIFO depth {self.depth}, {calls}"


@dataclass
class _Location:
    """Race bookkeeping of one chunk: the last write and the reads since (by threadblock)."""

    writer: int = -1
    write_epoch: int = 0
    write_step: int = -1
    readers: dict[int, tuple[int, int]] = field(default_factory=dict)


class _Stop(Exception):
    """Ends a simulation whose model is no longer meaningful (e.g. desynchronised FIFO)."""


class Simulator:
    """One run of one :class:`Case` over a folded program (see module docstring)."""

    def __init__(
        self,
        algo: Algorithm,
        coll: str,
        folded: dict[tuple[int, int], list[Transmission]],
        case: Case,
        filename: str | None,
    ):
        self.algo = algo
        self.coll = coll
        self.case = case
        self.filename = filename
        self.problems: list[Problem] = []
        self.counts: dict[str, int] = {}
        self.reported: set[tuple] = set()
        gpus = sorted(algo.gpus, key=lambda g: g.id)
        self.owner: list[tuple[int, int]] = []  # gid -> (rank, tb id)
        self.steps: list[list[Step]] = []
        self.transmissions: list[list[Transmission]] = []
        gid_of: dict[tuple[int, int], int] = {}
        tb_records = []
        for gpu in gpus:
            for tb in sorted(gpu.tbs, key=lambda t: t.id):
                gid_of[(gpu.id, tb.id)] = len(self.owner)
                self.owner.append((gpu.id, tb.id))
                self.steps.append(tb.steps)
                self.transmissions.append(folded[(gpu.id, tb.id)])
                tb_records.append((gpu.id, tb))
        self.gid_of = gid_of
        count = len(self.owner)
        self.connections: dict[tuple[int, int, int], int] = {}
        self.sender_of: dict[int, int] = {}
        self.receiver_of: dict[int, int] = {}
        self.out_conn = [-1] * count
        self.in_conn = [-1] * count
        for gid, (rank, tb) in enumerate(tb_records):
            if tb.send >= 0:
                conn = self._connection((rank, tb.send, tb.chan))
                self.out_conn[gid] = conn
                self.sender_of.setdefault(conn, gid)
            if tb.recv >= 0:
                conn = self._connection((tb.recv, rank, tb.chan))
                self.in_conn[gid] = conn
                self.receiver_of.setdefault(conn, gid)
        # a call in flight: (values, span, cursor, cnt, sender clock, sender gid, sender transmission)
        self.fifos: list[deque[tuple]] = [deque() for _ in self.connections]
        self.waits: list[tuple] = [()] * count
        self.clock = [np.zeros(count, dtype=np.int32) for _ in range(count)]
        self.published = [-1] * count
        self.publish_positions: list[list[int]] = [[] for _ in range(count)]
        self.publish_clocks: list[list[np.ndarray]] = [[] for _ in range(count)]
        # positions somebody waits for, per threadblock: only the publishes that release one of them
        # keep their clock (memory stays proportional to the dependencies, not to all flagged steps)
        self.awaited: list[list[int]] = [[] for _ in range(count)]
        for gid, (rank, _) in enumerate(self.owner):
            for t in self.transmissions[gid]:
                for tb, position in t.waits:
                    waited = gid_of.get((rank, tb))
                    if waited is not None:
                        self.awaited[waited].append(position)
        self.awaited = [sorted(set(positions)) for positions in self.awaited]
        self.flag_waiters: list[list[int]] = [[] for _ in range(count)]
        self.pc = [0] * count
        self.cursor = [0] * count
        self.deps_done = [False] * count
        self.nchunks = algo.nchunksperloop
        self.ngpus = algo.ngpus
        self.memory: dict[int, dict[str, list[Value]]] = {}
        self.races: dict[int, dict[str, list[_Location]]] = {}
        self.layouts: dict[int, collective.Layout] = {}
        if case.track_data:
            for gpu in gpus:
                buffers = collective.layout(
                    coll, self.nchunks, self.ngpus, gpu.id, gpu.s_chunks, inplace=case.inplace
                )
                if buffers is None:
                    continue
                self.layouts[gpu.id] = buffers
                self.memory[gpu.id] = collective.initial_memory(
                    coll, self.nchunks, self.ngpus, gpu.id, buffers
                )
                self.races[gpu.id] = {
                    name: [_Location() for _ in range(size)] for name, size in buffers.storages.items()
                }

    def _connection(self, key: tuple[int, int, int]) -> int:
        return self.connections.setdefault(key, len(self.connections))

    # -- reporting ---------------------------------------------------------------------------------

    def report(
        self,
        rule: str,
        message: str,
        gid: int | None = None,
        step: int | None = None,
        hint: str | None = None,
        key: tuple | None = None,
        severity: str = "error",
    ) -> None:
        """Record a problem once per ``key`` (default: once per message), listing at most MAX_LISTED."""
        key = (rule, message) if key is None else (rule, *key)
        if key in self.reported:
            return
        self.reported.add(key)
        self.counts[rule] = self.counts.get(rule, 0) + 1
        if self.counts[rule] > MAX_LISTED:
            return
        location = None
        if gid is not None and step is not None and 0 <= step < len(self.steps[gid]):
            line = self.steps[gid][step].line
            if line is not None or self.filename is not None:  # IR from the lowering has no lines
                location = Location(self.filename, line)
        self.problems.append(Problem(rule, severity, f"{message} ({self.case})", location, hint))  # type: ignore[arg-type]

    def where(self, gid: int, step: int) -> str:
        rank, tb = self.owner[gid]
        kind = self.steps[gid][step].type if 0 <= step < len(self.steps[gid]) else "?"
        return f"rank {rank} tb {tb} step {step} ({kind})"

    def finish_counts(self) -> None:
        for rule, count in sorted(self.counts.items()):
            if count > MAX_LISTED:
                self.problems.append(
                    Problem(rule, "error", f"… and {count - MAX_LISTED} more '{rule}' problems ({self.case})")
                )

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> list[Problem]:
        count = len(self.owner)
        ready = deque(range(count))
        queued = [True] * count
        try:
            while ready:
                gid = ready.popleft()
                queued[gid] = False
                for woken in self.advance(gid):
                    if not queued[woken]:
                        queued[woken] = True
                        ready.append(woken)
        except _Stop:
            self.finish_counts()
            return self.problems
        stuck = [gid for gid in range(count) if self.pc[gid] < len(self.transmissions[gid])]
        if stuck:
            self.report_deadlock(stuck)
        else:
            self.report_leftovers()
            if self.case.track_data:
                self.check_postcondition()
        self.finish_counts()
        return self.problems

    def advance(self, gid: int) -> list[int]:
        """Run ``gid`` until it blocks or finishes; return the threadblocks its actions woke."""
        woken: list[int] = []
        transmissions = self.transmissions[gid]
        rank = self.owner[gid][0]
        clock = self.clock[gid]
        call_chunks, depth, waits = self.case.call_chunks, self.case.depth, self.waits
        in_conn, out_conn = self.in_conn[gid], self.out_conn[gid]
        in_fifo = self.fifos[in_conn] if in_conn >= 0 else None
        out_fifo = self.fifos[out_conn] if out_conn >= 0 else None
        sender = self.sender_of.get(in_conn, -1)
        receiver = self.receiver_of.get(out_conn, -1)
        waiting_for_room, waiting_for_message = ("send", in_conn), ("recv", out_conn)
        while self.pc[gid] < len(transmissions):
            index = self.pc[gid]
            t = transmissions[index]
            if not self.deps_done[gid] and not self.satisfy_waits(gid, rank, t, clock):
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
                span = cnt - cursor if cnt - cursor < call_chunks else call_chunks
                incoming = None
                if receives:
                    incoming = in_fifo.popleft()  # type: ignore[union-attr]
                    if sender >= 0 and waits[sender] == waiting_for_room:
                        woken.append(sender)
                    if incoming[3] != cnt or incoming[2] != cursor:
                        self.mismatch(gid, t, incoming)
                    np.maximum(clock, incoming[4], out=clock)
                clock[gid] += 1
                outgoing = self.execute(gid, rank, t, cursor, span, incoming[0] if incoming else None)
                if sends:
                    out_fifo.append((outgoing, span, cursor, cnt, clock.copy(), gid, index))  # type: ignore[union-attr]
                    if receiver >= 0 and waits[receiver] == waiting_for_message:
                        woken.append(receiver)
                waits[gid] = ()
                cursor += span
            self.cursor[gid] = 0
            self.pc[gid] = index + 1
            self.deps_done[gid] = False
            if t.publishes is not None:
                self.publish(gid, t.publishes, clock, woken)
        return woken

    def satisfy_waits(self, gid: int, rank: int, t: Transmission, clock: np.ndarray) -> bool:
        """Whether every flag ``t`` waits for is published; if so, join the clocks of the publishes
        that released them (the first publish at or above each awaited position)."""
        for tb, position in t.waits:
            waited = self.gid_of[(rank, tb)]
            if self.published[waited] < position:
                self.waits[gid] = ("flag", waited, position)
                self.flag_waiters[waited].append(gid)
                return False
        for tb, position in t.waits:
            waited = self.gid_of[(rank, tb)]
            first = bisect.bisect_left(self.publish_positions[waited], position)
            if first < len(self.publish_clocks[waited]):  # a negative position needs no publish
                np.maximum(clock, self.publish_clocks[waited][first], out=clock)
        return True

    def publish(self, gid: int, position: int, clock: np.ndarray, woken: list[int]) -> None:
        self.published[gid] = position
        if self.releases_a_wait(gid, position):
            self.publish_positions[gid].append(position)
            self.publish_clocks[gid].append(clock.copy())
        woken.extend(self.flag_waiters[gid])
        self.flag_waiters[gid] = []

    def releases_a_wait(self, gid: int, position: int) -> bool:
        """Whether publishing ``position`` is the first publish at or above some awaited position."""
        previous = self.publish_positions[gid][-1] if self.publish_positions[gid] else -1
        awaited = self.awaited[gid]
        first_above_previous = bisect.bisect_right(awaited, previous)
        return first_above_previous < len(awaited) and awaited[first_above_previous] <= position

    def mismatch(self, gid: int, t: Transmission, message: tuple) -> None:
        """A receive consumed a call from a send of another ``cnt``: the FIFO desynchronises (§4.3)."""
        _, span, _, cnt, _, sender, transmission = message
        sender_step = self.transmissions[sender][transmission].last_step
        self.report(
            "cnt-mismatch",
            f"{self.where(gid, t.last_step)} with cnt={t.cnt} receives a call of {span} chunk(s) "
            f"from {self.where(sender, sender_step)} with cnt={cnt}; the FIFO desynchronises",
            gid,
            t.last_step,
            "paired send and receive steps must have the same cnt",
        )
        raise _Stop

    # -- data --------------------------------------------------------------------------------------

    def execute(
        self, gid: int, rank: int, t: Transmission, cursor: int, span: int, incoming: list[Value] | None
    ) -> list[Value] | None:
        """Apply the step type's semantics (§3.3) to chunks ``cursor … cursor+span-1``."""
        if rank not in self.memory:
            return None
        kind = t.type
        step = t.last_step
        if kind == "s":
            return self.read(gid, rank, t.srcbuf, t.srcoffs[0] + cursor, span, step)
        if kind == "r":
            self.write(gid, rank, t.dstbuf, t.dstoff + cursor, incoming, step)
            return None
        if kind == "rcs":
            self.write(gid, rank, t.dstbuf, t.dstoff + cursor, incoming, step)
            return incoming
        if kind == "cpy":
            values = self.read(gid, rank, t.srcbuf, t.srcoffs[0] + cursor, span, step)
            self.write(gid, rank, t.dstbuf, t.dstoff + cursor, values, step)
            return None
        if kind == "re":
            values = self.read(gid, rank, t.dstbuf, t.dstoff + cursor, span, step)
            for offset in t.srcoffs:
                values = _combine(values, self.read(gid, rank, t.srcbuf, offset + cursor, span, step))
            self.write(gid, rank, t.dstbuf, t.dstoff + cursor, values, step)
            return None
        # rrs, rrc, rrcs: incoming (+) src
        assert incoming is not None
        values = _combine(incoming, self.read(gid, rank, t.srcbuf, t.srcoffs[0] + cursor, span, step))
        if kind in ("rrc", "rrcs"):
            self.write(gid, rank, t.dstbuf, t.dstoff + cursor, values, step)
        return values if kind != "rrc" else None

    def read(self, gid: int, rank: int, buffer: str, offset: int, span: int, step: int) -> list[Value]:
        storage, base = self.layouts[rank].names[buffer]
        memory = self.memory[rank][storage]
        locations = self.races[rank][storage]
        clock = self.clock[gid]
        epoch = int(clock[gid])
        start = base + offset
        values = memory[start : start + span]
        for index in range(start, start + span):
            location = locations[index]
            writer = location.writer
            if writer >= 0 and writer != gid and location.write_epoch > clock[writer]:
                self.report_race(
                    gid, step, "read", writer, location.write_step, "write", (rank, storage, index)
                )
            location.readers[gid] = (epoch, step)
        if None in values:
            for index, value in enumerate(values):
                if value is None:
                    self.report(
                        "undefined-read",
                        f"{self.where(gid, step)} reads {self.name(rank, storage, start + index)} before "
                        "anything wrote it (scratch and output are not initialised)",
                        gid,
                        step,
                        "write the chunk (receive, copy or reduce into it) before reading it",
                        key=(gid, step),
                    )
        return values

    def write(self, gid: int, rank: int, buffer: str, offset: int, values, step: int) -> None:
        storage, base = self.layouts[rank].names[buffer]
        if storage == "i" and not self.case.inplace:
            self.report(
                "writes-input",
                f"{self.where(gid, step)} writes the user's input buffer i of an out-of-place call",
                gid,
                step,
                "write into o or s; NCCL treats the send buffer as const",
                key=(gid, step),
            )
        memory = self.memory[rank][storage]
        locations = self.races[rank][storage]
        clock = self.clock[gid]
        epoch = int(clock[gid])
        start = base + offset
        memory[start : start + len(values)] = values
        for index in range(start, start + len(values)):
            location = locations[index]
            writer = location.writer
            if writer >= 0 and writer != gid and location.write_epoch > clock[writer]:
                self.report_race(
                    gid, step, "write", writer, location.write_step, "write", (rank, storage, index)
                )
            for reader, (read_epoch, read_step) in location.readers.items():
                if reader != gid and read_epoch > clock[reader]:
                    self.report_race(gid, step, "write", reader, read_step, "read", (rank, storage, index))
            location.writer = gid
            location.write_epoch = epoch
            location.write_step = step
            location.readers = {}

    def report_race(
        self, gid: int, step: int, access: str, other: int, other_step: int, other_access: str, chunk: tuple
    ) -> None:
        """Two accesses to ``chunk`` = (rank, storage, index), not ordered by happens-before."""
        self.report(
            "race",
            f"the {access} by {self.where(gid, step)} and the {other_access} by "
            f"{self.where(other, other_step)} of {self.name(*chunk)} are not ordered "
            "by program order, a dependency or a message",
            gid,
            step,
            'add a dependency (depid/deps with hasdep="1" on the awaited step) between the two steps',
            key=(min((gid, step), (other, other_step)), max((gid, step), (other, other_step))),
        )

    def name(self, rank: int, storage: str, index: int) -> str:
        return f"{storage}[{index}] of rank {rank}"

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
            cycle = links[seen[node] :]
            text = "deadlock: a cycle of waits: " + "; ".join(cycle) + " (back to the first)"
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
                sender, transmission = fifo[0][5], fifo[0][6]
                step = self.transmissions[sender][transmission].last_step
                self.report(
                    "leftover-message",
                    f"{len(fifo)} call(s) from rank {src} to rank {dst} on channel {chan} are never received "
                    f"(first sent by {self.where(sender, step)})",
                    sender,
                    step,
                    "every send needs a matching receive on the peer (same channel, same order)",
                )

    def check_postcondition(self) -> None:
        if self.coll not in collective.CHECKED_COLLECTIVES or len(self.memory) != self.ngpus:
            return
        outputs: list[list[Value]] = []
        for rank in range(self.ngpus):
            storage, base = self.layouts[rank].names["o"]
            size = collective.real_sizes(self.coll, self.nchunks, self.ngpus)[1]  # type: ignore[index]
            outputs.append(self.memory[rank][storage][base : base + size])
        root = collective.infer_root(self.coll, outputs, self.nchunks, self.ngpus)
        for rank in range(self.ngpus):
            expected = collective.expected_outputs(self.coll, self.nchunks, self.ngpus, rank, root)
            for chunk, (want, found) in enumerate(zip(expected, outputs[rank], strict=True)):
                if want == "any" or want == found:
                    continue
                found_text = collective.describe(found, self.nchunks, self.ngpus)
                if found is not None:
                    found_text += f" ({collective.difference(want, found, self.nchunks)})"  # type: ignore[arg-type]
                self.report(
                    "postcondition",
                    f"rank {rank} o[{chunk}] should hold "
                    f"{collective.describe(want, self.nchunks, self.ngpus)} but holds {found_text}",
                    hint="the file does not compute the collective its coll attribute names",
                )
            if self.case.inplace:
                self.check_untouched(rank, expected)

    def check_untouched(self, rank: int, expected: list[Value | str]) -> None:
        """In place, user-buffer chunks outside the postcondition should keep the input (§3.2: NCCL
        leaves them intact), e.g. the other ranks' blocks of an in-place reducescatter."""
        buffers = self.layouts[rank]
        storage, _ = buffers.names["i"]
        output_storage, output_base = buffers.names["o"]
        constrained = {output_base + chunk for chunk, want in enumerate(expected) if want != "any"}
        if output_storage != storage:
            constrained = set()
        initial = collective.initial_memory(self.coll, self.nchunks, self.ngpus, rank, buffers)[storage]
        for index, (before, after) in enumerate(zip(initial, self.memory[rank][storage], strict=True)):
            if index not in constrained and before is not None and before != after:
                self.report(
                    "clobbers-input",
                    f"in place, rank {rank} {storage}[{index}] is outside the collective's output but is "
                    f"changed from {collective.describe(before, self.nchunks, self.ngpus)} to "
                    f"{collective.describe(after, self.nchunks, self.ngpus)}; NCCL leaves it intact",
                    hint="use scratch (s) for intermediate values",
                    severity="warning",
                )


def _combine(left: list[Value], right: list[Value]) -> list[Value]:
    """Element-wise symbolic reduction: union of contributions, overlaps recorded as duplicates."""
    combined: list[Value] = []
    for a, b in zip(left, right, strict=True):
        if a is None or b is None:
            combined.append(None)
        else:
            combined.append((a[0] | b[0], a[1] | b[1] | (a[0] & b[0])))
    return combined


def simulate(
    algo: Algorithm,
    coll: str,
    folded: dict[tuple[int, int], list[Transmission]],
    case: Case,
    filename: str | None = None,
) -> list[Problem]:
    """Problems of one simulated :class:`Case` (empty when the program completes correctly)."""
    return Simulator(algo, coll, folded, case, filename).run()
