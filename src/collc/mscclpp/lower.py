"""Translate the lowered MSCCL program into an MSCCL++ execution plan (docs/mscclpp.md §3).

collc lowers a forest once (:mod:`collc.lowering`); this module turns that program's threadblocks into
the plan's threadblocks op by op, so both targets run the same transfers in the same order:

* a *lane* of the program (one sending threadblock on ``src``, one receiving threadblock on ``dst``,
  one MSCCL channel) becomes one channel pair: a memory channel when both GPUs are in one box, a port
  channel (through the proxy, over the network) otherwise;
* a send step becomes a one-sided write of the chunks straight into the buffer slot the matching
  receive step names on the peer, followed by a signal (memory: ``put``, ``nop``, ``signal``; port:
  ``pwsf``, which the proxy orders after the write and which returns once the proxy has read the
  source, so the next call cannot overwrite a source the network is still reading); the receive step
  becomes a ``wait``;
* ``cpy`` and ``re`` become ``copy`` and ``re`` (``dst = dst + src``); consecutive folds into one slot
  become one ``re`` of several sources (:func:`groups`);
* a step's cross-threadblock wait (``depid``/``deps``) becomes a ``sem_acquire`` of a device semaphore
  that the waited-for threadblock releases (``sem_release``) right after that step: one counting
  semaphore per (producer, consumer) threadblock pair, released only at the steps the consumer needs;
* the step lists run inside one ``pipeline`` op per threadblock, which repeats them on consecutive
  ``unit_size`` slices of every chunk, as the MSCCL runtime's loop does.

Before its first write into a peer, a sending threadblock waits for the receiving threadblock's
"ready" signal, sent as the first op of every call: the receiver has then finished the previous call,
so no write lands in a buffer it is still reading.

``__syncthreads`` (``nop``) is inserted where the executor needs it: after a wait or acquire (only
some threads waited) before data is touched, before a signal, release or proxy write that must follow
every thread's copy, and between two data ops of overlapping chunk spans.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from collc.errors import InfeasibleError, InputError, InvariantError
from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.mscclpp.plan import (
    BUFFER_ALIGNMENT,
    MAX_BUFFER_BYTES,
    MAX_OP_SEMAPHORES,
    MAX_OPERATIONS,
    MAX_PIPELINE_ITERATIONS,
    MAX_PIPELINE_OPS,
    MAX_TB_CHANNELS,
    Chunk,
    ExecutionPlan,
    GpuPlan,
    Op,
    RemoteBuffer,
)
from collc.mscclpp.plan import Threadblock as PlanThreadblock
from collc.topology.infer import infer_structure
from collc.topology.model import Topology

#: bytes of every chunk one pipeline iteration moves (the grain of the plan's pipelining)
PIPELINE_UNIT_BYTES = 1 << 20
#: sources of one ``re`` besides the slot itself (the verifier's 10 buffers per op, the slot included)
MAX_FOLD_SOURCES = 9

Lane = tuple[int, int, int]  # (sending rank, receiving rank, MSCCL channel)


class PlanDoesNotFit(InfeasibleError):
    """The program's translation exceeds a table of the MSCCL++ executor."""


@dataclass(frozen=True)
class _Put:
    """Where the receive step matching a send step writes: the peer's buffer, offset and count."""

    buffer: str
    index: int
    size: int


@dataclass(frozen=True)
class _Network:
    """The channels, writes and remote buffers of the whole program, shared by the GPUs' translations."""

    lane_type: dict[Lane, str]  # "memory" | "port"
    channel_index: dict[tuple[int, Lane], int]  # (rank, lane) -> index among the rank's channels of its type
    puts: dict[tuple[int, int, int], _Put]  # (rank, tb, step) of a send -> the peer's slot
    remote_index: dict[tuple[int, int, str], int]  # (rank, peer, buffer) -> the rank's remote buffer id


def box_of_ranks(topology: Topology) -> list[int | None]:
    """The box of every rank (inferred from the graph when the topology names none)."""
    if all(topology.node(name).box is None for name in topology.ranks):
        topology = infer_structure(topology)
    return [topology.node(name).box for name in topology.ranks]


