"""An MSCCL++ plan as the event simulation's per-threadblock steps, and its time prediction.

The event simulation (:mod:`collc.predict.des`) runs MSCCL programs: threadblocks with one send and one
receive connection, steps that send, receive, copy or reduce, and one cross-threadblock wait per step.
A plan read by :func:`collc.mscclpp.reader.read_plan` maps onto that model op by op:

* ``put``/``pws``/``pwsf`` (a one-sided write to a peer) is a send on the connection of the op's
  channel; a ``wait`` on a channel is the receive of the next write over it. A memory channel's
  ``signal`` after its ``put`` belongs to the send; a signal or wait outside the pipeline (the
  once-per-call "ready" handshake) moves no data and is not simulated;
* ``copy`` is a ``cpy``, ``re`` is one ``re`` per extra input;
* a ``sem_acquire`` of a semaphore waits for the producer's step just before its matching
  ``sem_release`` (the j-th acquire of a semaphore is released by its j-th release); several waits
  become ``nop`` steps, one wait each, as in MSCCL programs;
* a connection is ``(sender, receiver, k)`` for the k-th channel of the type between the two ranks,
  which is how the executor pairs the two ends.

The timing differs from MSCCL's in what the executor does differently: a pipeline iteration moves
``unit_size`` bytes of every chunk, a writer never waits for buffer room (it writes straight into the
peer's destination), and a threadblock copies at the rate of the executor's copy loop
(:data:`MSCCLPP_TB_COPY_GBPS`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

from collc.errors import InputError
from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.mscclpp import reader
from collc.mscclpp.lower import box_of_ranks
from collc.predict.des import ProgramCost
from collc.predict.network import Network
from collc.predict.params import Protocol

#: One threadblock of 1024 threads copying with 16-byte loads and stores, one load in flight per thread
#: (the executor's copy loop is a plain strided loop): 38.1 GB/s, measured on an H200 by
#: scripts/gpu/tb_copy_rate.cu (row ``1024,1,0,1`` of scripts/gpu/tb_copy_rate.h200.csv).
MSCCLPP_TB_COPY_GBPS = 38.1
#: A signal/wait handshake per write, as the MSCCL FIFO's flag per step.
MSCCLPP_STEP_OVERHEAD_US = 1.0
#: Writes never wait for room at the receiver: a bound no simulation reaches.
_UNBOUNDED_AHEAD = 1 << 30

_SENDS = frozenset({"put", "pws", "pwsf"})
_SKIPPED = frozenset({"nop", "signal", "rlxsignal", "flush", "barrier"})


def protocol(unit_bytes: int) -> Protocol:
    """The event simulation's parameters for a plan whose pipelines move ``unit_bytes`` per iteration."""
    return Protocol(
        "MSCCL++",
        Fraction(1),
        MSCCLPP_STEP_OVERHEAD_US,
        unit_bytes,
        _UNBOUNDED_AHEAD,
        unit_bytes,
        MSCCLPP_TB_COPY_GBPS,
    )


def pipeline_unit(text: str) -> int:
    """The ``unit_size`` of the plan's pipelines (all of collc's are equal); the whole chunk when the
    plan has none (each op then moves its chunks at once)."""
    units = set()
    for gpu in json.loads(text).get("gpus", []):
        for tb in gpu.get("threadblocks", []):
            for op in tb.get("ops", []):
                if op.get("name") == "pipeline":
                    units.add(int(op["iter_context"]["unit_size"]))
    if len(units) > 1:
        raise InputError(
            f"the plan's pipelines move {sorted(units)} bytes per iteration; collc simulates plans "
            "with one pipelining grain",
        )
    return units.pop() if units else 1 << 62


Conn = tuple[int, int, int]  # (sender, receiver, position among their channels of one type)


@dataclass
class _Item:
    """One simulated step before ids are known: what it does, its connection and the waits before it."""

    type: str  # s | r | cpy | re
    buf: str
    off: int
    cnt: int
    conn: Conn | None = None
    target: tuple[str, int] | None = None  # a send's destination slot on the peer
    src: tuple[str, int] | None = None  # cpy/re source
    waits: list[tuple[int, int]] = field(default_factory=list)  # (semaphore, its n-th acquire)


