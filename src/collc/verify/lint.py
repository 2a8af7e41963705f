"""Static checks of an MSCCL program against one runtime.

Each check names a stable rule id. It covers what the runtime's parser rejects (with the runtime's
wording where it has one) and, above all, what it does *not* check but what hangs or corrupts data.
Rules in :data:`BLOCKS_SIMULATION` make the program's meaning undefined (an unknown step type, an
operand outside its buffer …), so the simulation is skipped when one of them fires.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterator

from collc.errors import Location
from collc.msccl.program import (
    BUFFERS,
    PROTOCOLS,
    RECV_TYPES,
    SEND_TYPES,
    STEP_TYPES,
    Algorithm,
    GpuProgram,
    Step,
    Threadblock,
)
from collc.topology.model import Topology
from collc.verify import collective
from collc.verify.fold import Transmission
from collc.verify.report import Problem, Severity, Tally
from collc.verify.runtimes import RuntimeProfile
from collc.verify.select import compared_bytes

#: rules after which the simulation would read undefined memory or index missing objects
BLOCKS_SIMULATION = frozenset(
    {
        "proto",
        "nchunksperloop",
        "ngpus",
        "nchunks-not-multiple",
        "gpu-id",
        "duplicate-gpu",
        "missing-gpu",
        "scratch-negative",
        "buffer-size",
        "duplicate-tb",
        "peer-self",
        "peer-range",
        "step-type",
        "buffer-name",
        "cnt-range",
        "missing-peer",
        "operand-range",
        "dep-target",
        "hasdep-range",
    }
)

#: ``MAX_NODES`` of the runtime's parser: elements stored for one rank
PARSER_MAX_NODES = 4096

#: which operands each step type reads (src) and writes or reads-and-writes (dst)
USES_SRC = frozenset({"s", "rrs", "rrc", "rrcs", "cpy", "re"})
USES_DST = frozenset({"r", "rcs", "rrc", "rrcs", "cpy", "re"})


class _Linter:
    def __init__(self, algo: Algorithm, runtime: RuntimeProfile, filename: str | None):
        self.algo = algo
        self.runtime = runtime
        self.filename = filename
        self.problems: list[Problem] = []
        self.tally = Tally()

    def at(self, line: int | None) -> Location | None:
        return Location(self.filename, line) if line is not None else None

    def error(self, rule: str, message: str, line: int | None, hint: str | None = None) -> None:
        self._add(rule, "error", message, line, hint)

    def warning(self, rule: str, message: str, line: int | None, hint: str | None = None) -> None:
        self._add(rule, "warning", message, line, hint)

    def _add(self, rule: str, severity: Severity, message: str, line: int | None, hint: str | None) -> None:
        if self.tally.admit(rule, severity):
            self.problems.append(Problem(rule, severity, message, self.at(line), hint))


def lint(
    algo: Algorithm,
    runtime: RuntimeProfile,
    folded: dict[tuple[int, int], list[Transmission]],
    *,
    topology: Topology | None = None,
    filename: str | None = None,
) -> list[Problem]:
    """Every static problem of ``algo`` on ``runtime`` (``folded`` = :func:`fold_threadblock` per tb)."""
    linter = _Linter(algo, runtime, filename)
    _check_algo(linter)
    _check_gpus(linter)
    gpu_ids = Counter(gpu.id for gpu in algo.gpus)
    for gpu in algo.gpus:
        _check_threadblocks(linter, gpu)
        _check_connections_of_gpu(linter, gpu)
        tb_ids = {tb.id for tb in gpu.tbs}  # once per rank: per threadblock it was quadratic in them
        for tb in gpu.tbs:
            _check_steps(linter, gpu, tb, tb_ids)
        if gpu_ids[gpu.id] == 1 and len(tb_ids) == len(gpu.tbs):
            # ``folded`` is keyed by (rank, tb id): with a duplicate id (already an error above) the
            # key names two threadblocks, so the checks that read it would mix their steps
            _check_dependencies(linter, gpu, folded)
            _check_unused_flags(linter, gpu, folded)
    _check_pairing(linter)
    if topology is not None:
        _check_topology(linter, topology)
    return linter.problems + linter.tally.summaries()


def _check_algo(linter: _Linter) -> None:
    algo, runtime = linter.algo, linter.runtime
    line = algo.line
    if algo.proto not in PROTOCOLS:
        linter.error(
            "proto",
            f"MSCCL: protocol {algo.proto} is not supported.",
            line,
            f"use one of {', '.join(PROTOCOLS)}",
        )
    if algo.coll not in runtime.collectives:
        hint = f"use one of {', '.join(sorted(runtime.collectives))}"
        if algo.coll == "reduce_scatter":
            hint = 'the current runtimes spell it coll="reducescatter" (reduce_scatter is the legacy name)'
        linter.error("coll", f"MSCCL: unsupported collective: {algo.coll}", line, hint)
    if not 1 <= algo.nchannels <= runtime.max_channels:
        linter.error(
            "nchannels",
            f"nchannels={algo.nchannels} is outside 1…{runtime.max_channels} on {runtime.name}",
            line,
            "use fewer channels",
        )
    if algo.nchunksperloop < 1:
        linter.error("nchunksperloop", f"nchunksperloop={algo.nchunksperloop} must be at least 1", line)
    if algo.ngpus < 1:
        linter.error("ngpus", f"ngpus={algo.ngpus} must be at least 1", line)
    coll = linter.runtime.collectives.get(algo.coll, algo.coll)
    per_rank_colls = ("allgather", "reducescatter", "alltoall")
    if coll in per_rank_colls and algo.ngpus >= 1 and algo.nchunksperloop % algo.ngpus:
        linter.error(
            "nchunks-not-multiple",
            f"{coll} needs nchunksperloop ({algo.nchunksperloop}) to be a multiple of ngpus ({algo.ngpus})",
            line,
            "each rank's block must be a whole number of chunks",
        )
    if not algo.inplace and not algo.outofplace:
        linter.warning(
            "placement",
            "inplace and outofplace are both 0: the runtime never selects this file",
            line,
            'set inplace="1" and/or outofplace="1"',
        )
    _check_size_range(linter)
    if len(algo.name.encode("utf-8")) > 255:  # the parser's buffer holds 255 bytes, not characters
        linter.warning("name-too-long", "the algorithm name is longer than 255 bytes (UTF-8)", line)


def _check_size_range(linter: _Linter) -> None:
    """``size-range``: bounds that the runtime's selection reads otherwise than they look. The scheduler
    tests ``nBytes >= minBytes && (maxBytes == 0 || nBytes <= maxBytes)`` with nBytes a ``size_t`` and
    the bounds ``int64_t``, so C++ compares them as unsigned 64-bit numbers (:func:`compared_bytes`)."""
    algo, line = linter.algo, linter.algo.line
    if algo.min_bytes < 0:
        linter.warning(
            "size-range",
            f"minBytes={algo.min_bytes} selects no call: the runtime compares the call's nBytes (an unsigned "
            f"size_t) with minBytes as an unsigned 64-bit number, so {algo.min_bytes} stands for "
            f"{compared_bytes(algo.min_bytes):,} bytes, more than any call has",
            line,
            'write minBytes="0" to take calls of every size, or the smallest call size the file is for',
        )
    if algo.max_bytes < 0:
        linter.warning(
            "size-range",
            f"maxBytes={algo.max_bytes} bounds nothing: compared with nBytes as an unsigned 64-bit number it "
            f"stands for {compared_bytes(algo.max_bytes):,} bytes, so every call from minBytes up selects "
            "the file",
            line,
            'write maxBytes="0" for no upper bound, or the largest call size the file is for',
        )
    elif algo.min_bytes >= 0 and 0 < algo.max_bytes < algo.min_bytes:
        linter.warning(
            "size-range",
            f"no call size satisfies minBytes={algo.min_bytes} ≤ nBytes ≤ maxBytes={algo.max_bytes}",
            line,
            "swap the bounds: both are inclusive, and maxBytes=0 means unbounded",
        )


def _check_gpus(linter: _Linter) -> None:
    algo = linter.algo
    ids = Counter(gpu.id for gpu in algo.gpus)
    coll = linter.runtime.collectives.get(algo.coll, algo.coll)
    sizes = collective.real_sizes(coll, algo.nchunksperloop, algo.ngpus) if algo.ngpus >= 1 else None
    for gpu in algo.gpus:
        if not 0 <= gpu.id < algo.ngpus:
            linter.error(
                "gpu-id",
                f"<gpu id={gpu.id}> is outside 0…{algo.ngpus - 1}",
                gpu.line,
                "ids are ranks 0…ngpus-1",
            )
        if ids[gpu.id] > 1:
            linter.error(
                "duplicate-gpu",
                f"rank {gpu.id} has {ids[gpu.id]} <gpu> elements; the runtime silently merges them",
                gpu.line,
                "write exactly one <gpu> per rank",
            )
            ids[gpu.id] = 1  # report each duplicate once
        nodes = 1 + algo.ngpus + len(gpu.tbs) + sum(len(tb.steps) for tb in gpu.tbs)
        if nodes > PARSER_MAX_NODES:
            linter.error(
                "parser-node-limit",
                f"Error : XML parser is limited to 1024 nodes (rank {gpu.id} needs {nodes}: the algo, "
                f"every gpu, its own tbs and steps; the real limit is {PARSER_MAX_NODES})",
                gpu.line,
                "use fewer steps per rank (larger cnt) or fewer threadblocks",
            )
        if gpu.s_chunks < 0:
            linter.error("scratch-negative", "nScratchChunks must be not negative", gpu.line)
        for name, declared, real in (
            ("i_chunks", gpu.i_chunks, sizes and sizes[0]),
            ("o_chunks", gpu.o_chunks, sizes and sizes[1]),
        ):
            if declared < 0 or (real is not None and declared > real):
                linter.error(
                    "buffer-size",
                    f"rank {gpu.id} declares {name}={declared}, but a {coll} call with nchunksperloop="
                    f"{algo.nchunksperloop} has {real} chunks there; the runtime bounds-checks against the "
                    "declared size only, so accesses beyond the real buffer go through",
                    gpu.line,
                    f"declare {name} ≤ {real}",
                )
    missing = sorted(set(range(max(algo.ngpus, 0))) - set(ids))
    if missing:
        linter.error(
            "missing-gpu",
            f"no <gpu> for rank(s) {_ranges(missing)}: such a rank launches zero blocks and its peers hang",
            algo.line,
            "write one <gpu> per rank 0…ngpus-1",
        )


def _check_threadblocks(linter: _Linter, gpu: GpuProgram) -> None:
    algo, runtime = linter.algo, linter.runtime
    ids = Counter(tb.id for tb in gpu.tbs)
    for tb in gpu.tbs:
        where = f"rank {gpu.id} tb {tb.id}"
        if tb.id < 0:
            linter.error("tb-id", "bid must be not negative", tb.line)
        if ids[tb.id] > 1:
            linter.error("duplicate-tb", f"duplicate thread block id {tb.id} on rank {gpu.id}", tb.line)
            ids[tb.id] = 1
        for role, peer in (("send", tb.send), ("recv", tb.recv)):
            if peer == gpu.id:
                linter.error(
                    "peer-self",
                    f"peer ({role}={peer}) and gpu id ({gpu.id}) must be different",
                    tb.line,
                    "use -1 for no peer; local copies need no peer",
                )
            elif peer < -1 or peer >= algo.ngpus:
                linter.error(
                    "peer-range",
                    f"{where}: {role}={peer} is not -1 or a rank 0…{algo.ngpus - 1}",
                    tb.line,
                    "the runtime does not check peers; a wrong one hangs at init",
                )
        if tb.chan < 0 or tb.chan >= runtime.max_channels:
            message = (
                f"threadblock {tb.id} on GPU {gpu.id} has an invalid channel {tb.chan}"
                if tb.chan < 0 or tb.chan > runtime.max_channels
                else f"{where}: chan={tb.chan} equals MAXCHANNELS; the parser accepts it and corrupts memory"
            )
            linter.error("chan-range", message, tb.line, f"use 0 ≤ chan < nchannels={algo.nchannels}")
        elif tb.chan >= algo.nchannels:
            has_peer = tb.send >= 0 or tb.recv >= 0
            (linter.error if has_peer else linter.warning)(
                "chan-ge-nchannels",
                f"{where}: chan={tb.chan} but only channels 0…{algo.nchannels - 1} are connected"
                + ("; its messages never arrive (hang)" if has_peer else ""),
                tb.line,
                f"use chan < nchannels or raise nchannels to {tb.chan + 1}",
            )
        if len(tb.steps) > runtime.max_steps:
            linter.error(
                "too-many-steps",
                f"too many steps are requested. Max number of steps: {runtime.max_steps}, requested: "
                f"{len(tb.steps)} ({where})",
                tb.line,
                "spread the work over more threadblocks or use larger cnt per step",
            )
    expected = set(range(len(ids)))
    for missing in sorted(expected - set(ids)):
        linter.error(
            "tb-missing", f"thread block {missing} is missing on rank {gpu.id}", gpu.line, "number tbs 0…n-1"
        )
    if len(ids) > runtime.max_threadblocks:
        linter.error(
            "too-many-tbs",
            f"rank {gpu.id} has {len(ids)} threadblocks; {runtime.name} supports at most "
            f"{runtime.max_threadblocks}",
            gpu.line,
            "use fewer threadblocks (fewer channels or trees)",
        )


def _check_connections_of_gpu(linter: _Linter, gpu: GpuProgram) -> None:
    """(peer, chan) uniqueness per direction and the 32-per-channel limit."""
    for role in ("send", "recv"):
        owners: dict[tuple[int, int], list[int]] = defaultdict(list)
        per_channel: Counter[int] = Counter()
        for tb in gpu.tbs:
            peer = getattr(tb, role)
            if peer >= 0:
                owners[(peer, tb.chan)].append(tb.id)
                per_channel[tb.chan] += 1
        for (peer, chan), tbs in sorted(owners.items()):
            if len(tbs) > 1:
                line = next(tb.line for tb in gpu.tbs if tb.id == tbs[1])
                linter.error(
                    "duplicate-connection",
                    f"rank {gpu.id} tbs {', '.join(map(str, tbs))} all use the {role} connection to rank "
                    f"{peer} on channel {chan}; two threadblocks on one connection hang or corrupt data",
                    line,
                    "put threadblocks that talk to the same peer on different channels",
                )
        for chan, count in sorted(per_channel.items()):
            if count > linter.runtime.max_tbs_per_channel:
                linter.error(
                    "tbs-per-channel",
                    f"too many {role}s per channel. Max allowed {linter.runtime.max_tbs_per_channel} "
                    f"(rank {gpu.id} channel {chan}: {count})",
                    gpu.line,
                    "spread the connections over more channels",
                )


def _step_problems(
    linter: _Linter, gpu: GpuProgram, tb: Threadblock, tb_ids: set[int]
) -> Iterator[tuple[str, str, str, int | None, str | None]]:
    """(severity, rule, message, line, hint) of every per-step rule; ``tb_ids``: the ids of the rank's
    threadblocks."""
    runtime = linter.runtime
    declared = {"i": gpu.i_chunks, "o": gpu.o_chunks, "s": gpu.s_chunks}
    pending_nops = 0
    for index, step in enumerate(tb.steps):
        where = f"rank {gpu.id} tb {tb.id} step {index}"
        line = step.line
        if step.s != index:
            yield (
                "error",
                "step-numbering",
                f"{where} has s={step.s}; the runtime counts positions, so waits on this tb resolve "
                + ("late or never" if step.s > index else "early (a race)"),
                line,
                f'number steps 0, 1, 2, … in document order (s="{index}")',
            )
        if step.type not in STEP_TYPES:
            yield (
                "error",
                "step-type",
                f"type of transfer is not supported: {step.type} ({where})",
                line,
                None,
            )
            continue
        if step.type in runtime.rejected_step_types:
            yield (
                "error",
                "rccl-step-type",
                f"{where} uses '{step.type}', which {runtime.name} (ROCm ≥ 6.1) loads but rejects at launch "
                '("this version of MSCCL build doesn\'t support full Ops")',
                line,
                "use only s, r, re, cpy and nop: receive into scratch with r, fold with re, then s",
            )
        for operand in (step.srcbuf, step.dstbuf):
            if operand not in BUFFERS:
                yield (
                    "error",
                    "buffer-name",
                    f"type of buffer is not supported: {operand} ({where})",
                    line,
                    None,
                )
        if step.hasdep not in (0, 1):
            yield (
                "error",
                "hasdep-range",
                f"hasDependence needs to be 0 or 1, but it was {step.hasdep}",
                line,
                None,
            )
        yield from _dependency_problems(step, where, tb.id, tb_ids, runtime)
        if step.type == "nop":
            if step.depid < 0:
                yield (
                    "error",
                    "nop-without-dep",
                    f"{where} is a nop without a dependency: the runtime drops it without counting its "
                    "position, so every later position of this tb is one lower than its s and waiters hang",
                    line,
                    "remove the nop, or give it the depid/deps it should add",
                )
            else:
                pending_nops += 1
            continue
        if pending_nops and step.depid < 0:
            yield (
                "error",
                "nop-chain",
                f"{where}: when there is a chain of dependencies, the last reduction must be a part of the "
                "first immediate instruction … XML will be ignored",
                line,
                "the step after nops must carry its own depid/deps",
            )
        pending_nops = 0
        if not 1 <= step.cnt < runtime.max_count:
            yield (
                "error",
                "cnt-range",
                f"count ({step.cnt}) must be positive and less than {runtime.max_count} ({where})",
                line,
                None,
            )
            continue
        if step.type in SEND_TYPES and tb.send < 0:
            yield (
                "error",
                "missing-peer",
                f"there is a send in thread block {tb.id} on GPU {gpu.id} without a sendPeer.",
                line,
                None,
            )
        if step.type in RECV_TYPES and tb.recv < 0:
            yield (
                "error",
                "missing-peer",
                f"there is a recv in thread block {tb.id} on GPU {gpu.id} without a recvPeer.",
                line,
                None,
            )
        operands = []
        if step.type in USES_SRC:
            operands.append(("src", step.srcbuf, step.srcoff))
        if step.type in USES_DST:
            operands.append(("dst", step.dstbuf, step.dstoff))
        for role, buffer, offset in operands:
            size = declared.get(buffer)
            if size is not None and (offset < 0 or offset + step.cnt > size):
                yield (
                    "error",
                    "operand-range",
                    f"{where}: {role} {buffer}[{offset}…{offset + step.cnt - 1}] is outside "
                    f"the {size} chunk(s) of {buffer} declared by rank {gpu.id} "
                    "(the runtime checks only the start, not the end)",
                    line,
                    f"keep 0 ≤ {role}off and {role}off + cnt ≤ {buffer}_chunks",
                )
    if pending_nops:
        yield (
            "warning",
            "trailing-nop",
            f"rank {gpu.id} tb {tb.id} ends with nop(s) whose dependencies the runtime discards",
            tb.steps[-1].line,
            "remove trailing nops",
        )


def _dependency_problems(
    step: Step, where: str, tb_id: int, tb_ids: set[int], runtime: RuntimeProfile
) -> Iterator[tuple[str, str, str, int | None, str | None]]:
    """The target of a step's (or nop's) own ``depid``/``deps`` must exist and be storable."""
    line = step.line
    if step.depid >= 0 or step.depid < -1:
        if step.depid == tb_id or step.depid not in tb_ids:
            yield (
                "error",
                "dep-target",
                f"{where} waits on tb {step.depid}, which is "
                + ("itself (program order already orders it)" if step.depid == tb_id else "not on this GPU"),
                line,
                "depid must name another tb of the same <gpu>, or be -1",
            )
        elif step.deps < 0:
            yield (
                "error",
                "dep-step-range",
                f"{where} waits on tb {step.depid} with deps={step.deps}, which names no step",
                line,
                "deps is the index of the awaited step in tb depid",
            )
        elif step.depid > runtime.max_depid:
            yield (
                "error",
                "depid-too-large",
                f"{where} has depid={step.depid}; the runtime stores it in an int8, so it wraps negative",
                line,
                f"keep the threadblocks that others wait on at ids ≤ {runtime.max_depid}",
            )


def _check_steps(linter: _Linter, gpu: GpuProgram, tb: Threadblock, tb_ids: set[int]) -> None:
    for severity, rule, message, line, hint in _step_problems(linter, gpu, tb, tb_ids):
        (linter.error if severity == "error" else linter.warning)(rule, message, line, hint)


def _check_dependencies(
    linter: _Linter, gpu: GpuProgram, folded: dict[tuple[int, int], list[Transmission]]
) -> None:
    """Every wait must be released by a published position and ``re`` chains must
    stay within the runtime's fusion limit."""
    tbs = {tb.id: tb for tb in gpu.tbs}
    # per threadblock, the positions it publishes (ascending), listed once: not once per wait on it
    published_by = {
        tb.id: sorted(t.publishes for t in folded.get((gpu.id, tb.id), []) if t.publishes is not None)
        for tb in gpu.tbs
    }
    for tb in gpu.tbs:
        transmissions = folded.get((gpu.id, tb.id), [])
        for t in transmissions:
            members = len(t.srcoffs)
            line = tb.steps[t.first_step].line
            cap = linter.runtime.max_fused_chain
            if cap is not None and members > cap:
                linter.error(
                    "re-chain-too-long",
                    f"rank {gpu.id} tb {tb.id} steps {t.first_step}…{t.last_step} fuse into a chain "
                    f"of {members} re steps; {linter.runtime.name} computes at most {cap} correctly",
                    line,
                    'break the chain with hasdep="1" or a different step',
                )
            if (
                members > 1
                and len({step.cnt for step in tb.steps[t.first_step : t.last_step + 1] if step.type == "re"})
                > 1
            ):
                linter.warning(
                    "re-chain-cnt",
                    f"rank {gpu.id} tb {tb.id} steps {t.first_step}…{t.last_step} fuse into one re "
                    "chain that uses the last member's cnt for all members",
                    line,
                    "give fused re steps equal cnt",
                )
            for waited, position in t.waits:
                if waited not in tbs or waited == tb.id:
                    continue  # reported by dep-target
                target, published = tbs[waited], published_by[waited]
                first = bisect.bisect_left(published, position)  # the first publish that releases it
                where = f"rank {gpu.id} tb {tb.id} step {t.first_step}"
                if first == len(published):
                    linter.error(
                        "dep-on-unpublished",
                        f"{where} waits for tb {waited} to reach step {position}, but tb {waited} never "
                        'publishes that position (no step at or after it has hasdep="1"): the wait hangs',
                        line,
                        f'set hasdep="1" on step {position} of tb {waited}',
                    )
                elif published[first] != position:
                    step_there = target.steps[position] if 0 <= position < len(target.steps) else None
                    linter.warning(
                        "dep-on-unflagged-step",
                        f"{where} waits for step {position} of tb {waited}, which is "
                        + ("not published itself" if step_there is not None else "not a step")
                        + "; it is released only by a later flagged step (waits longer than intended)",
                        line,
                        f'set hasdep="1" on step {position} of tb {waited}',
                    )


