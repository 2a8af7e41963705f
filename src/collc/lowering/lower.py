"""Forest -> MSCCL program, fitted to the runtime's limits (the stages of docs/lowering.md §1).

:func:`lower` runs plan -> lanes/channels/threadblocks -> steps and then fits the result: a
threadblock over the step limit gets its traffic spread over more lanes; a GPU over the threadblock
limit first merges threadblocks, then gives up lanes on its fattest links (throughput per link
below what the forest could carry, reported as ``lanes_capped``). When neither helps it raises
:class:`DoesNotFit`, and the caller tries a smaller ``k`` or fewer instances.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from collc.errors import InvariantError
from collc.lowering.assign import (
    Assignment,
    Group,
    assign,
    coalesce_stages,
    feeders_first,
    feeding_groups,
    group_loads,
    group_order,
    split_lanes,
    wanted_lanes,
    with_feeder_lanes,
)
from collc.lowering.collector import collector_paused
from collc.lowering.emit import emit, end_tbs
from collc.lowering.layout import layout_algbw, tree_chunks
from collc.lowering.limits import DoesNotFit, RuntimeLimits, Usage, usage
from collc.lowering.plan import MAX_CNT, Plan, build_plan, root_shares
from collc.lowering.reach import forest_elements
from collc.lowering.runs import merge_runs
from collc.lowering.sequence import Hazards, hazards, schedule_keys
from collc.msccl.program import PROTOCOLS, Algorithm
from collc.solver.forest import Forest
from collc.stepping import drain

# The runs of consecutive trees a box-block forest's steps may carry, tried in this order until the
# program fits: one tree per step pipelines best (every hop waits for all of a step's chunks).
MERGED_RUNS = (1, 2, 4, 8, 16, 32, MAX_CNT)


@dataclass(frozen=True)
class LoweringOptions:
    """What to emit. A file marked both in-place and out-of-place is correct under both aliasings."""

    coll: str = "allreduce"
    proto: str = "Simple"
    inplace: bool = True
    outofplace: bool = True
    min_bytes: int = 0
    max_bytes: int = 0
    instances: int = 1
    name: str = "collc"
    split_lanes: bool = (
        False  # lanes split towards one per transfer up to the threadblock limit, never merged
    )
    pace_free_senders: bool = False  # free-running senders wait for their GPU's dependent traffic
    share_stages: bool = False  # threadblocks carry several tree depths from the start (none merged)
    max_emissions: int | None = None  # emissions a lane search may take (_fit); None: as many as it needs
    join_stages: bool = True  # short of threadblocks, a pair's nearest depths share lanes before merging
    # allreduce: chunks per instance shared unevenly among the roots (None: k each, or the lcm of both
    # forests' k); a power of two serves power-of-two counts on any number of GPUs (lowering.layout)
    loop_chunks: int | None = None


@dataclass(frozen=True)
class Lowered:
    """A lowered program and how it was fitted."""

    algorithm: Algorithm
    usage: Usage
    lanes: int
    merged_tbs: int
    lanes_capped: bool
    stages_shared: str | None = None  # why threadblocks carry several tree depths, if they do
    piece_chunks: int = 1  # most chunks one step moves (1 unless one-chunk pieces did not fit)
    single_feeders: int = 0  # NIC-feeding groups with one transfer: a lane per transfer cannot help them
    feeder_lanes: bool = False  # whether NIC-feeding groups got a lane per transfer (docs/lowering.md §5)
    split_lanes: bool = False  # lanes split towards one per transfer (LoweringOptions.split_lanes)
    unsplit_groups: int = 0  # with split_lanes: groups left with fewer lanes than transfers
    paced: bool = False  # free-running senders paced (LoweringOptions.pace_free_senders)
    joined_stages: int = 0  # tree depths that share a pair's lane to fit the threadblocks (coalesce_stages)
    join_stages: bool = True  # whether depths could be joined (LoweringOptions.join_stages)


class PlannedOps(NamedTuple):
    """A plan with what every lane search over it needs: its hazards and the feeders-first waits."""

    plan: Plan
    hazards: Hazards
    after: dict[int, list[int]]


@dataclass
class Plans:
    """The plans built so far for one forest (with its reduce forest, the fabric's planes and arc
    rates), by what else shapes a plan: collective, instances, placement and piece size. A compile
    that lowers one candidate several ways (split lanes, shared tree depths) hands the same
    :class:`Plans` to each lowering (:func:`lower_steps`), which then builds each plan once (a plan and
    its hazards take about half a second at 128 GPUs)."""

    forest: Forest
    reduce_forest: Forest | None = None
    planes: dict[str, int] = field(default_factory=dict)
    arc_bandwidths: Mapping[tuple[str, str], Fraction] | None = None
    built: dict[tuple[str, int, bool, bool, int | None, int], PlannedOps] = field(default_factory=dict)
    unmerged: dict[tuple[str, int, bool, bool, int | None], Plan] = field(default_factory=dict)  # box blocks

    def get(self, options: LoweringOptions, max_piece: int) -> PlannedOps:
        """The plan for ``options`` in pieces of at most ``max_piece`` chunks (:meth:`_plan`), built on
        first use."""
        placement = (options.inplace, options.outofplace)
        key = (options.coll, options.instances, *placement, options.loop_chunks, max_piece)
        if key not in self.built:
            plan = self._plan(options, max_piece)
            predecessors = hazards(plan)
            self.built[key] = PlannedOps(plan, predecessors, feeders_first(plan, predecessors))
        return self.built[key]

    def _plan(self, options: LoweringOptions, max_piece: int) -> Plan:
        """:func:`build_plan` for ``options`` in pieces of at most ``max_piece`` chunks; for a
        box-block forest, whose trees move one chunk each, its one plan with runs of consecutive trees
        merged into steps of at most ``max_piece`` chunks instead (:func:`collc.lowering.runs.merge_runs`)."""
        if not self.forest.blocks:
            return self._built(options, max_piece)
        key = (options.coll, options.instances, options.inplace, options.outofplace, options.loop_chunks)
        if key not in self.unmerged:
            self.unmerged[key] = self._built(options, 1)
        return merge_runs(self.unmerged[key], max_piece) if max_piece > 1 else self.unmerged[key]

    def _built(self, options: LoweringOptions, max_piece: int) -> Plan:
        return build_plan(
            self.forest,
            options.coll,
            reduce_forest=self.reduce_forest,
            instances=options.instances,
            inplace=options.inplace,
            outofplace=options.outofplace,
            planes=self.planes,
            arc_bandwidths=self.arc_bandwidths,
            max_piece=max_piece,
            loop_chunks=options.loop_chunks,
        )


def coll_algbw(
    forest: Forest,
    coll: str,
    reduce_forest: Forest | None = None,
    *,
    shares: Sequence[int] | None = None,
    arc_bandwidths: Mapping[tuple[str, str], Fraction] | None = None,
) -> Fraction:
    """The algbw (GB/s, nccl-tests units) the forest's schedule reaches for ``coll``.

    Allgather and reduce-scatter: ``N·k/U``. Allreduce runs reduce-scatter (over ``reduce_forest``,
    else over ``forest``'s trees reversed) then allgather over ``forest``: ``T_AR = T_RS + T_AG``,
    so ``1/(1/RS + 1/AG)``, half the forest's algbw with one forest; a forest packed for both halves
    at once on fixed paths (:attr:`~collc.solver.forest.Forest.allreduce_U`) reaches ``N·k/U`` of
    both halves' loads together (with ``shares``: its busiest arc under both), which is at least that.
    With one forest on a fabric whose two directions differ this is what the trees would reach if
    their reversed arcs were as fast as their own; pass the reduce forest there. ``shares``: an
    allreduce loop shared unevenly among the roots (:attr:`LoweringOptions.loop_chunks`), whose
    busiest arc (:func:`~collc.lowering.layout.layout_algbw`, on ``arc_bandwidths``) sets each half
    instead.
    """
    if shares is not None and arc_bandwidths is None:
        raise InvariantError("the algbw of a shared loop needs the arcs' bandwidths")
    if coll == "allreduce" and reduce_forest is None and forest.allreduce_U is not None:
        if shares is None:
            return forest.num_gpus * forest.k / forest.allreduce_U
        assert arc_bandwidths is not None
        return layout_algbw(forest, shares, arc_bandwidths, both_halves=True)
    if shares is None:
        algbw = forest.allgather_algbw
        reduce_algbw = algbw if reduce_forest is None else reduce_forest.allgather_algbw
    else:
        assert arc_bandwidths is not None
        algbw = layout_algbw(forest, shares, arc_bandwidths)
        reduce_algbw = algbw if reduce_forest is None else layout_algbw(reduce_forest, shares, arc_bandwidths)
    if coll != "allreduce":
        return algbw
    return 1 / (1 / algbw + 1 / reduce_algbw)


def lower(
    forest: Forest,
    options: LoweringOptions,
    limits: RuntimeLimits,
    *,
    planes: dict[str, int] | None = None,
    reduce_forest: Forest | None = None,
    arc_bandwidths: Mapping[tuple[str, str], Fraction] | None = None,
    allow_shared_stages: bool = True,
) -> Lowered:
    """Lower ``forest`` to an :class:`Algorithm` for ``options.coll`` that fits ``limits``.

    ``reduce_forest`` (allreduce only): the forest of ``solve(..., reverse=True)``, whose trees carry
    the reduce-scatter half while ``forest`` carries the allgather half (docs/lowering.md §3); None
    runs both halves on ``forest``, which is optimal only where the fabric is symmetric.
    ``arc_bandwidths`` (:meth:`collc.topology.model.Topology.arc_bandwidths`) tells how long each
    transfer keeps its lane busy; where threadblocks must be merged, the least busy lanes are merged
    first (a transfer's chunks over its path's bandwidth). Without it every path counts alike.
    Tried in order until one fits: one-chunk pieces with one lane per tree depth (stage), whole-tree
    pieces (fewer steps, each hop waits for all of a piece), and, if ``allow_shared_stages``, the same
    two with threadblocks that carry several depths (fewer threadblocks, worse pipelining, see
    :func:`collc.lowering.assign.group_of`). The last failure is raised.
    """
    steps = lower_steps(
        forest,
        options,
        limits,
        planes=planes,
        reduce_forest=reduce_forest,
        arc_bandwidths=arc_bandwidths,
        allow_shared_stages=allow_shared_stages,
    )
    with collector_paused():
        return drain(steps)


def lower_steps(
    forest: Forest,
    options: LoweringOptions,
    limits: RuntimeLimits,
    *,
    planes: dict[str, int] | None = None,
    reduce_forest: Forest | None = None,
    arc_bandwidths: Mapping[tuple[str, str], Fraction] | None = None,
    allow_shared_stages: bool = True,
    plans: Plans | None = None,
) -> Generator[None, None, Lowered]:
    """:func:`lower` in steps: it yields after building a plan with its hazards, and after each
    assignment and emission of a lane search, so that a caller (a compile service) can stop between
    them (a 128-GPU lowering takes seconds), and returns the lowered program. Run it with the cyclic
    collector paused (:func:`collc.lowering.collector.collector_paused`), as :func:`lower` does.
    ``plans``: the plans of earlier lowerings of the same forest, reduce forest, planes and arc rates
    to reuse (and to add to); None builds them afresh."""
    if options.proto not in PROTOCOLS:
        raise InvariantError(f"unknown protocol {options.proto!r}")
    if not (options.inplace or options.outofplace):
        raise InvariantError("a program must be usable in place, out of place or both")
    if forest.reversed and options.coll != "reducescatter":
        raise InvariantError(f"a forest solved on the reversed fabric cannot carry {options.coll}")
    planes = planes or {}
    if plans is None:
        plans = Plans(forest, reduce_forest, planes, arc_bandwidths)
    elif (plans.forest, plans.reduce_forest, plans.planes, plans.arc_bandwidths) != (
        forest,
        reduce_forest,
        planes,
        arc_bandwidths,
    ):
        raise InvariantError("the plans handed to a lowering are of another forest or fabric")
    num_planes = len(set(planes.values()))
    forests = (forest,) if reduce_forest is None else (forest, reduce_forest)
    shares = root_shares(forest, options.coll, reduce_forest, options.loop_chunks)
    most_chunks = max(max(tree_chunks(f, shares)) for f in forests)
    piece_sizes = (1, MAX_CNT) if most_chunks > 1 else (1,)
    if forest.blocks:
        piece_sizes = MERGED_RUNS
    chunk_rate: Fraction | None = None
    failures: list[DoesNotFit] = []
    # Steps counted from the forest: a piece size that cannot fit the element limit builds no plan.
    least = {
        size: forest_elements(forests, options.coll, shares, options.instances, size, options.outofplace)
        for size in piece_sizes
    }
    # merged steps carry several pieces, so the count is no bound on them
    piece_sizes = tuple(
        size
        for size in piece_sizes
        if least[size].total <= limits.max_elements_per_rank or (forest.blocks and size > 1)
    )
    if not piece_sizes:
        fewest = min(least.values(), key=lambda count: count.total)
        raise DoesNotFit(
            f"the forest needs at least {fewest.describe()}, "
            f"{fewest.total - limits.max_elements_per_rank} over the limit of {limits.max_elements_per_rank}",
            hint="use a smaller --k/--max-k or fewer --instances",
        )
    # split lanes: a lane per transfer at any piece size first, then lanes split as far as they fit
    stage_rules = (False,) if options.share_stages else (True, False) if allow_shared_stages else (True,)
    modes = [
        (split_stages, partial) for partial in (False, options.split_lanes) for split_stages in stage_rules
    ]
    for split_stages, partial in dict.fromkeys(modes):
        for size in piece_sizes:
            fresh = len(plans.built)
            plan, predecessors, after = plans.get(options, size)
            if len(plans.built) > fresh:
                yield
            chunk_rate = chunk_rate or coll_algbw(forest, options.coll, reduce_forest) / plan.nchunksperloop
            try:
                lowered = yield from _fit(
                    plan,
                    predecessors,
                    after,
                    chunk_rate,
                    options,
                    limits,
                    num_planes,
                    split_stages=split_stages,
                    partial=partial,
                )
            except DoesNotFit as error:
                failures.append(error.with_traceback(None))  # its frames hold this list: a cycle
                continue
            if options.share_stages:
                lowered = replace(lowered, stages_shared="instead of merged threadblocks")
            elif not split_stages:
                reason = failures[0].message
                lowered = replace(lowered, stages_shared=f"one lane per tree depth did not fit ({reason})")
            return replace(lowered, piece_chunks=size)
    last = failures[-1]
    raise DoesNotFit(last.message, hint=last.hint)  # a new error, which no frame's variable holds


def _fit(
    plan: Plan,
    predecessors: Hazards,
    after: dict[int, list[int]],
    chunk_rate: Fraction,
    options: LoweringOptions,
    limits: RuntimeLimits,
    num_planes: int,
    *,
    split_stages: bool,
    partial: bool = False,
) -> Generator[None, None, Lowered]:
    """Search lane counts: raise per-group minimums for step overflow, cap lanes for threadblock overflow
    (a generator of steps: yields after each assignment and emission).

    ``predecessors`` are the plan's :func:`collc.lowering.sequence.hazards`; ``after`` the sends
    that wait for their GPU's NIC-feeding sends (:func:`feeders_first`), applied only when no
    threadblock is merged: a merged threadblock alternates two lanes, and tying its sends to a third
    threadblock cost 4×8 A100 allreduce 0.777 → 0.740 in the event simulation (MI300X ×4 allreduce
    gained 0.725 → 0.753; CHANGELOG.md). With ``options.split_lanes``, only a lane per transfer fits
    unless ``partial``: then lanes short of it are accepted (:func:`collc.lowering.assign.split_lanes`).
    A threadblock over the step limit after an emission grows its groups by a lane and emits again,
    at most ``options.max_emissions`` times in all (an emission takes seconds at 128 GPUs). Where the
    lanes of one depth each need more threadblocks than a GPU has, ``options.join_stages`` lets a
    pair's nearest depths share lanes first (:func:`collc.lowering.assign.coalesce_stages`).
    """
    loads = group_loads(plan, split_stages)
    separate = len(loads)
    if split_stages and options.join_stages:
        loads = coalesce_stages(plan, loads, chunk_rate, limits.max_tbs)
    feeding = feeding_groups(plan, loads)
    by_rate = wanted_lanes(plan, loads, chunk_rate)
    if options.split_lanes:
        by_rate = wanted = split_lanes(plan, loads, by_rate, limits.max_tbs)
        if not partial and any(wanted[group] < len(members) for group, members in loads.items()):
            raise DoesNotFit(
                f"a lane per transfer needs more than the {limits.max_tbs} threadblocks a GPU allows",
                hint="the lanes are split as far as they fit instead",
            )
    else:
        wanted = with_feeder_lanes(
            by_rate, feeding, max_tbs=limits.max_tbs, max_channels=limits.max_channels, num_planes=num_planes
        )
    sizes = {group: len(members) for group, members in loads.items()}
    minimum = dict.fromkeys(wanted, 1)
    cap = max(wanted.values())
    emissions = 0
    for _ in range(4 * len(wanted) + 64):
        lanes = {g: max(minimum[g], min(wanted[g], cap)) for g in wanted}
        assignment = assign(
            plan,
            loads,
            lanes,
            num_planes=num_planes,
            max_channels=limits.max_channels,
            max_tbs=limits.max_tbs,
        )
        yield
        most_tbs = max(len(specs) for specs in assignment.tbs)
        if most_tbs > limits.max_tbs:  # decided before emitting: threadblocks depend on lanes only
            if options.split_lanes:
                raise DoesNotFit(
                    f"split lanes need {most_tbs} threadblocks on a GPU, the runtime and GPU "
                    f"allow {limits.max_tbs}",
                    hint="the lanes sized by rate are used instead",
                )
            if cap > 1 and any(lanes[g] > minimum[g] for g in wanted):
                cap -= 1
                continue
            raise DoesNotFit(
                f"a GPU needs {most_tbs} threadblocks, the runtime and GPU allow {limits.max_tbs}",
                hint="use a smaller --k/--max-k or fewer --instances",
            )
        if options.split_lanes and _merged(assignment):
            raise DoesNotFit(
                f"a lane for every group fits {limits.max_tbs} threadblocks on a GPU only by merging "
                "senders with receivers",
                hint="the lanes sized by rate are used instead",
            )
        # known before emitting: every operation is at least one step
        growable = _growable(assignment, lanes, sizes)
        crowded = _groups_over_step_limit(_least_steps(plan, assignment), assignment, limits)
        if _grow(crowded, minimum, growable):
            continue
        merged = _merged(assignment)
        algo = emit(
            plan,
            assignment,
            schedule_keys(
                plan, assignment.lane_of, predecessors if merged else predecessors.with_edges(after)
            ),
            after={} if merged else after,
            name=options.name,
            proto=options.proto,
            inplace=options.inplace,
            outofplace=options.outofplace,
            min_bytes=options.min_bytes,
            max_bytes=options.max_bytes,
            pace=options.pace_free_senders,
        )
        yield
        emissions += 1
        measured = usage(algo)
        crowded = _groups_over_step_limit(_steps(algo), assignment, limits)
        if crowded:
            if options.max_emissions is not None and emissions >= options.max_emissions:
                raise DoesNotFit(
                    f"a threadblock still needs {measured.max_steps_per_tb} steps after {emissions} "
                    f"emissions, the runtime allows {limits.max_steps_per_tb}",
                    hint="use a smaller --k/--max-k or fewer --instances",
                )
            if not _grow(crowded, minimum, growable):
                raise DoesNotFit(
                    f"a threadblock needs {measured.max_steps_per_tb} steps, the runtime allows "
                    f"{limits.max_steps_per_tb}",
                    hint="use a smaller --k/--max-k or fewer --instances",
                )
            continue
        problems = measured.violations(limits)
        if problems:
            raise DoesNotFit("; ".join(problems), hint="use a smaller --k/--max-k or fewer --instances")
        capped = any(lanes[g] < wanted[g] for g in wanted)
        single = sum(1 for count in feeding.values() if count == 1)
        return Lowered(
            algo,
            measured,
            len(assignment.lanes),
            merged,
            capped,
            single_feeders=single,
            feeder_lanes=bool(feeding) and wanted is not by_rate,
            split_lanes=options.split_lanes,
            unsplit_groups=sum(1 for group, members in loads.items() if lanes[group] < len(members))
            if options.split_lanes
            else 0,
            paced=options.pace_free_senders,
            joined_stages=separate - len(loads),
            join_stages=options.join_stages,
        )
    raise DoesNotFit("no lane assignment fits the runtime's limits", hint="use a smaller --k/--max-k")


def _merged(assignment: Assignment) -> int:
    """Threadblocks that both receive and send (merged to fit the runtime's threadblock limit)."""
    return sum(
        1
        for gpu in assignment.tbs
        for spec in gpu
        if spec.send_lane is not None and spec.recv_lane is not None
    )


def _growable(assignment: Assignment, lanes: dict[Group, int], sizes: dict[Group, int]) -> dict[Group, int]:
    """The lanes of every group that one more lane would spread further: it has fewer lanes than
    transfers and got every lane it asked for. A group that got fewer ran out of channels for its
    pair (or shares the pair's lanes), and asking it for more changes nothing: without this rule a
    group over the step limit was grown one lane per assignment up to its transfer count before the
    lowering gave up (32 GPUs on a three-tier fat tree: 119 assignments, 13 s)."""
    given = Counter(lane.group for lane in assignment.lanes)
    return {group: count for group, count in lanes.items() if given[group] >= count and count < sizes[group]}


def _grow(crowded: list[Group], minimum: dict[Group, int], growable: dict[Group, int]) -> bool:
    """Give every crowded group that can have more lanes (``growable``, :func:`_growable`) one more
    than it has; False if none can."""
    grown = [group for group in crowded if group in growable]
    for group in grown:
        minimum[group] = max(minimum[group], growable[group]) + 1
    return bool(grown)


def _steps(algo: Algorithm) -> list[list[int]]:
    """Steps per threadblock, per GPU."""
    return [[len(tb.steps) for tb in gpu.tbs] for gpu in algo.gpus]


def _least_steps(plan: Plan, assignment: Assignment) -> list[list[int]]:
    """A lower bound on the steps per threadblock, per GPU: one per operation it hosts (no ``nop``s)."""
    counts = np.zeros((plan.num_gpus, max(map(len, assignment.tbs), default=0)), dtype=np.int64)
    np.add.at(counts, (plan.ends.gpu, end_tbs(plan, assignment)), 1)
    return [row[: len(specs)] for row, specs in zip(counts.tolist(), assignment.tbs, strict=True)]


def _groups_over_step_limit(
    steps: list[list[int]], assignment: Assignment, limits: RuntimeLimits
) -> list[Group]:
    """Groups that feed a threadblock with more steps than allowed (sorted, deduplicated)."""
    groups = set()
    for counts, specs in zip(steps, assignment.tbs, strict=True):
        for count, spec in zip(counts, specs, strict=True):
            if count > limits.max_steps_per_tb:
                for lane_index in (spec.send_lane, spec.recv_lane):
                    if lane_index is not None:
                        groups.add(assignment.lanes[lane_index].group)
    return sorted(groups, key=group_order)