@dataclass
class _TbItems:
    items: list[_Item]
    releases: dict[int, list[int]]  # semaphore -> the item each release follows, in order


def _channels(gpu: reader.Gpu, kind: str) -> list[int]:
    return [peer for channel in gpu.channels if channel.type == kind for peer in channel.peers]


def _conn(gpu: reader.Gpu, tb: reader.Threadblock, op: reader.Op, sending: bool) -> Conn:
    """The connection of a write or wait: the executor pairs the k-th channel of a type from rank a to
    b with the k-th from b to a, so (sender, receiver, 2k for memory or 2k + 1 for port) names both
    ends."""
    kind = op.channel_type or "memory"
    if op.channel_ids:
        local = op.channel_ids[0]
    elif sending and op.dst and op.dst[0].buffer_id is not None and len(tb.channels.get(kind, ())) == 1:
        local = 0  # a memory put may name only the remote buffer; its channel is the tb's one channel
    else:
        raise InputError(
            f"rank {gpu.id} threadblock {tb.id}: a {op.name} names no channel the simulation can follow",
            hint="name the channel with channel_ids",
        )
    ids = tb.channels.get(kind, ())
    peers = _channels(gpu, kind)
    if not 0 <= local < len(ids) or not 0 <= ids[local] < len(peers):
        raise InputError(f"rank {gpu.id} threadblock {tb.id}: a {op.name} names a missing {kind} channel")
    index = ids[local]
    peer = peers[index]
    slot = 2 * peers[:index].count(peer) + (0 if kind == "memory" else 1)  # kinds pair separately
    return (gpu.id, peer, slot) if sending else (peer, gpu.id, slot)


def _local(ref: reader.BufferRef) -> tuple[str, int]:
    if ref.buffer is None:
        raise InputError("a local operand names no buffer type", hint="give it 'type': i, o or s")
    return ref.buffer, ref.index


def _tb_items(gpu: reader.Gpu, tb: reader.Threadblock, acquired: dict[int, int]) -> _TbItems:
    items: list[_Item] = []
    releases: dict[int, list[int]] = defaultdict(list)
    waits: list[tuple[int, int]] = []
    pipelines = [op for op in tb.ops if op.name == "pipeline"]
    for op in pipelines[0].inner if pipelines else tb.ops:
        new: list[_Item] = []
        if op.name == "sem_acquire":
            for sem in op.semaphore_ids or ():
                waits.append((sem, acquired[sem]))
                acquired[sem] += 1
        elif op.name == "sem_release":
            for sem in op.semaphore_ids or ():
                releases[sem].append(len(items) - 1)
        elif op.name in _SENDS:
            buf, off = _local(op.src[0])
            target = op.dst[0]
            kind = op.channel_type or "memory"
            remote = gpu.remote_buffers[tb.remote_buffers[kind][target.buffer_id or 0]]
            conn = _conn(gpu, tb, op, sending=True)
            new = [_Item("s", buf, off, op.src[0].size, conn, target=(remote.buffer, target.index))]
        elif op.name in ("wait", "rlxwait"):
            new = [_Item("r", "o", 0, 0, _conn(gpu, tb, op, sending=False))]
        elif op.name == "copy":
            buf, off = _local(op.dst[0])
            new = [_Item("cpy", buf, off, op.src[0].size, src=_local(op.src[0]))]
        elif op.name == "re":
            buf, off = _local(op.dst[0])
            new = [_Item("re", buf, off, src.size, src=_local(src)) for src in op.src[1:]]
        elif op.name not in _SKIPPED:
            raise InputError(
                f"rank {gpu.id} threadblock {tb.id}: collc cannot simulate the op {op.name!r}",
                hint="the timing model covers put/pws/pwsf, signal/wait, copy, re and semaphores; "
                "`collc verify` still checks the plan's rules and data with every op",
            )
        if new:
            new[0].waits, waits = waits, []
            items += new
    return _TbItems(items, releases)


