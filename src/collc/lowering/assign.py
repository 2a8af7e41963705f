"""Stage 2 of the lowering: transfers -> lanes (connections) -> channels -> threadblocks.

A *group* is the traffic of one ordered GPU pair over one network plane: ``(src, dst, plane)``. A group
is carried by one or more *lanes*; a lane is one NCCL connection ``src -> dst`` on its own channel,
driven by one sending threadblock on ``src`` and one receiving threadblock on ``dst``. More lanes spread
a fat link's traffic over more threadblocks (one moves about :data:`TB_RATE_GBPS`).

Channel rule (docs/lowering.md §5): lanes of the same ordered pair get distinct channels, which is all
that uniqueness of ``(peer, chan)`` per direction requires; a lane whose traffic crosses network plane
``p`` of ``P`` gets a channel ``≡ p (mod P)``, so the channel index keeps the rail the solver assumed.
Threadblocks start as one per lane end; when a GPU has more than its limit, a receiving and a sending
threadblock on the same channel are merged into one (``recv=a, send=b``), which keeps every channel
decision valid.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction
from math import lcm

import numpy as np

from collc.lowering.limits import MAX_TBS_WITH_PEER_PER_CHANNEL, DoesNotFit
from collc.lowering.plan import Plan, Transfer, TransferColumns
from collc.lowering.sequence import Hazards

# One threadblock's rate when planning lanes (the event simulation uses the measured rate, cost-model §1).
TB_RATE_GBPS = Fraction(25)

Group = tuple[int, int, int | None, tuple[int, ...]]  # (src, dst, plane, stage)
Loads = dict[Group, list[int]]  # transfer indices per group (group_loads)


@dataclass(frozen=True)
class Lane:
    """One connection ``src -> dst`` on channel ``chan`` carrying part of a group's transfers."""

    src: int
    dst: int
    plane: int | None
    chan: int
    group: Group


@dataclass(frozen=True)
class ThreadblockSpec:
    """A threadblock before it has steps: the lane it sends on and the lane it receives on."""

    send_lane: int | None
    recv_lane: int | None
    chan: int


@dataclass(frozen=True)
class Assignment:
    """Where every transfer runs: its lane, and per GPU the threadblocks with their ids."""

    lanes: tuple[Lane, ...]
    lane_of: tuple[int, ...]  # per transfer
    tbs: tuple[tuple[ThreadblockSpec, ...], ...]  # per GPU, index = tb id
    tb_of: dict[tuple[int, int, str], int]  # (gpu, lane, "send"|"recv") -> tb id
    nchannels: int


def group_of(transfer: Transfer, split_stages: bool) -> Group:
    """The group of a transfer; with ``split_stages`` transfers of different stages never share a lane.

    The stage is the key's ``(phase, level)``. The runtime runs every threadblock's whole step list once
    per pipelining iteration, so a threadblock whose steps sit at different tree depths cannot start
    iteration i+1 before its deepest step of iteration i has its data: iterations stop overlapping.
    Threadblocks of one stage only wait for lower stages, which keeps the pipeline flowing.
    """
    stage = transfer.key[:2] if split_stages else ()
    return (transfer.src, transfer.dst, transfer.plane, stage)


def group_loads(plan: Plan, split_stages: bool) -> Loads:
    """Transfer indices per group, in key order (ties by index), the groups in :func:`group_order`.

    Worked out once per plan and stage rule and handed to the functions below that need it.
    """
    transfers = plan.transfers
    keys = [transfer.key for transfer in transfers]
    groups: Loads = {}
    for index in sorted(range(len(transfers)), key=keys.__getitem__):  # stable: ties keep index order
        groups.setdefault(group_of(transfers[index], split_stages), []).append(index)
    return dict(sorted(groups.items(), key=lambda item: group_order(item[0])))