def _check_unused_flags(
    linter: _Linter, gpu: GpuProgram, folded: dict[tuple[int, int], list[Transmission]]
) -> None:
    """A publish that releases no wait costs a flag store and maybe a fence."""
    awaited: dict[int, list[int]] = defaultdict(list)
    for tb in gpu.tbs:
        for t in folded.get((gpu.id, tb.id), []):
            for waited, position in t.waits:
                awaited[waited].append(position)
    for tb in gpu.tbs:
        positions = sorted(awaited.get(tb.id, []))
        previous = -1
        for t in folded.get((gpu.id, tb.id), []):
            if t.publishes is None:
                continue
            first = bisect.bisect_right(positions, previous)
            if first == len(positions) or positions[first] > t.publishes:
                linter.warning(
                    "unused-flag",
                    f'rank {gpu.id} tb {tb.id} step {t.last_step} has hasdep="1" but no wait needs it',
                    tb.steps[t.last_step].line,
                    'set hasdep="0"',
                )
            previous = t.publishes


def _check_pairing(linter: _Linter) -> None:
    """Send/receive declarations are mirrored, and each connection's messages pair up one to one with
    equal ``cnt``."""
    senders: dict[tuple[int, int, int], Threadblock] = {}
    receivers: dict[tuple[int, int, int], Threadblock] = {}
    for gpu in linter.algo.gpus:
        for tb in gpu.tbs:
            if tb.send >= 0:
                senders.setdefault((gpu.id, tb.send, tb.chan), tb)
            if tb.recv >= 0:
                receivers.setdefault((tb.recv, gpu.id, tb.chan), tb)
    for key in sorted(set(senders) | set(receivers)):
        src, dst, chan = key
        if key not in receivers:
            tb = senders[key]
            linter.error(
                "unpaired-connection",
                f"rank {src} tb {tb.id} sends to rank {dst} on channel {chan}, but rank {dst} has no tb that "
                f"receives from rank {src} on channel {chan}; connection setup hangs at communicator init",
                tb.line,
                f'add recv="{src}" chan="{chan}" to a tb of rank {dst}',
            )
            continue
        if key not in senders:
            tb = receivers[key]
            linter.error(
                "unpaired-connection",
                f"rank {dst} tb {tb.id} receives from rank {src} on channel {chan}, but rank {src} has no tb "
                f"that sends to rank {dst} on channel {chan}; connection setup hangs at communicator init",
                tb.line,
                f'add send="{dst}" chan="{chan}" to a tb of rank {src}',
            )
            continue
        send_tb = senders[key]
        recv_tb = receivers[key]
        sends = [step for step in send_tb.steps if step.type in SEND_TYPES]
        recvs = [step for step in recv_tb.steps if step.type in RECV_TYPES]
        for number, (sent, received) in enumerate(zip(sends, recvs, strict=False)):
            if sent.cnt != received.cnt:
                linter.error(
                    "cnt-mismatch",
                    f"message {number} from rank {src} to rank {dst} on channel {chan}: the send (tb "
                    f"{send_tb.id} step {sent.s}) has cnt={sent.cnt}, the receive (tb {recv_tb.id} step "
                    f"{received.s}) cnt={received.cnt}; the FIFO desynchronises",
                    received.line,
                    "the k-th send and the k-th receive of a connection must have equal cnt",
                )
                break
        if len(sends) != len(recvs):
            linter.error(
                "message-count",
                f"rank {src} sends {len(sends)} message(s) to rank {dst} on channel {chan}, which receives "
                f"{len(recvs)}; the surplus side hangs",
                (send_tb if len(sends) > len(recvs) else recv_tb).line,
                "every send-type step needs exactly one receive-type step on the peer, in the same order",
            )


def _check_topology(linter: _Linter, topology: Topology) -> None:
    algo = linter.algo
    if topology.num_gpus != algo.ngpus:
        linter.error(
            "topology-ngpus",
            f"the file is for {algo.ngpus} ranks but topology {topology.name} has {topology.num_gpus} GPUs",
            algo.line,
            "verify against the topology the file was compiled for",
        )
    sms = topology.metadata.sms_per_gpu
    if sms is None:
        return
    for gpu in algo.gpus:
        if len(gpu.tbs) > sms:
            linter.error(
                "tbs-exceed-sms",
                f"rank {gpu.id} runs {len(gpu.tbs)} threadblocks but a "
                f"{topology.metadata.gpu_model or 'GPU'} has {sms} SMs; "
                "threadblocks spin-wait on each other, so all must be resident (hang)",
                gpu.line,
                f"use at most {sms} threadblocks per GPU",
            )


def _ranges(values: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2, 5``."""
    parts = []
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if value is not None:
            start = previous = value
    return ", ".join(parts)