def _chans(tbs: dict[tuple[int, int], _TbItems]) -> dict[Conn, int]:
    """One MSCCL channel number per connection such that a threadblock's send and receive connection
    share it (the simulation's threadblocks have one channel) and connections of one ordered pair
    differ: connections joined through threadblocks take one number, greedily the smallest free one."""
    parent: dict[Conn, Conn] = {}

    def root(conn: Conn) -> Conn:
        while parent.setdefault(conn, conn) != conn:
            conn = parent[conn]
        return conn

    for key, tb in sorted(tbs.items()):
        conns = sorted({item.conn for item in tb.items if item.conn is not None and item.type == "s"})
        conns += sorted({item.conn for item in tb.items if item.conn is not None and item.type == "r"})
        if (
            len(set(c for c in conns if c[0] == key[0])) > 1
            or len(set(c for c in conns if c[1] == key[0])) > 1
        ):
            raise InputError(
                f"rank {key[0]} threadblock {key[1]} uses several channels in one direction",
                hint="the event simulation runs threadblocks with one send and one receive channel",
            )
        for conn in conns:
            parent[root(conn)] = root(conns[0])
    groups: dict[Conn, list[Conn]] = defaultdict(list)
    for conn in sorted(parent):
        groups[root(conn)].append(conn)
    used: dict[tuple[int, int], set[int]] = defaultdict(set)
    chan: dict[Conn, int] = {}
    for members in sorted(groups.values()):
        pairs = [conn[:2] for conn in members]
        if len(set(pairs)) != len(pairs):
            raise InputError(
                f"connections {members[:2]} would share one channel in the simulation",
                hint="the event simulation cannot follow this plan's channel use",
            )
        value = 0
        while any(value in used[pair] for pair in pairs):
            value += 1
        for conn in members:
            chan[conn] = value
            used[conn[:2]].add(value)
    return chan


def to_algorithm(plan: reader.Plan) -> Algorithm:
    """The plan's threadblocks as an MSCCL program of the same transfers and waits (module doc)."""
    tbs: dict[tuple[int, int], _TbItems] = {}
    for gpu in plan.gpus:
        acquired: dict[int, int] = defaultdict(int)
        for tb in gpu.threadblocks:
            tbs[(gpu.id, tb.id)] = _tb_items(gpu, tb, acquired)
    chan = _chans(tbs)
    # the j-th send on a connection writes where the j-th receive reads
    targets: dict[Conn, list[tuple[str, int]]] = defaultdict(list)
    for key in sorted(tbs):
        for item in tbs[key].items:
            if item.type == "s" and item.conn is not None and item.target is not None:
                targets[item.conn].append((*item.target, item.cnt))  # type: ignore[arg-type]
    programs = [
        _gpu_program(gpu, {tb.id: tbs[(gpu.id, tb.id)] for tb in gpu.threadblocks}, chan, targets)
        for gpu in plan.gpus
    ]
    first = plan.gpus[0] if plan.gpus else None
    if first is None:
        raise InputError("the plan has no GPUs")
    nchunks = plan.call_chunks(first)
    return Algorithm(
        name=plan.name,
        proto="Simple",
        nchannels=1 + max(chan.values(), default=0),
        nchunksperloop=nchunks,
        ngpus=len(plan.gpus),
        coll=plan.collective,
        inplace=int(plan.inplace),
        outofplace=int(not plan.inplace),
        min_bytes=plan.min_message_size,
        max_bytes=plan.max_message_size,
        gpus=programs,
    )


def _producers(gpu_id: int, tbs: dict[int, _TbItems]) -> dict[int, tuple[int, list[int]]]:
    """Per semaphore: the threadblock that releases it and after which of its items, in order."""
    found: dict[int, tuple[int, list[int]]] = {}
    for tb_id in sorted(tbs):
        for sem, positions in tbs[tb_id].releases.items():
            if sem in found:
                raise InputError(
                    f"rank {gpu_id}: semaphore {sem} is released by threadblocks {found[sem][0]} and {tb_id}",
                    hint="the event simulation follows semaphores with one releasing threadblock",
                )
            found[sem] = (tb_id, positions)
    return found