def lane_types(algo: Algorithm, boxes: list[int | None]) -> dict[Lane, str]:
    """Memory channels inside a box (CUDA IPC), port channels across boxes (the proxy, over the NIC)."""
    types = {}
    for lane in _lanes(algo):
        src, dst, _ = lane
        same_box = boxes[src] is not None and boxes[src] == boxes[dst]
        types[lane] = "memory" if same_box else "port"
    return types


def _lanes(algo: Algorithm) -> list[Lane]:
    return sorted({(gpu.id, tb.send, tb.chan) for gpu in algo.gpus for tb in gpu.tbs if tb.send >= 0})


def _matched_puts(algo: Algorithm) -> dict[tuple[int, int, int], _Put]:
    """Pair the k-th send of every lane with its k-th receive (the runtime's FIFO order)."""
    sends: dict[Lane, list[tuple[int, int, Step]]] = defaultdict(list)
    recvs: dict[Lane, list[Step]] = defaultdict(list)
    for gpu in algo.gpus:
        for tb in gpu.tbs:
            for index, step in enumerate(tb.steps):
                if step.type == "s":
                    sends[(gpu.id, tb.send, tb.chan)].append((tb.id, index, step))
                elif step.type == "r":
                    recvs[(tb.recv, gpu.id, tb.chan)].append(step)
                elif step.type not in ("cpy", "re", "nop"):
                    raise InvariantError(f"step type {step.type!r} has no MSCCL++ translation")
    puts = {}
    for lane in sorted(set(sends) | set(recvs)):
        if len(sends[lane]) != len(recvs[lane]):
            raise InvariantError(f"lane {lane}: {len(sends[lane])} sends but {len(recvs[lane])} receives")
        for (tb, index, send), recv in zip(sends[lane], recvs[lane], strict=True):
            if send.cnt != recv.cnt:
                raise InvariantError(
                    f"lane {lane}: a send of {send.cnt} chunks meets a receive of {recv.cnt}"
                )
            puts[(lane[0], tb, index)] = _Put(recv.dstbuf, recv.dstoff, recv.cnt)
    return puts


def _channel_indices(lane_type: dict[Lane, str]) -> dict[tuple[int, Lane], int]:
    """Every rank lists its channels to one peer in the same lane order as the peer lists them to it:
    the executor connects the k-th channel of a type from rank a to b with the k-th from b to a."""
    index: dict[tuple[int, Lane], int] = {}
    counts: dict[tuple[int, str], int] = defaultdict(int)
    by_rank: dict[int, list[tuple[int, Lane]]] = defaultdict(list)
    for lane in lane_type:
        src, dst, _ = lane
        by_rank[src].append((dst, lane))
        by_rank[dst].append((src, lane))
    for rank in sorted(by_rank):
        for _peer, lane in sorted(by_rank[rank]):
            kind = lane_type[lane]
            index[(rank, lane)] = counts[(rank, kind)]
            counts[(rank, kind)] += 1
    return index


def gpu_channels(rank: int, network: _Network) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The rank's ``channels``: per type, the peer of every channel in index order."""
    peers: dict[str, dict[int, int]] = defaultdict(dict)
    for (owner, lane), position in network.channel_index.items():
        if owner == rank:
            src, dst, _ = lane
            peers[network.lane_type[lane]][position] = dst if src == rank else src
    return tuple(
        (kind, tuple(peers[kind][i] for i in range(len(peers[kind]))))
        for kind in ("memory", "port")
        if peers[kind]
    )


def _remote_indices(
    algo: Algorithm, puts: dict[tuple[int, int, int], _Put]
) -> dict[tuple[int, int, str], int]:
    wanted: dict[int, set[tuple[int, str]]] = defaultdict(set)
    send_peer = {(gpu.id, tb.id): tb.send for gpu in algo.gpus for tb in gpu.tbs}
    for (rank, tb, _), put in puts.items():
        wanted[rank].add((send_peer[(rank, tb)], put.buffer))
    return {
        (rank, peer, buffer): i
        for rank, pairs in wanted.items()
        for i, (peer, buffer) in enumerate(sorted(pairs))
    }


