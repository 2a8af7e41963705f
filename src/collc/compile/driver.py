"""``compile_schedule``: topology -> solved forest -> fitted, verified MSCCL program.

Choosing k (docs/lowering.md §7). The runtime uses a file only for calls whose element count times the
collective's size multiplier is divisible by ``nchunksperloop`` (msccl-xml.md §1.1), so divisibility is
a constraint like the runtime limits. By default the file must serve power-of-two counts (what users
call with); ``align=A`` asks for every count that is a multiple of A instead. Candidates are the
optimal k and powers of two up to ``min(64, max(2·k*, 16))``; each is priced with the exact fixed-k
bound and discounted for pipelining at a reference call size. The candidates that serve the counts
are tried best first; the first that fits the runtime's limits is emitted. ``k`` / ``max_k`` override
the search. Nothing is returned unless the verifier accepts the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import ceil, gcd

from collc.capacity import capacity_graph
from collc.errors import InputError, InvariantError
from collc.lowering.limits import RUNTIMES, RuntimeLimits, limits_for
from collc.lowering.lower import DoesNotFit, Lowered, LoweringOptions, coll_algbw, lower
from collc.lowering.plan import COLLECTIVES, network_planes
from collc.msccl.program import PROTOCOLS, Algorithm
from collc.msccl.writer import to_xml
from collc.predict.params import protocol
from collc.sizes import format_size
from collc.solver import Solution, solve
from collc.solver.bound import fixed_k_bound, optimal_bound
from collc.solver.symmetry import automorphisms
from collc.topology.model import Topology
from collc.verify import VerifyReport, verify

MAX_AUTO_K = 64
# Powers of two priced at least up to this k, even when the optimal k is small: with k* = 3 (1x16 MI250)
# a 2·k* cap leaves only k <= 4 (320 GB/s, 6.7 % below the optimum) while k = 8 reaches 336.8 GB/s.
MIN_PRICED_K = 16
# Candidates are ranked by their bound discounted for pipelining at REFERENCE_BYTES per call (or the
# file's maxBytes): a call of M bytes moves chunks of M / (N·k·I) bytes, and the runtime walks each chunk
# in ceil(chunk / call) iterations (2 MiB calls on Simple), so doubling k halves the iterations that hide
# the trees' fill and drain, which cost about FILL_ITERATIONS iterations (event simulation: 0.3-2.8).
# Ties go to the smaller k.
REFERENCE_BYTES = 2**30
FILL_ITERATIONS = 1
# A second instance (for NIC-feeding lanes) halves the pipelining iterations; it is taken only when at
# least this many remain at the reference call size (4x8 A100 allgather: 16 -> 8 iterations lose 0.5 %).
MIN_DOUBLED_ITERATIONS = 16


@dataclass(frozen=True)
class CompileOptions(LoweringOptions):
    """Everything ``collc compile`` can be asked for: what to emit (:class:`LoweringOptions`) plus the
    runtime (``None``: the topology's, else executor) and how to choose k."""

    runtime: str | None = None
    k: int | None = None
    max_k: int | None = None
    align: int | None = None  # None: serve power-of-two counts
    feeder_instances: bool = True  # may double ``instances`` for NIC-feeding lanes (_feeder_instances)


@dataclass(frozen=True)
class Serving:
    """Which per-call element counts (the API's ``count``) select the file."""

    quantum: int  # counts that are multiples of this are served
    policy: str  # what was asked for, in words
    satisfied: bool

    def describe(self) -> str:
        text = f"every count that is a multiple of {self.quantum} elements"
        if self.quantum & (self.quantum - 1) == 0:
            text += f" (all powers of two >= {self.quantum})"
        return text


def size_multiplier(coll: str, num_gpus: int) -> int:
    """msccl-xml.md §1.1: allgather and reducescatter counts are per rank."""
    return num_gpus if coll in ("allgather", "reducescatter") else 1


def serving(nchunksperloop: int, coll: str, num_gpus: int, align: int | None) -> Serving:
    """The counts a file with ``nchunksperloop`` serves, and whether that meets the request."""
    multiplier = size_multiplier(coll, num_gpus)
    quantum = nchunksperloop // gcd(nchunksperloop, multiplier)
    if align is None:
        return Serving(quantum, "power-of-two counts", quantum & (quantum - 1) == 0)
    return Serving(quantum, f"counts that are multiples of {align}", align % quantum == 0)


@dataclass
class CompileResult:
    """A verified program and the facts ``collc compile`` reports about it."""

    topology: Topology
    options: CompileOptions
    runtime: str
    limits: RuntimeLimits
    solution: Solution
    lowered: Lowered
    instances: int
    optimal_algbw: Fraction
    emitted_algbw: Fraction
    serving: Serving
    verification: VerifyReport
    xml: str
    notes: list[str] = field(default_factory=list)

    @property
    def algorithm(self) -> Algorithm:
        return self.lowered.algorithm

    @property
    def given_up(self) -> Fraction:
        """Fraction of the optimal algbw the emitted schedule gives up (0 when optimal)."""
        return 1 - self.emitted_algbw / self.optimal_algbw


def _check_options(options: CompileOptions, topology: Topology) -> str:
    if options.coll not in COLLECTIVES:
        raise InputError(f"unknown collective {options.coll!r}", hint=f"use one of: {', '.join(COLLECTIVES)}")
    if options.proto not in PROTOCOLS:
        raise InputError(f"unknown protocol {options.proto!r}", hint=f"use one of: {', '.join(PROTOCOLS)}")
    runtime = options.runtime or topology.metadata.runtime or "msccl-executor"
    if runtime not in RUNTIMES:
        raise InputError(f"unknown runtime {runtime!r}", hint=f"use one of: {', '.join(RUNTIMES)}")
    if not (options.inplace or options.outofplace):
        raise InputError("the file must be usable in place, out of place or both")
    if options.min_bytes < 0 or options.max_bytes < 0:
        raise InputError("--min-bytes and --max-bytes must not be negative")
    if options.max_bytes and options.min_bytes > options.max_bytes:
        raise InputError(
            f"--min-bytes {options.min_bytes} is above --max-bytes {options.max_bytes}",
            hint="--max-bytes 0 means no upper limit",
        )
    if options.instances < 1:
        raise InputError(f"--instances must be at least 1, got {options.instances}")
    if options.align is not None and options.align < 1:
        raise InputError(f"--align must be a positive element count, got {options.align}")
    if options.k is not None and options.max_k is not None:
        raise InputError("--k and --max-k cannot be combined", hint="give either a fixed k or a budget")
    if topology.num_gpus < 2:
        raise InputError(
            f"topology {topology.name!r} has {topology.num_gpus} GPU; a collective needs two or more"
        )
    return runtime


def _k_candidates(
    topology: Topology, options: CompileOptions, instances: int
) -> tuple[list[tuple[int | None, int | None, Fraction]], list[str]]:
    """``(k, k to ask the solver for, pipelined bound)`` to try, best first, with notes on the choice.

    The solver is asked for ``None`` (its optimum) when k is the optimal k; k is None only when the
    user's ``--max-k`` leaves it to the solver. The pipelined bound is the allgather bound of k
    discounted for pipeline fill at the reference call size (docs/lowering.md §7); a user's k or
    ``--max-k`` gets 1 (it is the only candidate).
    """
    if options.k is not None or options.max_k is not None:
        return [(options.k, options.k, Fraction(1))], []
    graph = capacity_graph(topology)
    if options.coll == "reducescatter":
        graph = graph.reversed()
    symmetries = automorphisms(topology, graph)
    optimum = optimal_bound(graph, symmetries)
    priced: dict[int, Fraction] = {optimum.k: optimum.allgather_algbw}
    power = 1
    while power <= min(MAX_AUTO_K, max(2 * optimum.k, MIN_PRICED_K)):
        if power not in priced:
            priced[power] = fixed_k_bound(graph, power, symmetries).allgather_algbw
        power *= 2
    n = topology.num_gpus

    def serves(k: int) -> bool:
        return serving(n * k * instances, options.coll, n, options.align).satisfied

    reference = options.max_bytes or REFERENCE_BYTES
    call_bytes = protocol(options.proto).call_bytes

    def iterations(k: int) -> int:
        return max(1, ceil(reference / (n * k * instances * call_bytes)))

    def pipelined(k: int) -> Fraction:
        return priced[k] * iterations(k) / (iterations(k) + FILL_ITERATIONS)

    ranked = sorted(priced, key=lambda k: (-pipelined(k), k))
    fitting = [k for k in ranked if serves(k)]
    notes = []
    policy = serving(n * instances, options.coll, n, options.align).policy
    if not fitting:
        notes.append(
            f"no k lets nchunksperloop divide {policy} for {options.coll} on {n} GPUs; "
            "the file serves only the counts listed above (use --align with the counts you call with)"
        )
        fitting = ranked
    elif not serves(optimum.k):
        notes.append(
            f"k = {optimum.k} (the optimum) would make nchunksperloop = {n * optimum.k * instances}, "
            f"which does not divide {policy}"
        )
    chosen, best_bound = fitting[0], max(fitting, key=lambda k: (priced[k], -k))
    if priced[best_bound] > priced[chosen]:
        gain = float(priced[best_bound] / priced[chosen] - 1) * 100
        notes.append(
            f"k = {chosen} preferred to k = {best_bound} (whose bound is {gain:.2f} % higher): a "
            f"{format_size(reference)} call pipelines over {iterations(chosen)} iterations instead of "
            f"{iterations(best_bound)}; use --k to override"
        )
    return [(k, None if k == optimum.k else k, pipelined(k)) for k in fitting], notes


def compile_schedule(topology: Topology, options: CompileOptions) -> CompileResult:
    """Solve, lower, fit and verify a schedule for ``topology``; raises if nothing fits or a check fails."""
    runtime = _check_options(options, topology)
    limits = limits_for(topology, runtime)
    planes = network_planes(topology)
    instance_options = []
    count = options.instances
    while count >= 1:
        instance_options.append(count)
        count //= 2
    failures: list[str] = []
    solutions: dict[int | None, Solution] = {}  # both passes reuse the solved forests
    for allow_shared_stages in (False, True):  # a smaller k that pipelines beats a larger one that does not
        for instances in instance_options:
            candidates, notes = _k_candidates(topology, options, instances)
            smallest_failed = None
            fitted: list[tuple[Fraction, int, Solution, Lowered]] = []
            for order, (known_k, k, pipelined) in enumerate(candidates):
                if smallest_failed is not None and known_k is not None and known_k > smallest_failed:
                    continue  # more trees per root only need more threadblocks, steps and channels
                if fitted and pipelined <= max(item[0] for item in fitted):
                    break  # candidates come by pipelined bound: no later one can score higher
                if k not in solutions:
                    reverse = options.coll == "reducescatter"
                    solutions[k] = solve(topology, k=k, max_k=options.max_k, reverse=reverse)
                solution = solutions[k]
                name = _name(topology, options.coll, solution.forest.k, instances)
                lowering = replace(options, instances=instances, name=name)
                try:
                    lowered = lower(
                        solution.forest,
                        lowering,
                        limits,
                        planes=planes,
                        allow_shared_stages=allow_shared_stages,
                    )
                except DoesNotFit as error:
                    failures.append(f"k = {solution.forest.k}, {instances} instance(s): {error.message}")
                    smallest_failed = min(solution.forest.k, smallest_failed or solution.forest.k)
                    continue
                expected = pipelined * merge_factor(lowered)
                fitted.append((expected, -order, solution, lowered))
                if not lowered.merged_tbs:
                    break  # nothing later in the preference order can do better than an unmerged fit
            if fitted:
                expected, _, solution, lowered = max(fitted, key=lambda item: (item[0], item[1]))
                if failures:
                    notes.append("did not fit: " + "; ".join(failures))
                if len(fitted) > 1:
                    notes.append(
                        "merged threadblocks halve their bandwidth; chose k = "
                        f"{solution.forest.k} by pipelined bound x (1 - merged / 2·threadblocks) among k in "
                        f"{sorted(item[2].forest.k for item in fitted)}"
                    )
                lowered, instances = _feeder_instances(
                    topology, options, limits, planes, solution, lowered, instances, notes
                )
                return _finish(topology, options, runtime, limits, solution, lowered, instances, notes)
    raise DoesNotFit(
        f"no schedule fits {runtime} on {topology.name}: " + "; ".join(failures),
        hint="try --max-k with a small budget, --instances 1, or the other runtime's limits; "
        "a file cannot hold more than 4096 elements per rank",
    )


def _feeder_instances(
    topology: Topology,
    options: CompileOptions,
    limits: RuntimeLimits,
    planes: dict[str, int],
    solution: Solution,
    lowered: Lowered,
    instances: int,
    notes: list[str],
) -> tuple[Lowered, int]:
    """Twice the instances for a reduce-scatter whose NIC-feeding pairs carry one transfer each.

    A lane per NIC-feeding transfer cannot help a pair with a single transfer; with two instances
    every pair carries two, and the doubled file is kept when its feeding pairs get their lanes
    without merged, capped or stage-sharing threadblocks, and while it still pipelines over
    :data:`MIN_DOUBLED_ITERATIONS` at the reference call size. 2×8 A100 reduce-scatter: 0.960 → 0.987
    of the bound in the event simulation at 1 GiB; where the doubled file cannot give the lanes
    (4×8 H100 rail) it would lose (0.936 → 0.837) and is not taken. Only reduce-scatter, where an
    aggregation waits for its slowest input: allgather and allreduce showed no gain (2×8 A100
    allreduce 0.988 either way, 4×8 A100 allgather 0.926 → 0.921) and would pay threadblocks for it
    (60 → 74 per GPU on 2×8 A100 allreduce). docs/lowering.md §5.
    """
    wanted = options.feeder_instances and options.coll == "reducescatter" and lowered.single_feeders
    if not wanted or lowered.merged_tbs:
        return lowered, instances
    doubled = 2 * instances
    call_bytes = protocol(options.proto).call_bytes
    chunks = 2 * lowered.algorithm.nchunksperloop
    if (options.max_bytes or REFERENCE_BYTES) < MIN_DOUBLED_ITERATIONS * chunks * call_bytes:
        return lowered, instances
    name = _name(topology, options.coll, solution.forest.k, doubled)
    try:
        candidate = lower(
            solution.forest,
            replace(options, instances=doubled, name=name),
            limits,
            planes=planes,
            allow_shared_stages=False,
        )
    except DoesNotFit:
        return lowered, instances
    if not candidate.feeder_lanes or candidate.merged_tbs or candidate.lanes_capped:
        return lowered, instances
    notes.append(
        f"{doubled} instances: {lowered.single_feeders} groups of NIC-feeding transfers (pair, rail, "
        "tree depth) had one transfer each, too few for a lane per transfer; use --instances to override"
    )
    return candidate, doubled


def merge_factor(lowered: Lowered) -> Fraction:
    """A heuristic share of the bound a program keeps when some threadblocks are merged.

    A merged threadblock serves a receiving and a sending lane one step after the other, so each of
    its two lanes gets about half a threadblock; the factor charges half of every merged threadblock
    against all threadblocks. (The cost model's event simulation of 2x16 MI250 allreduce on RCCL:
    k = 2 with half its threadblocks merged reaches 0.27 of its bound, k = 1 with 14 % merged 0.62.)
    """
    total = sum(len(gpu.tbs) for gpu in lowered.algorithm.gpus)
    return 1 - Fraction(lowered.merged_tbs, 2 * total)


def _name(topology: Topology, coll: str, k: int, instances: int) -> str:
    return f"collc-{topology.name}-{topology.num_gpus}gpus-{coll}-k{k}-i{instances}"[:200]


def _finish(topology, options, runtime, limits, solution, lowered, instances, notes) -> CompileResult:
    algo = lowered.algorithm
    report = verify(algo, runtime=runtime, topology=topology)
    if not report.ok:
        problems = "; ".join(f"{p.rule}: {p.message}" for p in report.errors[:10])
        raise InvariantError(
            f"the lowered program failed verification ({len(report.errors)} errors): {problems}"
        )
    bound = solution.bound
    optimal_forest_algbw = bound.optimal_x_star * bound.num_gpus
    optimal_algbw = optimal_forest_algbw / 2 if options.coll == "allreduce" else optimal_forest_algbw
    if lowered.stages_shared:
        notes.append(
            f"threadblocks carry several tree depths ({lowered.stages_shared}); "
            "pipelining across iterations suffers"
        )
    if lowered.piece_chunks > 1:
        notes.append(
            "steps move whole trees' chunks (one-chunk steps did not fit the runtime's limits); "
            "every hop waits for a whole piece, so pipelining fills more slowly"
        )
    if lowered.lanes_capped:
        notes.append(
            "some links got fewer threadblocks than their traffic needs (threadblock limit); "
            "expect less than the emitted algbw on those links"
        )
    return CompileResult(
        topology=topology,
        options=options,
        runtime=runtime,
        limits=limits,
        solution=solution,
        lowered=lowered,
        instances=instances,
        optimal_algbw=optimal_algbw,
        emitted_algbw=coll_algbw(solution.forest, options.coll),
        serving=serving(algo.nchunksperloop, options.coll, topology.num_gpus, options.align),
        verification=report,
        xml=to_xml(algo, runtime=runtime),
        notes=notes,
    )


def _gbps(value: Fraction) -> str:
    return f"{float(value):.3f} GB/s"


def deploy_lines(runtime: str, filename: str) -> list[str]:
    """How to make the runtime load the file (msccl-xml.md §1.1, §1.2, §1.3)."""
    lines = [
        f"  mkdir -p msccl-algorithms && cp {filename} msccl-algorithms/   # only algorithm files in it",
        "  export MSCCL_ALGO_DIR=$PWD/msccl-algorithms                   # same content on every node",
    ]
    if runtime == "rccl":
        lines.append("  export RCCL_MSCCL_ENABLE=1 RCCL_MSCCL_FORCE_ENABLE=1           # ROCm >= 6.1")
    else:
        lines.append(
            "  export NCCL_MSCCL_ENABLE=1            # default; one GPU per process (msccl-executor-nccl)"
        )
    return lines


def report_lines(result: CompileResult, filename: str) -> list[str]:
    """The short human report ``collc compile`` prints."""
    algo, usage, limits = result.algorithm, result.lowered.usage, result.limits
    forest = result.solution.forest
    placement = {(1, 1): "in-place and out-of-place", (1, 0): "in-place", (0, 1): "out-of-place"}
    lines = [
        f"wrote {filename}: {algo.coll} on {result.topology.name} ({algo.ngpus} GPUs) for {result.runtime}, "
        f"{algo.proto}, {placement[(algo.inplace, algo.outofplace)]}",
        f"  optimal algbw    {_gbps(result.optimal_algbw)}",
    ]
    if result.emitted_algbw < result.optimal_algbw:
        lines.append(
            f"  emitted algbw    {_gbps(result.emitted_algbw)} "
            f"({float(result.given_up) * 100:.2f} % below the optimum)"
        )
    else:
        lines.append(f"  emitted algbw    {_gbps(result.emitted_algbw)} (optimal)")
    lines += [
        f"  trees            {len(forest.trees)} (k = {forest.k} per root, {result.instances} instance(s)), "
        f"nchunksperloop = {algo.nchunksperloop}",
        f"  serves           {result.serving.describe()}"
        + ("" if result.serving.satisfied else f" -- NOT all {result.serving.policy}"),
        f"  threadblocks     {usage.max_tbs} per GPU (limit {limits.max_tbs}), "
        f"{result.lowered.merged_tbs} send+receive merged",
        f"  channels         {usage.nchannels} (limit {limits.max_channels})",
        f"  steps            {usage.max_steps_per_tb} per threadblock at most "
        f"(limit {limits.max_steps_per_tb}), {usage.max_elements_per_rank} XML elements per rank "
        f"(limit {limits.max_elements_per_rank})",
        f"  verified         no errors, {len(result.verification.problems)} warning(s) (collc verify)",
    ]
    lines += [f"  note: {note}" for note in result.notes]
    lines.append("deploy:")
    lines += deploy_lines(result.runtime, filename)
    return lines