def _gpu_program(
    gpu: reader.Gpu,
    tbs: dict[int, _TbItems],
    chan: dict[Conn, int],
    targets: dict[Conn, list[tuple[str, int, int]]],
) -> GpuProgram:
    producers = _producers(gpu.id, tbs)

    def resolve(wait: tuple[int, int], tb_id: int) -> tuple[int, int] | None:
        sem, nth = wait
        if sem not in producers or nth >= len(producers[sem][1]):
            raise InputError(
                f"rank {gpu.id} threadblock {tb_id}: acquire {nth + 1} of semaphore {sem} is never released "
                "in the same iteration",
                hint="collc verify names the rule; the plan would hang",
            )
        producer, positions = producers[sem]
        return None if positions[nth] < 0 else (producer, positions[nth])

    deps = {
        tb_id: [[d for w in item.waits if (d := resolve(w, tb_id)) is not None] for item in tb.items]
        for tb_id, tb in tbs.items()
    }
    index: dict[tuple[int, int], int] = {}  # (tb, item) -> step index
    for tb_id, tb in tbs.items():
        position = 0
        for i in range(len(tb.items)):
            position += max(0, len(deps[tb_id][i]) - 1)
            index[(tb_id, i)] = position
            position += 1
    received: dict[Conn, int] = defaultdict(int)
    published: set[tuple[int, int]] = set()
    programs: list[Threadblock] = []
    for tb_id in sorted(tbs):
        steps: list[Step] = []
        send = recv = -1
        channel = 0
        for i, item in enumerate(tbs[tb_id].items):
            named = [(p_tb, index[(p_tb, p_item)]) for p_tb, p_item in deps[tb_id][i]]
            published.update(named)
            for p_tb, p_step in named[1:]:
                steps.append(Step(len(steps), "nop", "i", -1, "o", -1, 0, p_tb, p_step, 0))
            depid, dep = named[0] if named else (-1, -1)
            buf, off, cnt = item.buf, item.off, item.cnt
            src = item.src or (buf, off)
            if item.conn is not None:
                channel = chan[item.conn]
                if item.type == "s":
                    send = item.conn[1]
                else:
                    recv = item.conn[0]
                    slots = targets.get(item.conn, [])
                    if received[item.conn] >= len(slots):
                        raise InputError(f"rank {gpu.id} threadblock {tb_id} waits for a write nobody makes")
                    buf, off, cnt = slots[received[item.conn]]
                    src = (buf, off)
                    received[item.conn] += 1
            steps.append(Step(len(steps), item.type, src[0], src[1], buf, off, cnt, depid, dep, 0))
        programs.append(Threadblock(tb_id, send, recv, channel, steps))
    for tb in programs:
        for step in tb.steps:
            if (tb.id, step.s) in published:
                step.hasdep = 1
    return GpuProgram(gpu.id, gpu.input_chunks, gpu.output_chunks, gpu.scratch_chunks, programs)


def own_nic_paths(network: Network, algo: Algorithm) -> dict[tuple[int, int], tuple[str, ...]]:
    """The path of every connection between two boxes: the executor opens a port channel on the
    sending rank's own NIC, the (local rank mod NICs)-th of its box, and the receiver's likewise (NICs in
    name order); inside a box the shortest path. Used instead of the XML lowering's channel-to-rail rule,
    which the plan does not carry."""
    topology = network.topology
    boxes = box_of_ranks(topology)
    nics: dict[int | None, list[str]] = defaultdict(list)
    for node in sorted(topology.nodes, key=lambda n: n.name):
        if node.kind == "nic":
            nics[node.box].append(node.name)
    local = {rank: boxes[:rank].count(boxes[rank]) for rank in range(len(boxes))}

    def nic(rank: int) -> str | None:
        own = nics.get(boxes[rank], [])
        return own[local[rank] % len(own)] if own else None

    paths = {}
    pairs = {(gpu.id, tb.send) for gpu in algo.gpus for tb in gpu.tbs if tb.send >= 0}
    for src, dst in sorted(pairs):
        out, into = nic(src), nic(dst)
        if boxes[src] == boxes[dst] or out is None or into is None:
            continue
        names = topology.ranks
        paths[(src, dst)] = (
            network.path_via(names[src], out, into) + network.path_via(into, into, names[dst])[1:]
        )
    return paths