# --- semaphores: the cross-threadblock waits -------------------------------------------------------


@dataclass
class _Semaphores:
    """Per GPU: which (producer, consumer) pair each semaphore serves, what each step acquires and
    what each step releases."""

    pairs: list[tuple[int, int]] = field(default_factory=list)
    acquire: dict[tuple[int, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    release: dict[tuple[int, int], list[int]] = field(default_factory=lambda: defaultdict(list))


def semaphores(gpu: GpuProgram) -> _Semaphores:
    """A consumer's waits on one producer, in its step order, need only the steps beyond the furthest
    one already waited for (a producer finishes its steps in order); each remaining wait acquires the
    pair's counting semaphore once, and the producer releases it once after exactly that step, so the
    j-th acquire is released by the j-th release of every pipeline iteration."""
    needs: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(
        list
    )  # (producer, consumer) -> [(step, at)]
    for tb in gpu.tbs:
        furthest: dict[int, int] = {}
        for index, step in enumerate(tb.steps):
            if step.depid < 0:
                continue
            if step.deps <= furthest.get(step.depid, -1):
                continue
            furthest[step.depid] = step.deps
            needs[(step.depid, tb.id)].append((step.deps, index))
    table = _Semaphores()
    for pair in sorted(needs):
        sem = len(table.pairs)
        table.pairs.append(pair)
        producer, consumer = pair
        for step, at in needs[pair]:
            table.acquire[(consumer, at)].append(sem)
            table.release[(producer, step)].append(sem)
    return table


# --- one threadblock --------------------------------------------------------------------------------


Span = tuple[str, int, int]  # (buffer, first chunk, end chunk)


@dataclass
class _OpWriter:
    """Appends ops with the ``__syncthreads`` (``nop``) the executor needs between them."""

    ops: list[Op] = field(default_factory=list)
    waited: bool = False  # a wait/acquire (some threads only) since the last nop
    touched: list[tuple[Span, bool]] = field(default_factory=list)  # (span, written) since the last nop
    proxied: bool = False  # a proxy write since the last nop

    def _sync(self) -> None:
        self.ops.append(Op("nop"))
        self.waited = False
        self.touched = []
        self.proxied = False

    def data(self, op: Op, reads: list[Span], writes: list[Span]) -> None:
        """An op every thread runs on its share of the data."""
        overlapping = any(
            _overlaps(span, other) and (written or other in writes)
            for span, written in self.touched
            for other in reads + writes
        )
        if self.waited or overlapping:
            self._sync()
        self.ops.append(op)
        self.touched += [(span, False) for span in reads] + [(span, True) for span in writes]

    def flag(self, op: Op) -> None:
        """An op a few threads run (signal, release, proxy write) after every thread's data is in place."""
        if self.touched or (self.waited and _ids(op) > 1) or (self.proxied and op.name != "pwsf"):
            self._sync()
        self.ops.append(op)

    def proxy(self, op: Op) -> None:
        """A proxy write (``pwsf``): the threads that run it move data, so a release or signal after it
        must sync first (else its first threads could tell another threadblock that the step is done
        while the others are still writing); another proxy write need not."""
        self.flag(op)
        self.proxied = True

    def wait(self, op: Op) -> None:
        """A wait or acquire: the threads that run it block; the others must not run ahead (the next
        data or flag op syncs first). It touches no data, so it needs no sync before it."""
        self.ops.append(op)
        self.waited = True


def _ids(op: Op) -> int:
    return max(len(op.channel_ids), len(op.semaphore_ids), 1)


def _overlaps(a: Span, b: Span) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


@dataclass(frozen=True)
class _TbContext:
    rank: int
    tb: Threadblock
    network: _Network
    sems: _Semaphores
    local_channel: dict[tuple[str, int], int]  # (type, GPU-level index) -> index in the threadblock
    local_remote: dict[tuple[str, int], int]  # (type, GPU-level remote buffer id) -> index in the tb


def groups(tb: Threadblock, sems: _Semaphores) -> list[list[int]]:
    """The threadblock's steps as the units that become ops: one step each, except that consecutive
    folds into one slot become one ``re`` of several sources (up to :data:`MAX_FOLD_SOURCES`) and
    dependency-only ``nop`` steps join the step after them. A fold chain ends where a step is released
    to another threadblock. Waiting for a later fold's data before the first fold is safe: nothing reads
    the slot, and nobody waits for this threadblock, before the chain's last fold."""
    found: list[list[int]] = []
    pending: list[int] = []  # dependency-only nops, to be waited for before the next step
    for index, step in enumerate(tb.steps):
        if step.type == "nop" and (tb.id, index) not in sems.release:
            pending.append(index)
            continue
        last = found[-1] if found else None
        if step.type == "re" and last is not None and _folds_into(tb, last, step, sems):
            last.extend([*pending, index])
        else:
            found.append([*pending, index])
        pending = []
    if pending:
        found.append(pending)
    return found


def _folds_into(tb: Threadblock, group: list[int], step: Step, sems: _Semaphores) -> bool:
    folds = [tb.steps[i] for i in group if tb.steps[i].type != "nop"]
    slot = (step.dstbuf, step.dstoff, step.cnt)
    return (
        all(fold.type == "re" and (fold.dstbuf, fold.dstoff, fold.cnt) == slot for fold in folds)
        and len(folds) < MAX_FOLD_SOURCES
        and (tb.id, group[-1]) not in sems.release
    )


def _group_ops(ctx: _TbContext, writer: _OpWriter, group: list[int]) -> None:
    tb = ctx.tb
    acquire = [sem for index in group for sem in ctx.sems.acquire.get((tb.id, index), [])]
    release = ctx.sems.release.get((tb.id, group[-1]), [])
    for first in range(0, len(acquire), MAX_OP_SEMAPHORES):
        writer.wait(Op("sem_acquire", semaphore_ids=tuple(acquire[first : first + MAX_OP_SEMAPHORES])))
    work = [index for index in group if tb.steps[index].type != "nop"]
    step = tb.steps[work[0]] if work else None
    if step is None:
        pass
    elif step.type == "re":
        target = Chunk(step.dstoff, step.cnt, type=step.dstbuf)
        folds = [tb.steps[index] for index in work]
        sources = [Chunk(fold.srcoff, fold.cnt, type=fold.srcbuf) for fold in folds]
        reads = [(fold.srcbuf, fold.srcoff, fold.srcoff + fold.cnt) for fold in folds]
        dst = (step.dstbuf, step.dstoff, step.dstoff + step.cnt)
        writer.data(Op("re", (target, *sources), (target,), reduce_op="sum"), [*reads, dst], [dst])
    else:
        _step_ops(ctx, writer, work[0], step)
    for first in range(0, len(release), MAX_OP_SEMAPHORES):
        writer.flag(Op("sem_release", semaphore_ids=tuple(release[first : first + MAX_OP_SEMAPHORES])))


def _step_ops(ctx: _TbContext, writer: _OpWriter, index: int, step: Step) -> None:
    """The ops of one send, receive or copy (its waits and releases are the group's)."""
    tb, rank, network = ctx.tb, ctx.rank, ctx.network
    src = (step.srcbuf, step.srcoff, step.srcoff + step.cnt)
    dst = (step.dstbuf, step.dstoff, step.dstoff + step.cnt)
    if step.type == "s":
        lane = (rank, tb.send, tb.chan)
        kind = network.lane_type[lane]
        channel = (ctx.local_channel[(kind, network.channel_index[(rank, lane)])],)
        put = network.puts[(rank, tb.id, index)]
        remote = ctx.local_remote[(kind, network.remote_index[(rank, tb.send, put.buffer)])]
        source = (Chunk(step.srcoff, step.cnt, type=step.srcbuf),)
        target = (Chunk(put.index, put.size, buffer_id=remote),)
        if kind == "memory":
            writer.data(Op("put", source, target, "memory", channel), [src], [])
            writer.flag(Op("signal", channel_type="memory", channel_ids=channel))
        else:
            writer.proxy(Op("pwsf", source, target, "port", channel))
    elif step.type == "r":
        lane = (tb.recv, rank, tb.chan)
        kind = network.lane_type[lane]
        channel = (ctx.local_channel[(kind, network.channel_index[(rank, lane)])],)
        writer.wait(Op("wait", channel_type=kind, channel_ids=channel))
    elif step.type == "cpy":
        source = (Chunk(step.srcoff, step.cnt, type=step.srcbuf),)
        writer.data(Op("copy", source, (Chunk(step.dstoff, step.cnt, type=step.dstbuf),)), [src], [dst])


def _threadblock(
    rank: int, tb: Threadblock, network: _Network, sems: _Semaphores, chunks: int
) -> PlanThreadblock:
    send_lane = (rank, tb.send, tb.chan) if tb.send >= 0 else None
    recv_lane = (tb.recv, rank, tb.chan) if tb.recv >= 0 else None
    channels: dict[str, list[int]] = defaultdict(list)
    for lane in (send_lane, recv_lane):
        if lane is not None:
            channels[network.lane_type[lane]].append(network.channel_index[(rank, lane)])
    remotes: dict[str, list[int]] = defaultdict(list)
    if send_lane is not None:
        for (owner, peer, _), buffer_id in sorted(network.remote_index.items(), key=lambda item: item[1]):
            if owner == rank and peer == tb.send:
                remotes[network.lane_type[send_lane]].append(buffer_id)
    ctx = _TbContext(
        rank,
        tb,
        network,
        sems,
        {(kind, g): i for kind, ids in channels.items() for i, g in enumerate(ids)},
        {(kind, g): i for kind, ids in remotes.items() for i, g in enumerate(ids)},
    )
    prologue = []
    if recv_lane is not None:  # ready: this rank has finished the previous call
        kind = network.lane_type[recv_lane]
        local = ctx.local_channel[(kind, network.channel_index[(rank, recv_lane)])]
        prologue.append(Op("signal", channel_type=kind, channel_ids=(local,)))
    if send_lane is not None:  # the peer is ready for this call's writes
        kind = network.lane_type[send_lane]
        local = ctx.local_channel[(kind, network.channel_index[(rank, send_lane)])]
        prologue.append(Op("wait", channel_type=kind, channel_ids=(local,)))
    writer = _OpWriter(waited=send_lane is not None)
    for group in groups(tb, sems):
        _group_ops(ctx, writer, group)
    if writer.touched or writer.waited:
        writer.ops.append(Op("nop"))  # the next iteration's ops may be run by other threads
    pipeline = Op("pipeline", unit_size=PIPELINE_UNIT_BYTES, num_chunks=chunks, ops=tuple(writer.ops))
    return PlanThreadblock(
        id=tb.id,
        ops=(*prologue, pipeline),
        channels=tuple((kind, tuple(channels[kind])) for kind in ("memory", "port") if channels[kind]),
        remote_buffer_refs=tuple(
            (kind, tuple(remotes[kind])) for kind in ("memory", "port") if remotes[kind]
        ),
    )


# --- the whole plan ---------------------------------------------------------------------------------


def step_chunks(algo: Algorithm) -> int:
    """The chunks every data step moves; a pipeline slices all its ops alike, so they must be equal."""
    counts = {step.cnt for gpu in algo.gpus for tb in gpu.tbs for step in tb.steps if step.type != "nop"}
    if len(counts) != 1:
        raise PlanDoesNotFit(
            f"steps move {sorted(counts)} chunks; a pipelined plan needs one count for all",
            hint="compile with one chunk per step (a smaller --k or more threadblocks)",
        )
    return counts.pop()


def max_message_bytes(algo: Algorithm, gpu: GpuProgram, chunks: int) -> int:
    """The largest call this rank's buffers allow: every byte offset within 32 bits and a pipeline of
    at most 65,535 iterations (the executor's field widths); the executor measures an allgather by its
    output and every other collective by its input."""
    largest = max(gpu.i_chunks, gpu.o_chunks, gpu.s_chunks)
    chunk_bytes = min(MAX_BUFFER_BYTES // largest, MAX_PIPELINE_ITERATIONS * PIPELINE_UNIT_BYTES // chunks)
    chunk_bytes = chunk_bytes // BUFFER_ALIGNMENT * BUFFER_ALIGNMENT
    return chunk_bytes * (gpu.o_chunks if algo.coll == "allgather" else gpu.i_chunks)


def message_ceiling(algo: Algorithm) -> int:
    """The largest call any rank's buffers allow (:func:`max_message_bytes`)."""
    chunks = step_chunks(algo)
    return min(max_message_bytes(algo, gpu, chunks) for gpu in algo.gpus)


def to_plan(algo: Algorithm, topology: Topology, *, inplace: bool = False) -> ExecutionPlan:
    """The MSCCL++ plan that runs ``algo`` (a program of collc's lowering) on ``topology``.

    Raises :class:`PlanDoesNotFit` when a threadblock would exceed the executor's tables; the
    program's size range (``min_bytes``/``max_bytes``) becomes the plan's message-size range, capped
    where the executor's 32-bit offsets end."""
    if algo.ngpus != topology.num_gpus:
        raise InputError(
            f"the program is for {algo.ngpus} GPUs but {topology.name!r} has {topology.num_gpus}"
        )
    chunks = step_chunks(algo)
    lane_type = lane_types(algo, box_of_ranks(topology))
    puts = _matched_puts(algo)
    network = _Network(lane_type, _channel_indices(lane_type), puts, _remote_indices(algo, puts))
    pair_type = {(src, dst): kind for (src, dst, _), kind in lane_type.items()}
    gpus = []
    for gpu in sorted(algo.gpus, key=lambda g: g.id):
        sems = semaphores(gpu)
        tbs = tuple(
            _threadblock(gpu.id, tb, network, sems, chunks) for tb in sorted(gpu.tbs, key=lambda t: t.id)
        )
        remotes = sorted(
            (i, peer, buffer) for (rank, peer, buffer), i in network.remote_index.items() if rank == gpu.id
        )
        gpus.append(
            GpuPlan(
                id=gpu.id,
                input_chunks=gpu.i_chunks,
                output_chunks=gpu.o_chunks,
                scratch_chunks=gpu.s_chunks,
                channels=gpu_channels(gpu.id, network),
                remote_buffers=tuple(
                    RemoteBuffer(peer, buffer, pair_type[(gpu.id, peer)]) for _, peer, buffer in remotes
                ),
                semaphores=tuple(0 for _ in sems.pairs),
                threadblocks=tbs,
            )
        )
    ceiling = message_ceiling(algo)
    plan = ExecutionPlan(
        name=algo.name,
        collective=algo.coll,
        protocol="Simple",
        inplace=inplace,
        min_message_size=algo.min_bytes,
        max_message_size=min(algo.max_bytes, ceiling) if algo.max_bytes else ceiling,
        gpus=tuple(gpus),
    )
    check_tables(plan)
    return plan


def check_tables(plan: ExecutionPlan) -> None:
    """Every threadblock within the executor's fixed tables (:mod:`collc.mscclpp.plan`)."""
    for gpu in plan.gpus:
        for tb in gpu.threadblocks:
            where = f"rank {gpu.id} threadblock {tb.id}"
            if tb.op_count() > MAX_OPERATIONS:
                raise PlanDoesNotFit(f"{where} needs {tb.op_count()} operations > {MAX_OPERATIONS}")
            for op in tb.ops:
                if len(op.ops) > MAX_PIPELINE_OPS:
                    raise PlanDoesNotFit(
                        f"{where}: a pipeline of {len(op.ops)} operations > {MAX_PIPELINE_OPS}"
                    )
            for kind, ids in tb.channels + tb.remote_buffer_refs:
                if len(ids) > MAX_TB_CHANNELS:
                    raise PlanDoesNotFit(f"{where} holds {len(ids)} {kind} entries > {MAX_TB_CHANNELS}")