def lanes_by_rate(chunks: int, transfers: int, chunk_rate: Fraction) -> int:
    """Lanes a group of ``transfers`` moving ``chunks`` per loop needs so that none carries more than
    :data:`TB_RATE_GBPS` (``chunk_rate``: :func:`wanted_lanes`); never more lanes than transfers."""
    # ceil(chunks * chunk_rate / TB_RATE_GBPS) in integers: called once per group, 10^4 groups at scale
    numerator = chunks * chunk_rate.numerator * TB_RATE_GBPS.denominator
    denominator = chunk_rate.denominator * TB_RATE_GBPS.numerator
    return max(1, min(-(-numerator // denominator), transfers))


def coalesce_stages(plan: Plan, loads: Loads, chunk_rate: Fraction, max_tbs: int) -> Loads:
    """``loads`` (one group per pair, plane and tree depth) with groups of one pair and plane joined
    where a GPU needs more than ``max_tbs`` threadblocks for their lanes, the nearest tree depths first.

    The runtime runs a threadblock's whole step list once per pipelining iteration, so a lane that
    carries two depths cannot start iteration i + 1 of the shallower one before the deeper one of
    iteration i has its data: it couples iterations by the hops between them. Joining two depths of
    one pair couples them by that distance only and saves a threadblock at *both* ends; merging a
    receiving with a sending threadblock (:func:`_merges`) saves one, at one end, and may couple a
    broadcast depth with an aggregation depth a whole tree apart. So where lanes are short, depths of
    one pair share a lane first (fewest hops apart, then joins that relieve both ends, then fewest
    chunks, then group order: deterministic) and merging takes what is left. 2x16 MI250 allreduce on
    RCCL's 64 threadblocks, k = 1 at a 256 KiB buffer: 133.2 GB/s at 1 GiB with 9 merges per GPU,
    154.7 with depths joined (bound 160; docs/lowering.md §5).

    A joined group keeps the earlier depth's key and its transfers in key order; its lanes are sized
    by rate (:func:`lanes_by_rate`). A join that saves no lane is not made. Groups are numbered in
    :func:`group_order` and a joined group's transfers are put in order once, at the end: 142,336
    groups of 64x8 H100 rail allreduce join to 32,768 in 1.7 s (9.6 s when every join merged lists).
    """
    cnt = [transfer.source.cnt for transfer in plan.transfers]
    groups = sorted(loads, key=group_order)  # a group's id is its place here: a pair's depths in a row
    runs = [[loads[group]] for group in groups]  # per group: its transfers, a run per joined depth
    transfers = [len(loads[group]) for group in groups]
    chunks = [sum(cnt[i] for i in loads[group]) for group in groups]
    lanes = [lanes_by_rate(c, t, chunk_rate) for c, t in zip(chunks, transfers, strict=True)]
    ends: Counter[int] = Counter()
    for (src, dst, _, _), count in zip(groups, lanes, strict=True):
        ends[src] += count
        ends[dst] += count
    if max(ends.values(), default=0) <= max_tbs or not all(group[3] for group in groups):
        return loads
    first_hop = [group[3][1] // 2 for group in groups]  # hops from the root of a group's first depth
    last_hop = list(first_hop)  # and of its last
    same_path = [a[:3] == b[:3] for a, b in itertools.pairwise(groups)]
    after = [g + 1 if joinable else -1 for g, joinable in enumerate(same_path)] + [-1]  # -1: none
    before = [-1] + [g if joinable else -1 for g, joinable in enumerate(same_path)]
    alive = [True] * len(groups)

    def join_key(first: int, second: int) -> tuple[int, int, int, int, int]:
        """Fewest hops apart, then relieving both ends, then fewest chunks, then group order."""
        src, dst = groups[first][0], groups[first][1]
        relieved = (ends[src] > max_tbs) + (ends[dst] > max_tbs)
        return (last_hop[second] - first_hop[first], -relieved, chunks[first] + chunks[second], first, second)

    heap = [join_key(g, nxt) for g, nxt in enumerate(after) if nxt >= 0]
    heapq.heapify(heap)
    short = sum(1 for count in ends.values() if count > max_tbs)  # GPUs still over the limit
    while heap and short:
        key = heapq.heappop(heap)
        first, second = key[3], key[4]
        if not alive[first] or after[first] != second:
            continue  # a join made since changed this pair of depths
        current = join_key(first, second)
        if current[1] == 0:
            continue  # neither end is short of threadblocks any more (they never become short again)
        if current != key:
            heapq.heappush(heap, current)
            continue
        joined = lanes_by_rate(
            chunks[first] + chunks[second], transfers[first] + transfers[second], chunk_rate
        )
        saved = lanes[first] + lanes[second] - joined
        if saved <= 0:
            continue
        alive[second] = False
        runs[first] += runs[second]
        transfers[first] += transfers[second]
        chunks[first] += chunks[second]
        lanes[first] = joined
        for gpu in groups[first][:2]:
            if ends[gpu] > max_tbs and ends[gpu] - saved <= max_tbs:
                short -= 1
            ends[gpu] -= saved
        last_hop[first] = last_hop[second]
        after[first] = after[second]
        if after[first] >= 0:
            before[after[first]] = first
        for a, b in ((before[first], first), (first, after[first])):
            if a >= 0 and b >= 0:
                heapq.heappush(heap, join_key(a, b))
    keys = [transfer.key for transfer in plan.transfers]

    def in_key_order(parts: list[list[int]]) -> list[int]:
        """A group's transfers in key order (ties by index), as :func:`group_loads` gives them."""
        if len(parts) == 1:
            return list(parts[0])
        return sorted(itertools.chain(*parts), key=lambda i: (keys[i], i))

    return {
        group: in_key_order(parts) for group, parts, kept in zip(groups, runs, alive, strict=True) if kept
    }


def group_order(group: Group) -> tuple:
    src, dst, plane, stage = group
    return (src, dst, -1 if plane is None else plane, stage)


def wanted_lanes(plan: Plan, loads: Loads, chunk_rate: Fraction) -> dict[Group, int]:
    """Lanes each group of ``loads`` needs so that no threadblock carries more than :data:`TB_RATE_GBPS`.

    ``chunk_rate`` is the GB/s one chunk per loop needs at the schedule's target algbw (the
    collective's algbw divided by ``nchunksperloop``). Never more lanes than transfers.
    """
    return {
        group: lanes_by_rate(sum(plan.transfers[i].source.cnt for i in members), len(members), chunk_rate)
        for group, members in loads.items()
    }


def split_lanes(plan: Plan, loads: Loads, start: dict[Group, int], max_tbs: int) -> dict[Group, int]:
    """Lanes per group, from ``start`` split towards one per transfer, the lane with most chunks first,
    as far as every GPU's ``max_tbs`` threadblocks allow without merging (a lane costs a sending
    threadblock on its source and a receiving one on its destination). Where all fit: a lane per
    transfer, every threadblock sending one piece per iteration.

    Why: threadblocks that share an arc get about equal shares (max-min fair, as the event simulation
    models them), which matches their needs only where their loads are equal; and a threadblock runs
    its steps in order, so one carrying several transfers makes each wait for the data of the one
    before. The heavier lanes fall behind each iteration and the arcs they feed idle early and end
    late. Event simulation at 1 GiB (256 KiB buffer): 4x8 V100 allgather k = 1, 57.2 GB/s with lanes
    sized by rate, 66.3 with a lane per transfer (bound 66.7); 4x8 A100 allreduce k = 1, where a lane
    per transfer needs 140 threadblocks of the 108 an A100 has, 107.3 by rate and 128.1 split to the
    limit (bound 133.3). Ties split in :func:`group_order`, so the result is deterministic.
    """
    lanes = {group: max(1, min(start[group], len(members))) for group, members in loads.items()}
    chunks = {group: sum(plan.transfers[i].source.cnt for i in members) for group, members in loads.items()}
    ends: Counter[int] = Counter()
    for (src, dst, _, _), count in lanes.items():
        ends[src] += count
        ends[dst] += count
    heap = [(-Fraction(chunks[g], lanes[g]), group_order(g), g) for g in loads if lanes[g] < len(loads[g])]
    heapq.heapify(heap)
    while heap:
        _, order, group = heapq.heappop(heap)
        src, dst = group[0], group[1]
        if ends[src] >= max_tbs or ends[dst] >= max_tbs:
            continue
        lanes[group] += 1
        ends[src] += 1
        ends[dst] += 1
        if lanes[group] < len(loads[group]):
            heapq.heappush(heap, (-Fraction(chunks[group], lanes[group]), order, group))
    return lanes


def network_feeders(plan: Plan) -> set[int]:
    """Transfers whose receiver sends the same tree piece on across a network plane (a NIC).

    Matched by phase and ``(tree, instance, piece)``: in the broadcast phase the receiver forwards
    the piece, in the aggregation phase it folds the piece into what it sends up.
    """
    crossing = {(t.key[0], t.key[2:5], t.src) for t in plan.transfers if t.plane is not None}
    return {
        index
        for index, t in enumerate(plan.transfers)
        if t.plane is None and (t.key[0], t.key[2:5], t.dst) in crossing
    }


def feeders_first(plan: Plan, predecessors: Hazards) -> dict[int, list[int]]:
    """Per send, the NIC-feeding sends of the same GPU and phase it waits for (same iteration).

    A NIC can only start once the transfers feeding it have arrived, and at the start of a call every
    free-running send of the box competes for the same switch ports: in reduce-scatter the NICs start
    late and, being as loaded as the ports, end late by as much (docs/cost-model.md §4, cause 3). A
    GPU's other sends (not crossing a plane) therefore wait, iteration by iteration, for its
    free-running NIC-feeding sends, which then have the ports first. Only feeders with no
    predecessors (they read the GPU's own input) are waited for, so no cycle can arise.
    """
    firsts: dict[tuple[int, int], list[int]] = {}
    for index in sorted(network_feeders(plan)):
        if predecessors.indptr[index] == predecessors.indptr[index + 1]:
            transfer = plan.transfers[index]
            firsts.setdefault((transfer.src, transfer.key[0]), []).append(index)
    waited_for = {index for waited in firsts.values() for index in waited}
    after = {}
    for index, transfer in enumerate(plan.transfers):
        waited = firsts.get((transfer.src, transfer.key[0]))
        if waited and transfer.plane is None and index not in waited_for:
            after[index] = waited
    return after


def feeding_groups(plan: Plan, loads: Loads) -> dict[Group, int]:
    """Groups of ``loads`` with a transfer that feeds a NIC (:func:`network_feeders`), with their
    transfer counts."""
    feeders = network_feeders(plan)
    return {group: len(members) for group, members in loads.items() if feeders.intersection(members)}


def with_feeder_lanes(
    wanted: dict[Group, int], feeding: dict[Group, int], *, max_tbs: int, max_channels: int, num_planes: int
) -> dict[Group, int]:
    """``wanted`` with one lane per transfer for the ``feeding`` groups, where that still fits.

    Concurrent threadblocks share a GPU's switch port about equally, so a transfer feeding a NIC
    gets no more of the port than one to a GPU that has time to spare; on fabrics where both the
    port and the NIC are saturated at the bound, the NIC then idles early in the call and never
    catches up (docs/lowering.md §5). Spreading the feeding transfers over more lanes gives them a
    larger share. Returns ``wanted`` itself when a feeding group has a single transfer: it cannot
    be spread (a chunk is never split), and boosting the other groups takes port share from it and
    starves the NIC it feeds (4×8 A100 reduce-scatter 0.776 → 0.595 in the event simulation). Also
    when it would need more threadblocks than a GPU allows without merging, or more lanes than
    channels: per pair ``max_channels``, and per pair and network plane the channels of that
    plane's residue class (docs/lowering.md §5, Rails).
    """
    if 1 in feeding.values():
        return wanted
    boosted = {**wanted, **feeding}
    ends: Counter[int] = Counter()
    pair_lanes: Counter[tuple[int, int]] = Counter()
    plane_lanes: Counter[tuple[int, int, int]] = Counter()
    for (src, dst, plane, _), lanes in boosted.items():
        ends[src] += lanes
        ends[dst] += lanes
        pair_lanes[(src, dst)] += lanes
        if plane is not None:
            plane_lanes[(src, dst, plane)] += lanes
    if (
        max(ends.values(), default=0) > max_tbs
        or max(pair_lanes.values(), default=0) > max_channels
        or max(plane_lanes.values(), default=0) > max_channels // max(1, num_planes)
    ):
        return wanted
    return boosted


def assign(
    plan: Plan,
    loads: Loads,
    lanes_per_group: dict[Group, int],
    *,
    num_planes: int,
    max_channels: int,
    max_tbs: int,
) -> Assignment:
    """Spread the transfers of every group of ``loads`` (:func:`group_loads`) over its lanes, give
    lanes channels and build every GPU's threadblocks.

    A group gets as many of its lanes as there are channels left for its pair; one that gets none
    shares the pair's lanes on its plane (its transfers then sit beside other stages' in one
    threadblock). Raises :class:`DoesNotFit` when a pair has no channel at all. A GPU may end
    up with more than ``max_tbs`` threadblocks when merging cannot help; the caller checks that.
    """
    lanes: list[Lane] = []
    lane_of = [0] * len(plan.transfers)
    cnt = plan.columns.cnt
    used: dict[tuple[int, int], set[int]] = {}
    per_channel: Counter[tuple[str, int, int]] = Counter()  # (role, gpu, chan) -> lanes
    full: defaultdict[tuple[str, int], set[int]] = defaultdict(set)  # (role, gpu) -> channels with 32
    by_path: defaultdict[tuple[int, int, int | None], list[int]] = defaultdict(list)  # (src, dst, plane)
    for group, members in loads.items():
        src, dst, plane, _ = group
        mine: list[int] = []  # the lanes this group's transfers go to
        for _ in range(min(lanes_per_group[group], len(members))):
            taken = used.setdefault((src, dst), set())
            chan = _free_channel(taken | full[("send", src)] | full[("recv", dst)], plane, num_planes)
            if chan >= max_channels:
                break
            taken.add(chan)
            for end in (("send", src), ("recv", dst)):
                per_channel[(*end, chan)] += 1
                if per_channel[(*end, chan)] == MAX_TBS_WITH_PEER_PER_CHANNEL:
                    full[end].add(chan)
            mine.append(len(lanes))
            by_path[(src, dst, plane)].append(len(lanes))
            lanes.append(Lane(src, dst, plane, chan, group))
        if not mine:  # the pair's channels are taken: share its lanes on the plane (stages mix there)
            mine = list(by_path[(src, dst, plane)])
            if not mine:
                chan = _free_channel(used.get((src, dst), set()), plane, num_planes)
                raise DoesNotFit(
                    f"GPU {src} -> GPU {dst} needs channel {chan}, the runtime allows {max_channels}",
                    hint="use fewer instances or a smaller --k/--max-k",
                )
        free = [(0, lane) for lane in mine]  # a heap of (chunks so far, lane)
        for index in members:  # least-loaded lane first (lowest on ties), in key order: deterministic
            load, lane = free[0]
            heapq.heapreplace(free, (load + cnt[index], lane))
            lane_of[index] = lane
    lane_array = np.array(lane_of, dtype=np.int64)
    units = _units(lane_array, plan.columns.unit, len(lanes))
    busy = _busy(plan.columns, lane_array, len(lanes))
    tbs, tb_of = _threadblocks(plan.num_gpus, lanes, units, busy, max_tbs)
    nchannels = 1 + max((lane.chan for lane in lanes), default=0)
    return Assignment(tuple(lanes), tuple(lane_of), tbs, tb_of, nchannels)


def _free_channel(blocked: set[int], plane: int | None, num_planes: int) -> int:
    """Smallest channel not blocked, on the plane's residue class when there is one.

    Blocked: channels the pair already uses, and channels where either end already has 32 lanes in
    that direction (``MSCCL_MAX_NUM_THREAD_BLOCKS_PER_CHANNEL``).
    """
    chan, step = (0, 1) if plane is None else (plane, num_planes)
    while chan in blocked:
        chan += step
    return chan


def _units(lane_of: np.ndarray, unit: np.ndarray, count: int) -> list[frozenset[int]]:
    """Per lane, the tree pieces (:attr:`TransferColumns.unit`) its transfers carry."""
    per_unit = int(unit.max(initial=0)) + 1
    pairs = np.unique(lane_of * per_unit + unit)
    bounds = np.searchsorted(pairs // per_unit, np.arange(count + 1))
    pieces = (pairs % per_unit).tolist()
    return [frozenset(pieces[bounds[lane] : bounds[lane + 1]]) for lane in range(count)]


def _busy(columns: TransferColumns, lane_of: np.ndarray, count: int) -> list[Fraction] | None:
    """Per lane, how long its transfers keep it busy per call of every chunk: the sum of their
    ``cnt / bandwidth`` of their path (ns per byte of a call); None if a bandwidth is unknown.
    A lane's transfers cross a few paths, so chunks are summed per bandwidth first: exact, and one
    division per lane and path instead of one per transfer."""
    if None in columns.rates:
        return None
    rates = len(columns.rates)
    weights = np.array(columns.cnt, dtype=np.float64)  # integer sums far below 2**53: exact
    chunks = np.bincount(lane_of * rates + columns.rate, weights=weights, minlength=count * rates)
    chunks = chunks.reshape(count, rates)
    inverse = [Fraction(rate.denominator, rate.numerator) for rate in columns.rates]  # type: ignore[union-attr]
    return [
        sum((int(n) * inverse[r] for r, n in enumerate(row) if n), Fraction(0)) for row in chunks.tolist()
    ]


def _threadblocks(
    num_gpus: int, lanes: list[Lane], units: list[frozenset], busy: list[Fraction] | None, max_tbs: int
):
    """One threadblock per lane end, merged pairwise (receive + send on one channel) down to ``max_tbs``
    (which pairs: :func:`_merges`)."""
    per_gpu: list[tuple[ThreadblockSpec, ...]] = []
    tb_of: dict[tuple[int, int, str], int] = {}
    sends_of: list[list[int]] = [[] for _ in range(num_gpus)]  # lane indices, increasing
    recvs_of: list[list[int]] = [[] for _ in range(num_gpus)]
    for index, lane in enumerate(lanes):
        sends_of[lane.src].append(index)
        recvs_of[lane.dst].append(index)
    for gpu in range(num_gpus):
        sends, recvs = sends_of[gpu], recvs_of[gpu]
        pairs = _merges(recvs, sends, lanes, units, busy, len(sends) + len(recvs) - max_tbs)
        specs = [ThreadblockSpec(send, recv, lanes[recv].chan) for send, recv in pairs]
        merged_sends = {send for send, _ in pairs}
        merged_recvs = {recv for _, recv in pairs}
        specs += [ThreadblockSpec(s, None, lanes[s].chan) for s in sends if s not in merged_sends]
        specs += [ThreadblockSpec(None, r, lanes[r].chan) for r in recvs if r not in merged_recvs]
        specs.sort(key=lambda spec: _tb_order(spec, lanes))
        for tb_id, spec in enumerate(specs):
            if spec.send_lane is not None:
                tb_of[(gpu, spec.send_lane, "send")] = tb_id
            if spec.recv_lane is not None:
                tb_of[(gpu, spec.recv_lane, "recv")] = tb_id
        per_gpu.append(tuple(specs))
    return tuple(per_gpu), tb_of


def _merges(
    recvs: list[int],
    sends: list[int],
    lanes: list[Lane],
    units: list[frozenset],
    busy: list[Fraction] | None,
    excess: int,
) -> list[tuple[int, int]]:
    """``(send lane, receive lane)`` pairs of one GPU to merge, cheapest first, ``excess`` of them.

    Only lanes on the same channel can share a threadblock. With ``busy`` (per lane, the
    time its transfers keep it busy, :func:`_busy`) a pair costs the time its threadblock is busy per
    iteration: a merged threadblock serves its lanes one step after the other, so ``busy[r] +
    busy[s]``; a sending lane that forwards exactly what the receiving lane brings, one stage later,
    sends each piece right after receiving it and costs only the slower of the two. Lanes with few
    chunks on fast links merge first; a lane on a slow link (a NIC) keeps its own threadblock while
    others can merge. Without ``busy`` (bandwidths unknown): such forwarding pairs first, then
    consecutive stages, then any, in channel order. Event simulation at 1 GiB (sim/bound), those
    rules → busy time: 2×16 MI250 allreduce on RCCL 0.652 → 0.840 at k = 1, 4×8 MI300X allreduce
    0.725 → 0.917 (CHANGELOG.md has every merging case).
    """
    if excess <= 0:
        return []
    sends_on: dict[int, list[int]] = {}  # channel -> sending lanes
    for send in sends:
        sends_on.setdefault(lanes[send].chan, []).append(send)
    weight = None if busy is None else _in_common_units(busy, recvs + sends)
    candidates = []
    for recv in recvs:
        for send in sends_on.get(lanes[recv].chan, ()):
            forwards = _forwards_exactly(lanes[recv], lanes[send], units[recv], units[send])
            if weight is None:
                cost = 0 if forwards else 1 if _next_stage(lanes[recv], lanes[send]) else 2
            else:
                cost = max(weight[recv], weight[send]) if forwards else weight[recv] + weight[send]
            candidates.append((cost, lanes[recv].chan, lanes[recv].src, send, recv))
    heapq.heapify(candidates)  # taken cheapest first until enough pairs: no need to sort them all
    pairs: list[tuple[int, int]] = []
    taken: set[int] = set()
    while candidates and len(pairs) < excess:
        *_, send, recv = heapq.heappop(candidates)
        if send not in taken and recv not in taken:
            taken.update((send, recv))
            pairs.append((send, recv))
    return pairs


def _in_common_units(busy: list[Fraction], chosen: list[int]) -> dict[int, int]:
    """``busy`` of the ``chosen`` lanes as integer multiples of one common unit (the lcm of their
    denominators): sums, maxima and order stay exact, and integers compare much faster."""
    scale = lcm(*(busy[lane].denominator for lane in chosen))
    return {lane: busy[lane].numerator * (scale // busy[lane].denominator) for lane in chosen}


def _forwards_exactly(recv: Lane, send: Lane, recv_units: frozenset, send_units: frozenset) -> bool:
    """Whether ``send`` forwards exactly the tree pieces ``recv`` brings, one stage later.

    The merged threadblock then alternates "receive piece x, send piece x" like a fused
    receive-and-forward and waits for nothing else.
    """
    return recv_units == send_units and _next_stage(recv, send)


def _next_stage(recv: Lane, send: Lane) -> bool:
    """Whether ``send`` is the stage right after ``recv`` in the data flow.

    Such a merged threadblock only waits for lower stages, so the pipeline keeps flowing; merging
    unrelated stages couples iterations (see :func:`group_of`).
    """
    recv_stage, send_stage = recv.group[3], send.group[3]
    return bool(recv_stage) and recv_stage[0] == send_stage[0] and send_stage[1] == recv_stage[1] + 2


def _tb_order(spec: ThreadblockSpec, lanes: list[Lane]) -> tuple[int, int, int]:
    send = lanes[spec.send_lane].dst if spec.send_lane is not None else -1
    recv = lanes[spec.recv_lane].src if spec.recv_lane is not None else -1
    return (spec.chan, send, recv)