class PlanCost:
    """The predicted time of a plan: the event simulation of its steps with the executor's parameters,
    on the paths the executor's channels take (:func:`own_nic_paths`)."""

    def __init__(self, network: Network, algo: Algorithm, unit_bytes: int):
        self.program = ProgramCost(network, algo, own_nic_paths(network, algo))
        self.protocol = protocol(unit_bytes)

    def time_us(self, collective: str, nbytes: int, proto: Protocol) -> float:
        """``proto`` names the XML protocol a caller compares with; a plan runs with its own."""
        del proto
        return self.program.time_us(collective, nbytes, self.protocol)


def _essential(algo: Algorithm) -> dict[tuple[int, int], tuple[int, int, list[tuple]]]:
    """Per threadblock: its peers and its data steps, each with the waits that are not implied by an
    earlier wait on the same threadblock (a threadblock finishes its steps in order)."""
    found = {}
    for gpu in algo.gpus:
        positions = {
            (tb.id, step.s): n
            for tb in gpu.tbs
            for n, step in enumerate(s for s in tb.steps if s.type != "nop")
        }
        for tb in gpu.tbs:
            furthest: dict[int, int] = {}
            rows: list[tuple] = []
            waits: list[tuple[int, int]] = []
            for step in tb.steps:
                if step.depid >= 0 and step.deps > furthest.get(step.depid, -1):
                    furthest[step.depid] = step.deps
                    waits.append((step.depid, positions.get((step.depid, step.deps), -1)))
                if step.type != "nop":
                    fields = (step.type, step.srcbuf, step.srcoff, step.dstbuf, step.dstoff, step.cnt)
                    rows.append((fields, sorted(waits)))
                    waits = []
            found[(gpu.id, tb.id)] = (tb.send, tb.recv, _fold_chains(rows))
    return found


def _fold_chains(rows: list[tuple]) -> list[tuple]:
    """Consecutive folds into one slot as one row of their sources with all their waits: the plan may
    fold them in one ``re`` after waiting for all (collc.mscclpp.lower.groups)."""
    merged: list[tuple] = []
    for fields, waits in rows:
        slot = (fields[3], fields[4], fields[5])
        if fields[0] == "re" and merged and merged[-1][0][0] == "re-chain" and merged[-1][0][1] == slot:
            (_, _, sources), earlier = merged[-1]
            merged[-1] = (("re-chain", slot, (*sources, fields[1:3])), sorted(earlier + waits))
        elif fields[0] == "re":
            merged.append((("re-chain", slot, (fields[1:3],)), waits))
        else:
            merged.append((fields, waits))
    return merged


def differences(original: Algorithm, back: Algorithm) -> list[str]:
    """Where ``back`` (a plan read back as steps) does other work than ``original`` (the program the
    plan was made from): peers, data steps and the waits between threadblocks; empty when the same."""
    a, b = _essential(original), _essential(back)
    problems = [f"threadblock {key} exists in only one of them" for key in sorted(set(a) ^ set(b))]
    for key in sorted(set(a) & set(b)):
        if a[key][:2] != b[key][:2]:
            problems.append(f"rank {key[0]} threadblock {key[1]}: peers {a[key][:2]} became {b[key][:2]}")
        for n, (was, now) in enumerate(zip(a[key][2], b[key][2], strict=False)):
            if was != now:
                problems.append(f"rank {key[0]} threadblock {key[1]} step {n}: {was} became {now}")
                break
        if len(a[key][2]) != len(b[key][2]):
            problems.append(
                f"rank {key[0]} threadblock {key[1]}: {len(a[key][2])} steps became {len(b[key][2])}"
            )
    return problems


def plan_schedule(text: str, path: str | None, network: Network) -> tuple[Algorithm, PlanCost]:
    """A plan file as the simulation's program and the predictor of its time (located errors)."""
    algo = to_algorithm(reader.read_plan(text, path))
    return algo, PlanCost(network, algo, pipeline_unit(text))
