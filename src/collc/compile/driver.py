"""``compile_schedule``: topology -> solved forest -> fitted program -> simulated -> ranged -> verified.

Choosing k (docs/lowering.md §7). The runtime uses a file only for calls whose element count times the
collective's size multiplier is divisible by ``nchunksperloop``, so divisibility is a constraint like
the runtime limits. By default the file must serve power-of-two counts (what users call with);
``align=A`` asks for every count that is a multiple of A instead. Candidates are the optimal k and
powers of two up to ``min(64, max(2·k*, 16))``; each is priced with the exact fixed-k bound and
discounted for pipelining at a reference call size, which orders them. The first
:data:`SIMULATED_CANDIDATES` that serve the counts and fit the runtime's limits are lowered and
simulated event by event at the reference size (only the first where its program is too large to
search, :data:`LONE_CANDIDATE_STEPS`); then, where programs are small enough to simulate
cheaply, every further candidate whose bound could still reach the fastest simulated so far (up to
:data:`WIDE_CANDIDATES` in all). The fastest is kept: the price is only a guess at fill and drain, the
simulation runs the program. ``k`` / ``max_k`` override the search.

Choosing the range (:mod:`collc.compile.ranges`): unless the user sets ``--min-bytes``/``--max-bytes``,
the file's ``[minBytes, maxBytes]`` covers only sizes where its simulation beats the runtime's own
ring and tree; a file that wins nowhere is not written unless forced. Nothing is returned unless the
verifier accepts the program with its final range.

Rank order (:func:`box_major`). An allreduce is compiled for the GPUs listed box by box, each box in
the first box's role order, and its program then renumbered to the ranks the file gives: ranks that a
launcher's cyclic distribution or a hand-written file lists otherwise get the same schedule.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cache, cached_property
from math import ceil, gcd, prod
from typing import NamedTuple

from collc.capacity import CapacityGraph, capacity_graph
from collc.compile.outlook import (
    REPORT_SIZES,
    SizeOutlook,
    grid,
    nccl_tests_bytes,
    outlook,
    served_size,
    vendor_algbw,
)
from collc.compile.ranges import ByteRange, at_end, predicted_range, taken_run
from collc.errors import InfeasibleError, InputError, InvariantError
from collc.lowering.collector import collector_paused
from collc.lowering.layout import spread_shares
from collc.lowering.limits import RUNTIMES, RuntimeLimits, limits_for
from collc.lowering.lower import (
    DoesNotFit,
    Lowered,
    LoweringOptions,
    Plans,
    coll_algbw,
    lower,
    lower_steps,
)
from collc.lowering.plan import COLLECTIVES, network_planes, path_plane
from collc.lowering.reach import check_reach, least_elements
from collc.msccl.program import PROTOCOLS, Algorithm, renumbered, tag_buffer
from collc.msccl.writer import to_xml
from collc.predict.des import (
    ProgramCost,
    Run,
    prefetch,
    runs_of,
    runtime_path,
    simulation_threads,
    start_ahead,
)
from collc.predict.model import TopologyModel
from collc.predict.params import DEFAULT_BUFFER_BYTES, Protocol, simple
from collc.predict.params import PROTOCOLS as PROTOCOL_MODELS
from collc.predict.sweep import Memo, Predictor, no_slower
from collc.progress import Report, silent
from collc.sizes import format_figure, format_pair, format_size, plural
from collc.solver import Solution
from collc.solver.balance import UnbalancedSwitches
from collc.solver.blocks import box_block_solution, box_layout, direct_merges_as_well
from collc.solver.bound import MAX_K, Bound, check_gpu_count, check_k, fixed_k_bound, optimal_bound
from collc.solver.faster_way import faster_way, priced_both_ways, priced_on
from collc.solver.forest import Forest, TreeEdge
from collc.solver.forest import renumbered as renumbered_forest
from collc.solver.invariants import check_forest
from collc.solver.overlap import overlap_algbw
from collc.solver.pipeline import SolveStats, solve_steps, timed_phase
from collc.solver.routed import (
    RoutedPacking,
    RouteOf,
    edge_arcs,
    on_route_algbw,
    routed_forest_steps,
    routed_packing_steps,
)
from collc.solver.symmetry import automorphisms
from collc.stepping import run_until
from collc.topology.model import Topology
from collc.verify import Verification, VerifyReport, verifiable_threadblocks, verify

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
# How many fitting candidates are lowered and simulated (best priced first): the price misjudges fill
# and merged threadblocks (2x8 H100 allreduce: k = 2 priced first, simulated 0.85 of the bound; k = 1
# simulated 0.96), while each candidate costs a lowering and a simulation.
SIMULATED_CANDIDATES = 3
# The price misjudges fill by several per cent (2x8 H100 allgather: k = 2, 4 and 8 are priced first and
# simulate at 0.95, 0.90 and 0.89 of their bound, k = 1, priced fifth, at 0.995 of a bound 3.6 % lower),
# so after the first SIMULATED_CANDIDATES every further candidate whose bound is within EQUIVALENT of
# the fastest simulated so far is also tried, up to WIDE_CANDIDATES fitted in all, while the first
# fitted program has at most WIDE_SEARCH_STEPS steps (each candidate then costs about a second; at 128
# GPUs one costs ten).
WIDE_CANDIDATES = 6
WIDE_SEARCH_STEPS = 50_000
# Forests on the runtime's paths (collc.solver.routed) are packed up to this many GPUs: the column
# generation prices all N·(N − 1) GPU pairs and finds an arborescence per root each round, and the
# integer choice grows with the trees generated. Dual-socket PCIe servers of 8 GPUs: 2 boxes 0.5 s
# for the program; 4 boxes about 5 s, 752 trees; 8 boxes (64 GPUs) about 30 s and 2692 trees, then
# 8-12 s per k to choose, and the compile takes 85-93 s instead of 36-44 (allgather 21.4 -> 26.0
# GB/s at 1 GiB, where NCCL's ring gets 25.3; scripts/bench_routes.py --boxes 8).
ROUTED_MAX_GPUS = 64
# Above this many steps in the first program, each further candidate costs more than it is likely to
# gain, and only the best priced is lowered (both ways) and simulated. 64x8 H100 rail allreduce (512
# GPUs, 1.35 million steps): a candidate costs about 20 s of lowering and 33 s of simulation on 2
# cores (15 s at the 256 KiB buffer), the compile took 150 s for k = 1, 2 and 4, which simulate at
# 173.0, 171.8 and 167.1 GB/s (k = 1 is priced first). 32x8 (256 GPUs, 0.36 million steps) keeps the
# search: its k = 2 simulates 10 % faster than the first priced, k = 1 (156.4 against 141.9 GB/s).
LONE_CANDIDATE_STEPS = 1_000_000
# Emissions the extra lowering with tree depths sharing threadblocks may take in a search that is not
# wide: each emission over the step limit grows lanes and emits again, one to three seconds at 128 GPUs.
# 16x8 H100 rail allreduce: k = 1 and k = 2 fit at the first (k = 2 is written, 154.6 GB/s at 1 GiB);
# k = 4 took 14 emissions for 137.6 GB/s, a compile of 86 s; capped at 4 it fits with multi-chunk steps
# (139.8 GB/s) and the compile took 57 s. Those steps are where it ends up anyway, as the same program,
# after 5 emissions (about 10 s) at a cap of 4 and after 2 at a cap of 1, which writes the same file.
SHARED_EMISSIONS = 1
# Candidates whose simulated algbw at the reference size is this close to the fastest are equivalent
# there; the one that beats the runtime at most sizes weighed, then delivers most, is emitted
# (_pick). 3 %, not 1 %: 2x8 H100 allgather's k = 2 with a lane per transfer is 2.5 % faster than
# k = 1 at 1 GiB (525.1 GB/s against 511.8) and 11 % slower at 64 MiB, 42 % at 1 MiB.
EQUIVALENT = Fraction(3, 100)
# The share of the collective's optimal bound a file is to reach at the reference size. Where the fastest
# candidate reaches it and the runtime's best does not, the pick's band (EQUIVALENT) stops there: a file
# near the bound is not traded for a few per cent at smaller sizes. (Where the runtime reaches it too, a
# file is for the smaller sizes: 1x8 V100 allgather, whose file wins from 1 to 4 MiB and NCCL's ring
# takes 1 GiB at 171.0 GB/s, would have given up 4 MiB for 0.4 % at 1 GiB.) 3x8 V100 allreduce: k = 2
# with split lanes is 2.8 % slower at 1 GiB than k = 4 with paced senders (35.3 against 36.3 GB/s, 0.942
# and 0.968 of the 37.5 bound; NCCL's ring 26.0) and was emitted for its 64 MiB and 1 MiB.
NEAR_OPTIMAL = Fraction(95, 100)
# Smaller NCCL_BUFFSIZE values a Simple file is simulated with besides the default (buffer_choices). A
# smaller buffer pipelines finer but costs every threadblock a handshake per 2 FIFO slots (1.23 µs,
# measured: docs/cost-model.md §1), which caps it at 25.4 GB/s with 256 KiB (45.9 with the default).
# 128 KiB would cap a threadblock at 17.2 GB/s.
BUFFER_CHOICES = (256 << 10,)
# Buffers also simulated for a program small enough for the wide search (WIDE_SEARCH_STEPS), where a
# simulation costs well under a second: 512 KiB is the grain between, with a threadblock cap of about
# 33 GB/s. bench_predict (2026-12-05, night): 4x8 MI300X allreduce 237.1 -> 251.9 GB/s at 1 GiB (0.923
# -> 0.980 of the power-of-two bound) and 197.0 -> 209.1 at 64 MiB; 2x8 H100 allgather 475.7 -> 489.2
# at 64 MiB; 1x8 V100 allgather 155.3 -> 159.1 at 1 GiB. For every program, it cost 15-32 % more
# compile time from 64 to 512 GPUs (256 GPUs 46.8 -> 62.0 s), with the same k, steps and outcomes
# there (8x8 to 64x8 H100 rail allreduce, scripts/bench_compile.py). 1 MiB
# instead moved the presets both ways (1x16 MI250 allgather 0.968 -> 0.947 of the bound).
WIDE_BUFFER_CHOICES = (512 << 10,)
# A finer grain, simulated once the search is done and only for the candidates within EQUIVALENT of the
# fastest at the grains above (the close ones, which the pick chooses among), of wide-search size: a
# close candidate's best grain is often finer. 1x16 MI250 reduce-scatter k = 8 at 128 KiB reaches
# 330.0 GB/s at 1 GiB (0.967 of the power-of-two bound) where the file picked at 256 KiB reached
# 314.7 and lost to RCCL's ring; 4x8 A100 allreduce 119.8 -> 124.1 at 64 MiB. Simulating every
# candidate with it (and 192 and 384 KiB) doubled the compile time of those presets; the close ones
# alone add about 18 %. Only powers of two: NCCL's maintainers advise them for NCCL_BUFFSIZE, which
# NCCL's own algorithms run with too (192 KiB would also lift 2x16 MI250 reduce-scatter 333.8 -> 335.9
# GB/s).
FINE_BUFFER_CHOICES = (128 << 10,)
# The runtimes whose MSCCL kernel walks chunks in calls of half NCCL_BUFFSIZE (None: the topology's
# runtime, one of them).
BUFFERED_RUNTIMES = (None, "msccl-executor", "rccl")
# A smaller buffer than the default is deployed only when it is this much faster at the reference size or
# at a sixteenth of it: it changes a process-wide setting (NCCL's own algorithms run with it too).
BUFFER_GAIN = Fraction(2, 100)
# A second instance (for NIC-feeding lanes) halves the pipelining iterations; it is taken only when at
# least this many remain at the reference call size (4x8 A100 allgather: 16 -> 8 iterations lose 0.5 %).
MIN_DOUBLED_ITERATIONS = 16


#: ``--lanes``: ``auto`` lowers each candidate with lanes sized by rate and, where the program is small
#: enough to search widely, also with split lanes, and keeps what the simulation says is faster;
#: ``rate`` and ``split`` lower with only those (split falls back to rate where it does not fit).
LANE_CHOICES = ("auto", "rate", "split")


@dataclass(frozen=True)
class CompileOptions(LoweringOptions):
    """Everything ``collc compile`` can be asked for: what to emit (:class:`LoweringOptions`) plus the
    runtime (``None``: the topology's, else executor) and how to choose k."""

    runtime: str | None = None
    k: int | None = None
    max_k: int | None = None
    align: int | None = None  # None: serve power-of-two counts
    more_instances: bool = True  # may double ``instances`` (_doubles, _feeder_instances)
    user_range: bool = False  # min_bytes/max_bytes were both given by the user: write them as they are
    user_end: str | None = None  # "min" or "max": the one end the user gave; the other is predicted
    force: bool = False  # write the file even where it is predicted to win at no size
    buffsize: int | None = None  # NCCL_BUFFSIZE the Simple file is for; None: chosen by simulation
    lanes: str = "auto"  # one of LANE_CHOICES


@dataclass(frozen=True)
class Serving:
    """Which per-call element counts (the API's ``count``) select the file."""

    quantum: int  # counts that are multiples of this are served
    policy: str  # what was asked for, in words
    satisfied: bool

    def describe(self) -> str:
        text = f"every count that is a multiple of {plural(self.quantum, 'element')}"
        if self.quantum & (self.quantum - 1) == 0:
            text += f" (all powers of two >= {self.quantum})"
        return text


def size_multiplier(coll: str, num_gpus: int) -> int:
    """Allgather and reduce-scatter counts are per rank; the runtime multiplies them by the ranks."""
    return num_gpus if coll in ("allgather", "reducescatter") else 1


def serving(nchunksperloop: int, coll: str, num_gpus: int, align: int | None) -> Serving:
    """The counts a file with ``nchunksperloop`` serves, and whether that meets the request."""
    multiplier = size_multiplier(coll, num_gpus)
    quantum = nchunksperloop // gcd(nchunksperloop, multiplier)
    if align is None:
        return Serving(quantum, "power-of-two counts", quantum & (quantum - 1) == 0)
    return Serving(quantum, f"counts that are multiples of {align}", align % quantum == 0)


def shared_loop(num_gpus: int, k: int, coll: str, align: int | None) -> int | None:
    """The chunks per instance an allreduce on a number of GPUs that is no power of two shares
    unevenly among its roots (:mod:`collc.lowering.layout`) so that it serves the power-of-two counts
    asked for (``align`` None), or None where its ``N·k`` chunks are used as they are.

    The smallest power of two that gives every root at least ``2·k`` chunks: a root then carries at
    most ``1 + 1/(2k)`` times its fair part. More chunks would balance the roots better, but one
    iteration of the runtime's loop moves a call of every chunk, so each doubling doubles the
    pipeline's fill (3x8 A100, k = 1, lanes sized by rate, 256 KiB: 64 chunks 103.1 / 130.5 GB/s at
    64 MiB / 1 GiB, 256 chunks 95.1 / 116.1, 512 chunks 84.7 / 110.5).
    """
    if coll != "allreduce" or align is not None or num_gpus & (num_gpus - 1) == 0:
        return None
    return 1 << (2 * num_gpus * k - 1).bit_length()


def loop_size(num_gpus: int, k: int, coll: str, align: int | None) -> int:
    """Chunks per instance of a file with k trees per root: the :func:`shared_loop`, else ``N·k``
    (with a reduce forest of another k the loop is larger, :func:`collc.lowering.plan.chunks_per_root`;
    the search prices and checks the counts served with this)."""
    return shared_loop(num_gpus, k, coll, align) or num_gpus * k


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
    bound_algbw: Fraction  # the optimal bound of the collective on this fabric (any k)
    # the bound of this file's forest (its k, and its roots' shares of the loop): no call beats it,
    # except an allreduce that overlaps its halves on opposite link directions (collc.solver.ceiling);
    # the report then says so
    file_bound_algbw: Fraction
    serving: Serving
    byte_range: ByteRange
    model: TopologyModel
    predictor: Predictor  # the written program's event simulation, memoised
    verification: VerifyReport
    xml: str
    notes: list[str] = field(default_factory=list)
    forced: bool = False  # predicted to win at no size: written only because of ``force``
    buffer_bytes: int | None = None  # the NCCL_BUFFSIZE the file is deployed with; None: the default
    # no candidate simulated faster at the reference size (a bundle then needs no fastest file there)
    fastest: bool = False
    # each root's chunks per instance where an allreduce loop is shared unevenly (shared_loop)
    loop_shares: tuple[int, ...] | None = None
    reduce_forest: Forest | None = None  # an allreduce's reduce-scatter forest, where it has its own

    @property
    def algorithm(self) -> Algorithm:
        return self.lowered.algorithm

    @property
    def proto(self) -> Protocol:
        """The model of the file's protocol as deployed (with :attr:`buffer_bytes`)."""
        return deployed_protocol(self.algorithm.proto, self.buffer_bytes)

    @cached_property
    def predicted(self) -> list[SizeOutlook]:
        """The written file at :data:`REPORT_SIZES`, simulated (computed when first asked for)."""
        return outlook(self.model, self.algorithm, REPORT_SIZES, self.runtime, self.predictor, self.proto)

    def slower_in_range(self) -> list[SizeOutlook]:
        """Grid sizes the file takes where it is predicted slower than the runtime's best: none unless
        the user set the range or an end of it, or forced the file."""
        if not (self.options.user_range or self.options.user_end or self.options.force):
            return []
        rows = outlook(self.model, self.algorithm, grid(), self.runtime, self.predictor, self.proto)
        return [row for row in rows if row.selected and not row.wins]


def _check_options(options: CompileOptions, topology: Topology) -> str:
    """The runtime the options name, once every option is known to be one the compile can take.

    Every check of an option's own value is here, before the first step, so that ``collc serve``
    refuses a bad request with the CLI's message instead of accepting a job that fails later."""
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
    if options.buffsize is not None and options.proto != "Simple":
        raise InputError(
            f"NCCL_BUFFSIZE is the Simple protocol's buffer; this file is {options.proto}",
            hint="drop --buffsize, or compile with --proto Simple",
        )
    if options.buffsize not in (None, DEFAULT_BUFFER_BYTES) and runtime not in BUFFERED_RUNTIMES:
        raise InputError(
            f"--buffsize sets NCCL_BUFFSIZE, which {runtime} does not read (an MSCCL++ plan pipelines in "
            "units of its own); the report would promise a buffer that nothing deploys",
            hint="drop --buffsize",
        )
    if options.instances < 1:
        raise InputError(
            f"--instances must be at least 1, got {options.instances}",
            hint="leave --instances out to let compile choose (1, or 2 where the simulation gains)",
        )
    if options.align is not None and options.align < 1:
        raise InputError(
            f"--align must be a positive element count, got {options.align}",
            hint="the counts you call with are multiples of it, e.g. --align 1024 (default: powers of two)",
        )
    if options.k is not None and options.max_k is not None:
        raise InputError("--k and --max-k cannot be combined", hint="give either a fixed k or a budget")
    for value, option in ((options.k, "--k"), (options.max_k, "--max-k")):
        if value is not None:
            check_k(value, option)
    check_gpu_count(topology.num_gpus, topology.source)
    return runtime


class Candidate(NamedTuple):
    """A k to try: k (None only when the user's ``--max-k`` leaves it to the solver), the k to ask the
    solver for (None: its optimum) and its trees' algbw bound (:func:`coll_algbw`; None where unknown
    before solving: a user's k). For an allreduce that bound is reduce-scatter plus allgather (on forests
    of their own where the two directions differ), which a file whose halves use opposite link
    directions can beat: the wide search (:func:`_next_candidate`) takes it as a guide, not a proof."""

    k: int | None
    solve_k: int | str | None
    bound: Fraction | None
    blocks: bool = False  # the box-block forest (collc.solver.blocks): after the priced k, or first at scale
    breadth_first: bool = False  # k's forest packed breadth first (collc.solver.packing.frontier_width)
    routed: bool = False  # k trees per root on the runtime's paths (collc.solver.routed): after k's own
    faster_way: bool = False  # k's trees on the faster directions (collc.solver.faster_way): after k's

    @property
    def key(self) -> int | str | None:
        """The key of this candidate's solution among a compile's solutions (``state.solutions``)."""
        if self.routed:
            return f"routed-{self.k}"
        if self.faster_way:
            return f"faster-way-{self.solve_k}"
        return f"breadth-first-{self.solve_k}" if self.breadth_first else self.solve_k


#: the keys of the box-block forests' solutions among a compile's solutions (a k is an int or None)
BLOCKS = "blocks"
BLOCKS_DIRECT = "blocks-direct"


def _k_candidates(
    topology: Topology, options: CompileOptions, instances: int
) -> tuple[list[Candidate], list[str], dict[int, Bound]]:
    """The candidates to try, best priced first, with notes on the choice and the exact bound of each
    priced k (what a routed twin records when k's own forest was not solved, :func:`_routed_steps`).

    The price is the bound of k discounted for pipeline fill at the reference call size
    (docs/compile.md §3); it only orders the candidates, which are then simulated. A user's k or
    ``--max-k`` is the only candidate.
    """
    if options.k is not None or options.max_k is not None:
        return [Candidate(options.k, options.k, None)], [], {}
    graph = capacity_graph(topology)
    if options.coll == "reducescatter":
        graph = graph.reversed()
    symmetries = automorphisms(topology, graph)
    optimum = optimal_bound(graph, symmetries)
    exact: dict[int, Bound] = {optimum.k: optimum}
    power = 1
    while power <= min(MAX_AUTO_K, max(2 * optimum.k, MIN_PRICED_K)):
        if power not in exact:
            exact[power] = fixed_k_bound(graph, power, symmetries)
        power *= 2
    priced = {k: bound.allgather_algbw for k, bound in exact.items()}
    if two_forests(topology, options.coll):  # both halves priced: the harmonic mean of AG and RS at k
        reverse = graph.reversed()
        reverse_symmetries = automorphisms(topology, reverse)
        # the reduce half is solved at its allgather half's k, which the solver takes up to MAX_K (an
        # optimum k above it, 1,229 on 2x8 MI300X with one xGMI link slowed one way, is left out)
        priced = {
            k: 2 / (1 / algbw + 1 / fixed_k_bound(reverse, k, reverse_symmetries).allgather_algbw)
            for k, algbw in priced.items()
            if k <= MAX_K
        }
    # a file's algbw bound (coll_algbw) from its trees' allgather bound (with two forests, T_RS + T_AG)
    bounds = {k: algbw / 2 if options.coll == "allreduce" else algbw for k, algbw in priced.items()}
    n = topology.num_gpus

    def chunks(k: int) -> int:
        return loop_size(n, k, options.coll, options.align) * instances

    def serves(k: int) -> bool:
        return serving(chunks(k), options.coll, n, options.align).satisfied

    reference = _reference_bytes(options)
    # priced at the finest grain the search simulates: a smaller buffer lets more trees pipeline
    call_bytes = min(deployed_protocol(options.proto, size).call_bytes for size in buffer_choices(options))

    def iterations(k: int) -> int:
        return max(1, ceil(reference / (chunks(k) * call_bytes)))

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
    return (
        [Candidate(k, None if k == optimum.k else k, bounds[k]) for k in fitting],
        notes,
        exact,
    )


def two_forests(topology: Topology, coll: str) -> bool:
    """Whether ``coll`` reduces over a forest of its own: allreduce where the two directions differ.

    Its reduce-scatter half then runs on a forest solved on the reversed fabric
    (``solve(reverse=True)``), whose arcs are the fast ones for aggregation, and its allgather half on
    the allgather forest (docs/lowering.md §3). On a symmetric fabric both are the same trees.
    """
    return coll == "allreduce" and not symmetric(capacity_graph(topology))


def symmetric(graph: CapacityGraph) -> bool:
    """Whether every arc of the fabric has a reverse of the same capacity."""
    return graph.arcs == graph.reversed().arcs


def compile_schedule(topology: Topology, options: CompileOptions, progress: Report = silent) -> CompileResult:
    """Solve, lower, fit, simulate, choose the range and verify a schedule for ``topology``.

    Raises if nothing fits, if a check fails, or (unless ``options.force`` or a user's range) if the
    written file would be predicted slower than the runtime's own algorithms at every size. The work
    runs as the steps of :func:`advance`, one after the other; ``progress`` hears each step's name.
    """
    state = begin(topology, options)
    with collector_paused():  # every step's structures stay alive until the result: nothing to collect
        while state.result is None:
            progress(f"compile: {next_step(state)}", state.steps_done, None)
            advance(state)
    return state.result


@dataclass
class CompileState:
    """A compile between two steps: all that the next step needs, and nothing that cannot be pickled.

    Candidates are tried in *attempts* of ``(allow_shared_stages, instances)``: first without
    threadblocks that share tree depths (a smaller k that pipelines beats a larger one that does not),
    each from the requested instances down by halves (only the user's, where they gave
    ``--instances``). Within an attempt the priced k candidates are
    solved and lowered in order until :data:`SIMULATED_CANDIDATES` fit, then simulated; candidates
    that could still be faster are tried after them (:func:`_next_candidate`), and the fastest is chosen.
    A service may stop between steps, keep or pickle the state, and resume it in another process.
    """

    topology: Topology  # the fabric the search runs on: box-major ranks for an allreduce (box_major)
    options: CompileOptions
    runtime: str
    limits: RuntimeLimits
    planes: dict[str, int]
    model: TopologyModel
    weighing: Weighing  # the call sizes the pick compares candidates at
    separate_reduce: bool  # allreduce reduces over a forest of its own (two_forests)
    overlapping: bool  # allreduce whose trees may be packed for both halves at once (halves_overlap)
    attempts: list[tuple[bool, int]]
    attempt: int = 0
    candidates: list[Candidate] | None = None  # this attempt's, once priced
    notes: list[str] = field(default_factory=list)
    position: int = 0  # the next candidate to consider
    smallest_failed: int | None = None
    fitted: list[Fitted] = field(default_factory=list)
    fastest: float = 0.0  # the fastest fitted candidate's simulated algbw at the reference, once chosen
    refining: bool = False  # the search is done: the close candidates get the finer grains too
    blocks_alone: bool | None = None  # box blocks tried first: whether their file alone is enough
    paced: set[tuple[str, bool]] = field(default_factory=set)  # lowerings tried with paced senders
    failures: list[str] = field(default_factory=list)  # every attempt's, for the final message
    # candidates (by key) with no forest, and why (its k, the reason): switches that would copy data
    unsolved: dict[int | str | None, tuple[int | None, str]] = field(default_factory=dict)
    solutions: dict[int | str | None, Solution] = field(default_factory=dict)  # shared by the attempts
    # an allreduce's reduce forests, by candidate key (that of its allgather forest in ``solutions``)
    reduce_forests: dict[int | str | None, Forest] = field(default_factory=dict)
    best: Fitted | None = None  # the chosen program, before its range
    chosen: tuple[ByteRange, bool] | None = None  # its range, and whether it is only forced
    result: CompileResult | None = None
    steps_done: int = 0
    # a step part way through (not pickled): a solve (solve_steps), a lowering and the verifier
    solving: Generator[None, None, Solution] | None = None
    lowering: Generator[None, None, None] | None = None
    verifying: Verification | None = None
    whole: bool = False  # a step part way through was dropped: steps run whole from now on
    # where the search runs on box-major ranks: the file's own topology, and the file's rank of each
    # box-major rank (box_major); the chosen program is renumbered to them before it is verified
    given: tuple[Topology, tuple[int, ...]] | None = None
    # the paths the runtime gives each GPU pair, once asked for (_runtime_routes), and whether k's exact
    # forest carries less on them than it may (_worth_routing), per k
    pair_paths: dict[tuple[int, int], tuple[tuple[str, ...] | None, ...]] | None = None
    off_route: dict[int | str | None, bool] = field(default_factory=dict)
    routed_trees: RoutedPacking | None = None  # the trees generated for the runtime's paths, once
    k_bounds: dict[int, Bound] = field(default_factory=dict)  # each priced k's exact bound (_k_candidates)
    # a fabric whose two directions differ: the fabric with each link at its faster direction (None
    # where the directions are the same or an arc has no reverse), and the keys of the candidates
    # whose trees packed there lose on the real fabric (_keep_faster_way)
    faster: Topology | None = None
    lossy: set[int | str | None] = field(default_factory=set)

    def __getstate__(self) -> dict[str, object]:
        """Everything but a step part way through: a solve, a lowering or a verification holds live
        state that cannot be pickled (a flow network, a generator, a simulation), so a compile
        resumed from a pickle starts that step again, and runs every step whole from then on, so
        that a compile pickled after every step still ends."""
        dropped = any(work is not None for work in (self.solving, self.lowering, self.verifying))
        partial = {"solving": None, "lowering": None, "verifying": None}
        return {**self.__dict__, **partial, "whole": self.whole or dropped}

    @property
    def file_topology(self) -> Topology:
        """The fabric with the ranks the file is written for (the search's may differ: ``given``)."""
        return self.topology if self.given is None else self.given[0]

    @property
    def reference(self) -> int:
        """The call size candidates are compared at (:class:`Weighing`)."""
        return self.weighing.reference

    def deadline(self) -> float:
        """When a step that can stop part way through should stop (:data:`SLICE_SECONDS` from now)."""
        return math.inf if self.whole else time.perf_counter() + SLICE_SECONDS


def box_major(topology: Topology, coll: str) -> tuple[Topology, tuple[int, ...]] | None:
    """For an allreduce whose ranks are not listed box by box, each box in the first box's role order
    (:func:`collc.solver.blocks.box_layout`): the same fabric with its ranks in that order, and for
    each of them the rank the file gives it. Else None.

    The search's choices follow rank order where the fabric leaves them open (the solver's ties, the
    lowering's lanes and joined depths), and they were measured on box-major ranks: 2x16 MI250 with
    ranks round the boxes (rank r in box r mod 2, a launcher's cyclic distribution) compiled to 145.3
    GB/s at 1 GiB and 96.7 at 64 MiB, against 154.7 and 122.9 with box-major ranks. An allreduce's
    program may be renumbered freely (:func:`collc.msccl.program.renumbered`), so it is compiled for
    the box-major order and then renumbered: the same schedule whatever the order. An allgather's or
    reduce-scatter's blocks sit at their ranks' places in the buffers, so their rank order is part of
    the problem (:mod:`collc.solver.blocks` lays box blocks out for cyclic ranks).
    """
    layout = box_layout(topology) if coll == "allreduce" else None
    order = tuple(rank for box in layout or () for rank in box)
    if layout is None or order == tuple(range(topology.num_gpus)):
        return None
    return replace(topology, ranks=tuple(topology.ranks[rank] for rank in order)), order


def begin(topology: Topology, options: CompileOptions) -> CompileState:
    """The first step: check the options and set up what every later step shares (the search's
    topology has box-major ranks for an allreduce, :func:`box_major`)."""
    runtime = _check_options(options, topology)
    given = box_major(topology, options.coll)
    if given is not None:
        topology, given = given[0], (topology, given[1])
    limits = _verifiable(limits_for(topology, runtime), topology.num_gpus)
    check_reach(options.coll, topology.num_gpus, limits.max_elements_per_rank, options.outofplace)
    instance_options = [options.instances]  # the user's --instances is kept, or the compile fails
    model = TopologyModel(topology)
    while options.more_instances and instance_options[-1] > 1:
        instance_options.append(instance_options[-1] // 2)
    return CompileState(
        topology=topology,
        options=options,
        runtime=runtime,
        limits=limits,
        planes=network_planes(topology),
        model=model,
        weighing=weighing(options),
        separate_reduce=two_forests(topology, options.coll),
        overlapping=halves_overlap(model, options.coll),
        faster=None if symmetric(model.capacity) else faster_way(topology),
        attempts=[(shared, instances) for shared in (False, True) for instances in instance_options],
        given=given,
    )


def _verifiable(limits: RuntimeLimits, num_gpus: int) -> RuntimeLimits:
    """The runtime's limits with its threadblocks capped where the verifier takes fewer
    (:func:`collc.verify.verifiable_threadblocks`, from 1,025 GPUs on): the lowering then narrows
    lanes to fit, instead of writing a file the verifier refuses after the search."""
    return replace(limits, max_tbs=min(limits.max_tbs, verifiable_threadblocks(num_gpus)))


def _cap_notes(state: CompileState) -> list[str]:
    """Says so where :func:`_verifiable` capped the threadblocks below the runtime's limit."""
    allowed = limits_for(state.topology, state.runtime).max_tbs
    if state.limits.max_tbs >= allowed:
        return []
    return [
        f"threadblocks capped at {state.limits.max_tbs} per GPU (the runtime allows {allowed}): the "
        f"most that collc verifies on {state.topology.num_gpus:,} ranks (it simulates a bounded number "
        "of threadblocks x ranks)"
    ]


def _buffer_notes(options: CompileOptions) -> list[str]:
    """A caution for a user's ``--buffsize`` that is not a power of two. The file is verified and
    predicted with it, but NCCL_BUFFSIZE is process-wide, so NCCL's own algorithms run with it too,
    and NCCL's maintainers advise powers of two (values that are not have hung or corrupted results:
    NVIDIA/nccl issues 698 and 1739). The buffers compile chooses itself are all powers of two."""
    size = options.buffsize
    if size is None or size & (size - 1) == 0:
        return []
    return [
        f"NCCL_BUFFSIZE={size} is not a power of two: NCCL's own algorithms run with it too, and NCCL's "
        "maintainers advise powers of two (other values have hung or corrupted results); "
        "e.g. --buffsize 256KiB"
    ]


def next_step(state: CompileState) -> str:
    """The name of the step :func:`advance` runs next (a key of :data:`STEPS`), or ``"done"``."""
    if state.result is not None:
        return "done"
    if state.chosen is not None:
        return "verify"
    if state.best is not None:
        return "range"
    if state.candidates is None:
        return "bound"
    if state.lowering is not None:  # finish a lowering before anything reads the fitted candidates
        return "lower"
    index = _next_candidate(state)
    if index is None:
        if _unsimulated(state) is not None:
            return "simulate"
        return "lower" if _to_pace(state) is not None else "choose"
    k = state.candidates[index].key
    if k not in state.solutions:
        return "forest"
    if state.separate_reduce and not state.solutions[k].forest.routed and k not in state.reduce_forests:
        return "forest"
    return "lower"


def advance(state: CompileState) -> CompileState:
    """Run the next step on ``state`` (in place) and return it."""
    STEPS[next_step(state)](state)
    state.steps_done += 1
    return state


def _next_candidate(state: CompileState) -> int | None:
    """The index of the next candidate to solve and lower, or None when the attempt has enough fitted
    programs or none is left. A k above one that did not fit is skipped: more trees per root only need
    more threadblocks, steps and channels.

    The first :data:`SIMULATED_CANDIDATES` fitted are taken in price order. Once they are simulated
    (``state.fastest``), a further candidate is taken only in a wide search (:func:`_wide`) and only
    when its trees' bound is within :data:`EQUIVALENT` of the fastest (:class:`Candidate`).
    """
    assert state.candidates is not None
    if _candidates_fitted(state) >= _search_width(state) and not _wide(state):
        return _blocks_next(state)
    for index in range(state.position, len(state.candidates)):
        candidate = state.candidates[index]
        if _ruled_out(state, candidate) or (candidate.blocks and not _blocks_first(state)):
            continue
        if candidate.key in state.unsolved or candidate.key in state.lossy:
            continue
        if candidate.breadth_first and not _breadth_first_differs(state, candidate):
            continue
        if candidate.routed and not _worth_routing(state, candidate):
            continue
        if _candidates_fitted(state) >= SIMULATED_CANDIDATES:
            assert candidate.bound is not None  # _wide
            if candidate.bound < state.fastest * (1 - EQUIVALENT):
                continue
        return index
    return _blocks_next(state)


def _blocks_next(state: CompileState) -> int | None:
    """The index of the next box-block candidate once the priced search is done, or None: each is
    tried after the priced candidates were simulated, where its trees' bound is within :data:`EQUIVALENT`
    of the fastest of them, or where none of them fit. At scale it is the one whose trees are
    shallow and whose program fits the runtime (docs/lowering.md §6)."""
    assert state.candidates is not None
    if _blocks_first(state):
        return None
    for index in range(state.position, len(state.candidates)):
        candidate = state.candidates[index]
        if not candidate.blocks:
            continue
        assert candidate.bound is not None
        if not state.fitted or (state.fastest > 0 and candidate.bound >= state.fastest * (1 - EQUIVALENT)):
            return index
    return None


def _breadth_first_differs(state: CompileState, candidate: Candidate) -> bool:
    """Whether the breadth-first packing of ``candidate``'s k is worth solving: its usual forest was
    packed symmetrically (the exact packing has one order), and some lowering of it simulated within
    :data:`EQUIVALENT` of the fastest candidate, or none is simulated yet (where fewer k are priced
    than the first simulated batch holds, the breadth-first ones join it). Other trees of one bound
    differ by a few per cent: 2x8 A100 allreduce k = 8, 156.3 GB/s at 1 GiB against k = 1's 171.0,
    gained nothing from its breadth-first 164.0 and cost the compile 1.8 s."""
    usual = state.solutions.get(candidate.solve_k)
    if usual is None or usual.stats.packing_orbits == usual.forest.num_gpus:
        return False
    lowerings = [item for item in state.fitted if item.solution is usual]
    near = state.fastest * float(1 - EQUIVALENT)
    return any(_simulated_algbw(state, item) >= near for item in lowerings)


def _ruled_out(state: CompileState, candidate: Candidate) -> bool:
    """Whether ``candidate`` has a k above one that did not fit (more trees per root only need more
    threadblocks, steps and channels), so it is not tried."""
    failed = state.smallest_failed
    return failed is not None and candidate.k is not None and candidate.k > failed


def _search_width(state: CompileState) -> int:
    """How many fitting candidates are lowered and simulated before the choice (:func:`_next_candidate`):
    :data:`SIMULATED_CANDIDATES`, or only the first where its program has more than
    :data:`LONE_CANDIDATE_STEPS` steps, or where the box-block forest comes first (:func:`_blocks_first`)."""
    if state.fitted and state.fitted[0].lowered.usage.total_steps > LONE_CANDIDATE_STEPS:
        return 1
    return 1 if _blocks_first(state) and state.blocks_alone is not False else SIMULATED_CANDIDATES


def _blocks_first(state: CompileState) -> bool:
    """Whether this attempt tries the box-block candidate first (:func:`_at_narrow_scale`): alone where
    it fits and its file would be used (``state.blocks_alone``), else before the priced k."""
    return bool(state.candidates) and state.candidates[0].blocks


def _least_steps(topology: Topology, options: CompileOptions) -> int:
    """The fewest steps any file of the collective holds on the fabric with one tree per step (every
    GPU roots a tree, and each costs the GPUs ``a·(N − 1) + c`` steps: docs/lowering.md §6)."""
    n = topology.num_gpus
    return least_elements(options.coll, n, options.outofplace).steps * n


def _at_narrow_scale(topology: Topology, options: CompileOptions) -> bool:
    """Whether the search cannot be wide whatever the forest (:data:`WIDE_SEARCH_STEPS`): there the
    box-block forest goes first. Its trees are 3 hops high and its file is found in one lowering:
    16x8 A100 and H100 rail allreduce (128 GPUs) write the same files as after the priced search, in
    4.1 and 3.7 s instead of 17.2 and 13.6 on two cores."""
    return _least_steps(topology, options) > WIDE_SEARCH_STEPS


def _at_lone_scale(topology: Topology, options: CompileOptions) -> bool:
    """Whether any forest moved one tree per step has more than :data:`LONE_CANDIDATE_STEPS` steps, so
    that one candidate is lowered and simulated anyway: the box blocks alone, where they fit. At 512
    GPUs the priced k = 1 takes a 53 s exact packing on 64x8 A100 and its trees are 63 hops high
    (26.6 GB/s at 1 GiB)."""
    return _least_steps(topology, options) > LONE_CANDIDATE_STEPS


def _blocks_used(state: CompileState, fitted: list[Fitted]) -> bool:
    """Whether a file of ``fitted`` (the box blocks' lowerings), with any buffer tried, would be used at
    a size the pick weighs (:func:`_delivered`); where none would, the priced k are tried after them
    (32x8 H100 rail allreduce: the box-block file loses to NCCL's tree at every size, and a priced k
    wins from 512 KiB to 16 MiB)."""
    variants = _contenders(buffer_variants(state.options, fitted), state.reference)
    return bool(_used(variants, state.weighing, vendor_best(state.model, state.options.coll)))


def _used(items: list[Fitted], weighing: Weighing, vendor: Callable[[int], float]) -> list[Fitted]:
    """The ``items`` whose range would take a size the pick weighs (:func:`_delivered`)."""
    prefetch([run for item in items for run in item.runs(weighing.smaller)])
    return [item for item in items if _delivered(item, weighing, vendor).used]


def _wide(state: CompileState) -> bool:
    """Whether candidates beyond the first :data:`SIMULATED_CANDIDATES` are tried: after those were
    simulated, while fewer than :data:`WIDE_CANDIDATES` fit, where every candidate's bound is known
    and the first program is small enough to simulate cheaply (:data:`WIDE_SEARCH_STEPS`). That holds
    for an allreduce whose halves have forests of their own too (:func:`_k_candidates` prices its exact
    k by both forests' bounds, :func:`_with_routed` their twins by the fabric's allreduce ceiling).
    24 GPUs on 8 rails whose NICs take in less than they send: the balanced exact k = 1 and 2 (73.1
    and 77.3 GB/s at most) and the routed k = 1 (113.6) fill the first places, and the routed k = 2
    after them simulates at 119.7; 1x16 MI250 with two xGMI links slower one way: k = 8, its routed
    twin and k = 16 come first (154.1 at best), and k = 2 after them gives 157.2."""
    assert state.candidates is not None
    return (
        state.fastest > 0
        and _candidates_fitted(state) < WIDE_CANDIDATES
        and all(candidate.bound is not None for candidate in state.candidates)
        and state.fitted[0].lowered.usage.total_steps <= WIDE_SEARCH_STEPS
    )


def _price_step(state: CompileState) -> None:
    """Bound: the exact bounds of the k candidates of the current attempt, best priced first."""
    instances = state.attempts[state.attempt][1]
    state.candidates, state.notes, state.k_bounds = _k_candidates(state.topology, state.options, instances)
    state.candidates = _with_faster_way(state, _with_routed(state, state.candidates))
    if _at_narrow_scale(state.topology, state.options):
        state.candidates[:0] = _blocks_candidates(state, wide=False)
    else:
        state.candidates += _breadth_first_candidates(state) + _blocks_candidates(state, wide=True)
    state.position, state.smallest_failed, state.fitted, state.blocks_alone = 0, None, [], None


def _with_routed(state: CompileState, candidates: list[Candidate]) -> list[Candidate]:
    """``candidates`` with each k followed by its forest on the runtime's paths (:mod:`collc.solver.
    routed`), where such a forest can be packed: up to :data:`ROUTED_MAX_GPUS` GPUs, no k of the
    user's and, for an allreduce, one forest for both halves, or halves that may overlap (the routed
    trees then carry both, with no reduce forest of their own). With network planes, where a pair
    between boxes has a route per plane (:func:`_runtime_routes`), only for an allreduce whose halves
    may overlap: an exact forest's edge takes its plane's route there, and the packing for one
    direction is left to the exact solver. It is solved only where it may carry more
    (:func:`_worth_routing`). Where an allreduce's halves may overlap (:func:`halves_overlap`) its
    trees' price is the fabric's allreduce ceiling, which no file exceeds: the packing for both halves
    at once is what sets how close a forest comes to it, and only the simulation tells."""
    options = state.options
    wanted = (
        state.topology.num_gpus <= ROUTED_MAX_GPUS
        and (not state.planes or state.overlapping)
        and (not state.separate_reduce or state.overlapping)
        and options.k is None
        and options.max_k is None
    )
    if not wanted:
        return candidates
    bound = state.model.ceiling_algbw(options.coll) if state.overlapping else None
    return [
        twin
        for candidate in candidates
        for twin in (candidate, candidate._replace(routed=True, bound=bound or candidate.bound))
    ]


def halves_overlap(model: TopologyModel, coll: str) -> bool:
    """Whether ``coll``'s forest may be packed for both halves at once (:mod:`collc.solver.routed`): an
    allreduce where the GPUs' own links differ in bandwidth, or (up to :data:`ROUTED_MAX_GPUS` GPUs)
    where trees that carry both halves at once are priced :data:`EQUIVALENT` above reduce-scatter then
    allgather (:func:`collc.solver.overlap.overlap_algbw`).

    A GPU with slower links than the others (a derated NVLink, a GPU without a NIC) then forwards as
    little as it can, a leaf of the other roots' trees, while the others carry the rest; a forest
    packed for allgather and run both ways makes it forward in both halves. 2x8 A100 with one GPU's
    NVSwitch link at half speed: reduce-scatter then allgather allows 93.3 GB/s, the trees packed for
    both halves 160.0 at k = 4, whose file simulates at 143.7 (docs/solver.md §1.9). Under leaf
    switches with narrow uplinks the allgather fills each uplink inward only and the reduce-scatter
    outward only: leaves of 4 and 2 GPUs under two spines (tests/compile/fixtures/oversubscribed-
    leaves.yaml) allow 15.0 GB/s one half after the other and are priced at 17.8 both at once, and the
    file packed that way simulates at 16.4 (NCCL's ring 15.0). Where every cut is as busy one way as
    the other (every preset) both packings are worth the same, and the routed trees are not solved."""
    if coll != "allreduce":
        return False
    totals = {gpu: [Fraction(0), Fraction(0)] for gpu in model.topology.ranks}
    for (src, dst), bandwidth in model.topology.arc_bandwidths().items():
        if src in totals:
            totals[src][0] += bandwidth
        if dst in totals:
            totals[dst][1] += bandwidth
    if len({tuple(total) for total in totals.values()}) > 1:
        return True
    if model.topology.num_gpus > ROUTED_MAX_GPUS:
        return False
    target = model.bound_algbw(coll) * (1 + EQUIVALENT)
    figure = overlap_algbw(model.capacity, enough=target)
    return figure is not None and figure >= target


def _worth_routing(state: CompileState, candidate: Candidate) -> bool:
    """Whether ``candidate`` (routed) is worth solving: the exact forest of its k, on the paths the
    runtime gives its edges (a tree edge ``u -> v`` between boxes leaves through ``u``'s NIC and enters
    through ``v``'s), carries at least :data:`EQUIVALENT` less than it may (:func:`_loses_route`). Two
    boxes of 8 PCIe GPUs with a NIC per socket: the exact forest enters a box through either NIC and
    crosses the CPU link, and on the runtime's paths one NIC takes 29 of 64 chunks, 27.6 GB/s
    allgather at most against the bound's 34.1. Where an allreduce's halves may overlap
    (:func:`halves_overlap`) the search may have passed over k's exact forest; the best priced one then
    decides for every k (how far exact forests stay from the ceiling is the fabric's, not k's)."""
    key = candidate.solve_k
    if key not in state.solutions and state.overlapping:
        assert state.candidates is not None
        key = state.candidates[0].key
    usual = state.solutions.get(key)
    if usual is None:
        return False
    if key not in state.off_route:
        state.off_route[key] = _routes_span(state) and _loses_route(state, usual.forest)
    return state.off_route[key]


def _routes_span(state: CompileState) -> bool:
    """Whether the routes a tree edge may take (:func:`_runtime_routes`) join every GPU: where the
    runtime relays so many pairs through other GPUs that some GPU is cut off, no forest can be
    packed on them, and the exact forests stand alone."""
    routes = _runtime_routes(state)
    reached, frontier = {0}, [0]
    while frontier:
        u = frontier.pop()
        for v in range(state.topology.num_gpus):
            if v not in reached and u != v and any(path is not None for path in routes[(u, v)]):
                reached.add(v)
                frontier.append(v)
    return len(reached) == state.topology.num_gpus


def _loses_route(state: CompileState, forest: Forest) -> bool:
    """Whether an exact ``forest`` carries at least :data:`EQUIVALENT` less on the runtime's paths
    than its trees' bound or, for an allreduce whose halves may overlap (:func:`halves_overlap`), than
    the fabric's allreduce ceiling (both halves load the paths at once: on one switch with a slow
    port the exact trees already keep the slow GPU a leaf and reach it)."""
    coll = state.options.coll
    routes, bandwidth, route_of = _runtime_routes(state), state.topology.arc_bandwidths(), _route_of(state)
    if not _on_routes(forest, route_of):
        return True  # the runtime relays some of its edges through other GPUs
    on_route = on_route_algbw(forest, coll, routes, bandwidth, route_of)
    target = state.model.ceiling_algbw(coll) if state.overlapping else coll_algbw(forest, coll)
    return on_route < target * (1 - EQUIVALENT)


def _runtime_routes(state: CompileState) -> dict[tuple[int, int], tuple[tuple[str, ...] | None, ...]]:
    """The paths the runtime gives every ordered GPU pair of the search's topology
    (:data:`collc.solver.routed.Routes`): channel 0's (without network planes a GPU's NIC does not
    change by channel where it has one NIC of its own) or, for a pair whose path crosses a network
    plane, one through each plane in plane order, as the runtime routes a channel of that plane
    (:func:`collc.predict.des.runtime_path`). A route on which the runtime relays through another GPU
    either way (rails without a spine, GPUs in a line) is None: no tree edge takes it."""
    if state.pair_paths is None:
        network = state.model.network
        ranks = state.topology.ranks
        planes = sorted(state.planes, key=state.planes.__getitem__)
        gpus = set(ranks)

        def direct(there: tuple[str, ...], back: tuple[str, ...]) -> bool:
            return gpus.isdisjoint(there[1:-1]) and gpus.isdisjoint(back[1:-1])

        pairs = list(itertools.permutations(range(len(ranks)), 2))
        base = {pair: runtime_path(network, (*pair, 0), []) for pair in pairs}
        routes = {}
        for u, v in pairs:
            if planes and any(node in state.planes for node in base[(u, v)]):
                ways = [
                    (network.path_via(ranks[u], p, ranks[v]), network.path_via(ranks[v], p, ranks[u]))
                    for p in planes
                ]
            else:
                ways = [(base[(u, v)], base[(v, u)])]
            routes[(u, v)] = tuple(there if direct(there, back) else None for there, back in ways)
        state.pair_paths = routes
    return state.pair_paths


def _route_of(state: CompileState) -> RouteOf:
    """The route an exact forest's edge takes on the runtime (:func:`_runtime_routes`): the one through
    its path's network plane, which the lowering gives its channel, or the pair's only one; None where
    the runtime relays that route through another GPU."""
    routes = _runtime_routes(state)

    def route_of(edge: TreeEdge) -> int | None:
        found = routes[(edge.src, edge.dst)]
        plane = path_plane(edge.path, state.planes) if len(found) > 1 else None
        r = 0 if plane is None else plane
        return r if found[r] is not None else None

    return route_of


def _on_routes(forest: Forest, route_of: RouteOf) -> bool:
    """Whether every edge of an exact ``forest`` has a route a tree edge may take (:func:`_route_of`)."""
    return all(route_of(edge) is not None for tree in forest.trees for edge in tree.edges)


def _routed_steps(state: CompileState, candidate: Candidate) -> Generator[None, None, Solution]:
    """``candidate``'s forest on the runtime's paths (:func:`collc.solver.routed.routed_forest_steps`),
    checked against the forest invariants it must hold (all but meeting a bound), with the bound of
    its k. In steps, like the exact solve: the generation's rounds, each integer program and each
    descent (a 64-GPU compile spends about 30 s generating and 10 s per k choosing). The generation
    stops early at what no forest exceeds: the exact bound's, halved for an allreduce run as
    reduce-scatter then allgather, or the allreduce ceiling where the halves overlap
    (:func:`halves_overlap`). Where the halves overlap, k's exact forest may not have been solved (the
    wide search passes over it): the routed one is then chosen without it."""
    assert candidate.k is not None
    stats = SolveStats()
    usual = state.solutions.get(candidate.solve_k)
    coll = state.options.coll
    n, routes, bandwidth = state.topology.num_gpus, _runtime_routes(state), state.topology.arc_bandwidths()
    bound = usual.bound if usual is not None else state.k_bounds[candidate.k]
    if state.routed_trees is None:  # the linear program does not depend on k: generated once
        if state.overlapping:
            ceiling = state.model.ceiling_algbw(coll) / n
        else:
            ceiling = bound.optimal_x_star / (2 if coll == "allreduce" else 1)
        generation = routed_packing_steps(n, edge_arcs(coll, routes), bandwidth, float(ceiling))
        state.routed_trees = yield from timed_phase(stats, "routed", generation)
    seed = usual.forest if usual is not None and _on_routes(usual.forest, _route_of(state)) else None
    choice = routed_forest_steps(
        n, candidate.k, coll, routes, bandwidth, seed, state.routed_trees, _route_of(state)
    )
    forest = yield from timed_phase(stats, "routed", choice)
    check_forest(forest, state.topology, None, reverse=forest.reversed)
    return Solution(bound, forest, stats)


def _breadth_first_candidates(state: CompileState) -> list[Candidate]:
    """The priced k again, after them, packed breadth first (:func:`collc.solver.packing.
    frontier_width`): the same bound, other trees. Which order simulates faster depends on the
    fabric: 1x8 V100 allgather at 1 GiB is 159.1 GB/s with the usual packing and 162.4 breadth first,
    while 2x16 MI250 reduce-scatter is 333.8 against 316.5. So both are simulated: each is taken only
    where its k's usual forest fitted and was packed symmetrically (:func:`_breadth_first_differs`),
    and like any candidate past the first simulated only in a wide search. Not for an allreduce with a
    reduce forest of its own (:func:`two_forests`), whose halves are solved apart, nor for a user's k
    or ``--max-k`` (one candidate, as asked), nor again for the twins on the runtime's paths or on
    the faster directions (:func:`_with_routed`, :func:`_with_faster_way`), which are packed another
    way: a copy would carry the twin's key, so it named the twin's own solution."""
    assert state.candidates is not None
    if state.separate_reduce or state.options.k is not None or state.options.max_k is not None:
        return []
    return [
        candidate._replace(breadth_first=True)
        for candidate in state.candidates
        if not (candidate.blocks or candidate.routed or candidate.faster_way)
    ]


def _blocks_candidates(state: CompileState, wide: bool) -> list[Candidate]:
    """The box-block forests as candidates (:mod:`collc.solver.blocks`), where the fabric has a box
    layout, the user did not ask for a k, and the collective's two directions are the same (its
    reduce-scatter runs on the trees reversed). Where the search can be ``wide``, the box blocks and,
    where they are other trees, the direct box blocks after them (one tree per step fits there); else
    the one of the two whose consecutive roots merge into no more steps (the direct ones where the
    ranks go round the boxes: :func:`collc.solver.blocks.direct_merges_as_well`). Their k = 1 serves
    every count that any k serves (a count divisible by N·k is divisible by N), so no count rules them
    out that leaves another in."""
    options = state.options
    if options.k is not None or options.max_k is not None:
        return []
    if options.coll != "allgather" and not symmetric(state.model.capacity):
        return []
    first = BLOCKS_DIRECT if not wide and direct_merges_as_well(state.topology) else BLOCKS
    blocks = _blocks_solution(state, first)
    if blocks is None:
        return []
    found = [(first, blocks)]
    other = _blocks_solution(state, BLOCKS_DIRECT) if wide else None
    if other is not None and not other.forest.same_trees(blocks.forest):
        found.append((BLOCKS_DIRECT, other))
    return [
        Candidate(1, key, coll_algbw(solution.forest, options.coll), blocks=True) for key, solution in found
    ]


def _blocks_solution(state: CompileState, key: str) -> Solution | None:
    """The box-block forest ``key`` names (:data:`BLOCKS` or :data:`BLOCKS_DIRECT`), built once per
    compile, or None where the fabric has none."""
    if key not in state.solutions:
        solution = box_block_solution(state.topology, direct=key == BLOCKS_DIRECT)
        if solution is None:
            return None
        state.solutions[key] = solution
    return state.solutions[key]


def _solve_step(state: CompileState) -> None:
    """Forest: solve the next candidate's forest, then (allreduce on an asymmetric fabric) its reduce
    forest on the reversed fabric; each is solved once for all attempts, for at most about
    :data:`SLICE_SECONDS` per step (the step runs again until the solve is done)."""
    index = _next_candidate(state)
    assert index is not None and state.candidates is not None
    candidate = state.candidates[index]
    k = candidate.key
    if state.solving is None:
        if candidate.routed:
            state.solving = _routed_steps(state, candidate)
        elif k not in state.solutions:
            reverse = state.options.coll == "reducescatter"
            state.solving = solve_steps(
                state.faster if candidate.faster_way and state.faster is not None else state.topology,
                k=candidate.solve_k,
                max_k=state.options.max_k,
                reverse=reverse,
                breadth_first=candidate.breadth_first,
            )
        else:
            state.solving = solve_steps(state.topology, k=state.solutions[k].forest.k, reverse=True)
    try:
        done, solution = run_until(state.solving, state.deadline())
    except UnbalancedSwitches as error:  # this k's trees cannot reach its bound: the others may
        state.solving = None
        if candidate.faster_way:  # the faster way's own switches: k's other forests are still tried
            state.lossy.add(k)
        else:
            state.unsolved[k] = (candidate.k, error.message)
        return
    if not done:
        return
    assert solution is not None
    state.solving = None
    if k not in state.solutions and candidate.faster_way:
        _keep_faster_way(state, candidate, solution)
    elif k not in state.solutions:
        state.solutions[k] = solution
    else:
        state.reduce_forests[k] = solution.forest


def _with_faster_way(state: CompileState, candidates: list[Candidate]) -> list[Candidate]:
    """``candidates`` with each fixed k (the search's or the user's) followed by its trees packed on
    the fabric with each link at its faster direction (:mod:`collc.solver.faster_way`), where the
    fabric's two directions differ and that fabric's bound at k is the collective's own: the slower
    directions cost nothing there, and trees packed on that fabric keep the symmetries the real one
    lost (an allreduce runs both halves on them). Which forest of k simulates faster depends on the
    fabric (1x16 MI250 with two xGMI links slowed one way, allreduce at k = 8: 164.7 GB/s at 1 GiB on
    the faster directions, 154.1 with a forest per half; 2x16 MI250 with one, k = 2: 143.1 and 149.5,
    each at its best lowering), so both are candidates, at the same price. A figure equal to the
    price means no loss: the faster way's bound is at least the real one's, and for an allreduce half
    of it equals ``1/(1/AG + 1/RS)`` only where both halves reach it."""
    if state.faster is None:
        return candidates
    graph = capacity_graph(state.faster)
    symmetries = automorphisms(state.faster, graph)
    found = []
    for candidate in candidates:
        found.append(candidate)
        k = candidate.solve_k
        if not isinstance(k, int) or candidate.routed or candidate.blocks or candidate.breadth_first:
            continue
        price = _fixed_price(state, candidate)
        faster = fixed_k_bound(graph, k, symmetries).allgather_algbw
        if (faster / 2 if state.options.coll == "allreduce" else faster) == price:
            found.append(candidate._replace(faster_way=True, bound=price))
    return found


#: the halves whose trees a collective's bound takes: allgather trees, reversed for a reduce-scatter
HALVES = {"allgather": (False,), "reducescatter": (True,), "allreduce": (False, True)}


def _fixed_bounds(topology: Topology, k: int, reverses: tuple[bool, ...]) -> list[Bound]:
    """The allgather bound with exactly k trees per root of ``topology`` or, where ``reverses`` says
    so, of its reverse (one capacity graph, one set of symmetries: a graph's are its reverse's)."""
    graph = capacity_graph(topology)
    symmetries = automorphisms(topology, graph)
    return [fixed_k_bound(graph.reversed() if reverse else graph, k, symmetries) for reverse in reverses]


def _fixed_price(state: CompileState, candidate: Candidate) -> Fraction:
    """The bound of ``candidate``'s k (:func:`coll_algbw` of its forests): its price, or for a user's
    k (unpriced) the collective's bound at k, an allreduce's ``1/(1/AG + 1/RS)`` of each half's."""
    if candidate.bound is not None:
        return candidate.bound
    assert isinstance(candidate.solve_k, int)
    halves = _fixed_bounds(state.topology, candidate.solve_k, HALVES[state.options.coll])
    return 1 / sum(1 / half.allgather_algbw for half in halves)


def _keep_faster_way(state: CompileState, candidate: Candidate, solution: Solution) -> None:
    """Keep ``solution`` (packed on the faster way) where its trees, priced on the real fabric
    (an allreduce's both ways, the same trees read backwards as its reduce forest), reach the
    candidate's bound; its bound is then the real fabric's at k. Else the candidate is dropped
    (:attr:`CompileState.lossy`): k's own forest is a candidate of its own."""
    coll = state.options.coll
    if coll == "allreduce":
        forest, reduce_forest = priced_both_ways(solution.forest, state.topology)
    else:
        forest, reduce_forest = priced_on(solution.forest, state.topology), None
    if coll_algbw(forest, coll, reduce_forest) != candidate.bound:
        state.lossy.add(candidate.key)
        return
    bound = state.k_bounds.get(forest.k) or _fixed_bounds(state.topology, forest.k, HALVES[coll][:1])[0]
    state.solutions[candidate.key] = replace(solution, bound=bound, forest=forest)
    if reduce_forest is not None:
        state.reduce_forests[candidate.key] = reduce_forest


def _lower_step(state: CompileState) -> None:
    """Lower: fit the next candidate's forest to the runtime's limits, or record why it does not fit,
    or lower a simulated candidate again with paced senders (:func:`_to_pace`), for at most about
    :data:`SLICE_SECONDS` per step (the step runs again until it is done)."""
    if state.lowering is None:
        index = _next_candidate(state)
        if index is not None:
            state.lowering = _lowering_steps(state, index)
        else:
            to_pace = _to_pace(state)
            assert to_pace is not None
            state.lowering = _pacing_steps(state, to_pace)
    with collector_paused():
        done, _ = run_until(state.lowering, state.deadline())
    if done:
        state.lowering = None


def _lowering_steps(state: CompileState, index: int) -> Generator[None, None, None]:
    """The candidate ``index`` lowered every way :func:`_lowerings` tries, added to the fitted
    candidates at once when all are done (so a step that reads them never sees part of a candidate,
    and a lowering dropped part way through by a pickle starts again from nothing), and the search
    moved past it."""
    found = yield from _lowerings(state, index)
    state.fitted.extend(found)
    state.position = index + 1
    _simulate_ahead(state, found)


def _simulate_ahead(state: CompileState, found: list[Fitted]) -> None:
    """Start the simulations at the reference size that the simulate step will ask of the programs
    just fitted, with every buffer tried, on a spare thread (:func:`collc.predict.des.start_ahead`):
    they run while the next candidate is lowered, which holds the interpreter. The simulate step
    waits for them; the choice is the one it makes without them."""
    start_ahead(run for item in buffer_variants(state.options, found) for run in item.runs([state.reference]))


def _lowerings(state: CompileState, index: int) -> Generator[None, None, list[Fitted]]:
    """The candidate ``index`` lowered (and, by ``--lanes``, lowered again with split lanes, with two
    instances, with its joined tree depths kept apart, with tree depths sharing threadblocks, or with
    twice the chunks of a shared loop), or none and the reason it does not fit recorded.

    Twice the chunks of a loop shared unevenly (:func:`shared_loop`) share it more evenly: 3x8 A100
    allreduce, k = 1 direct box blocks, 64 chunks shared 2 or 3 per root bound the file at 145.5 GB/s
    (3 % below the fabric's 150.0) and it simulates at 142.2 at 1 GiB, 0.948 of the bound; 128
    chunks shared 5 or 6 simulate at 144.2 (0.961), and 128.0 against 132.5 at 64 MiB. The pick
    decides (:data:`NEAR_OPTIMAL`). Only at k = 1, whose roots carry 2 or 3 chunks (up to 1.5 times
    their fair part; at k ≥ 2 at most 1.25 times): there twice the chunks fill the pipeline longer
    than they gain (3x8 A100: k = 2 with 256 chunks 129.4 GB/s against 135.0 with 128, k = 4 with
    512 124.8 against 129.4, k = 16 with 2048 114.5 against 119.7), and every lowering costs
    compile time (bench_fabrics' 3x4 NVSwitch allreduce: 10.2 s without the variant, 14.2 with it
    at every k, 11.3 at k = 1 alone, the same file)."""
    assert state.candidates is not None
    allow_shared_stages, instances = state.attempts[state.attempt]
    solution = state.solutions[state.candidates[index].key]
    if any(item.solution.forest.same_trees(solution.forest) for item in state.fitted):
        # box blocks or a breadth-first packing that are a forest lowered already (8x8 H100 rail: the
        # direct box blocks are k = 1's; 2x8 A100: both packing orders give the same trees)
        return []
    # a routed allreduce forest carries both halves on its own trees (their loads both ways)
    reduce_forest = None if solution.forest.routed else state.reduce_forests.get(state.candidates[index].key)
    name = _name(state.topology, state.options.coll, solution.forest, instances)
    plans = Plans(solution.forest, reduce_forest, state.planes, state.topology.arc_bandwidths())
    loop = _loop_chunks(state.topology, state.options, solution.forest)
    try:
        lowered = yield from lower_steps(
            solution.forest,
            replace(state.options, instances=instances, name=name, loop_chunks=loop),
            state.limits,
            planes=plans.planes,
            reduce_forest=reduce_forest,
            arc_bandwidths=plans.arc_bandwidths,
            allow_shared_stages=allow_shared_stages,
            plans=plans,
        )
    except DoesNotFit as error:
        state.failures.append(f"k = {solution.forest.k}, {instances} instance(s): {error.message}")
        state.smallest_failed = min(solution.forest.k, state.smallest_failed or solution.forest.k)
        return []
    predictor = Memo(state.model.collc(lowered.algorithm))
    fitted = Fitted(solution, lowered, instances, predictor, reduce_forest, loop_chunks=loop)
    lanes = state.options.lanes
    wide = lowered.usage.total_steps <= WIDE_SEARCH_STEPS
    variant = None
    if lanes == "split" or (lanes == "auto" and wide):
        variant = yield from _relowered(state, fitted, name, split_lanes=True, plans=plans)
    if variant is not None and lanes == "auto" and variant.lowered.algorithm == lowered.algorithm:
        variant = None  # the same program: nothing more to simulate
    if lanes == "split":
        if variant is None:
            state.notes.append(
                f"--lanes split: k = {solution.forest.k} needs merged threadblocks even with a lane per "
                "group; its lanes are sized by rate"
            )
        return [variant or fitted]
    found = [fitted] if variant is None else [fitted, variant]
    first = state.fitted[0] if state.fitted else fitted
    narrow = first.lowered.usage.total_steps > WIDE_SEARCH_STEPS  # the search, not this program
    # joined against apart is every candidate's question in a wide search, also where its own program is
    # too large for the other variants (8x8 A100 allreduce: k = 2 and 4 joined have 52,751 and 80,896 steps)
    if lanes == "auto" and not narrow and lowered.joined_stages:
        apart = yield from _relowered(state, fitted, name, split_lanes=False, join_stages=False, plans=plans)
        if apart is not None and apart.lowered.algorithm != lowered.algorithm:
            found.append(apart)
    if lanes == "auto" and wide and _doubles(state, solution.forest, 2 * instances):
        twice = _name(state.topology, state.options.coll, solution.forest, 2 * instances)
        doubled = yield from _relowered(
            state, fitted, twice, split_lanes=True, instances=2 * instances, plans=plans
        )
        if doubled is not None:
            found.append(doubled)
    if lanes == "auto" and wide and loop is not None and solution.forest.k == 1:
        finer = yield from _relowered(
            state, fitted, name, split_lanes=False, loop_chunks=2 * loop, plans=plans
        )
        if finer is not None:
            found.append(finer)
    # a box-block forest keeps its depths apart: sharing threadblocks over them fits no run length on
    # 64x8 H100 rail (106 steps on a threadblock after the one emission allowed, 61 s of lowering)
    sharing = not lowered.stages_shared and not solution.forest.blocks
    if narrow and (lowered.merged_tbs or lowered.joined_stages) and sharing:
        shared = yield from _relowered(
            state,
            fitted,
            name,
            split_lanes=False,
            share_stages=True,
            max_emissions=SHARED_EMISSIONS,
            plans=plans,
        )
        if shared is not None and shared.lowered.algorithm != lowered.algorithm:
            found.append(shared)
    return found


def _doubles(state: CompileState, forest: Forest, instances: int) -> bool:
    """Whether a candidate is also lowered with twice its instances and split lanes (the user left
    ``--instances`` to compile, and ``nchunksperloop`` with ``instances`` still serves the counts asked
    for).

    Two instances give every tree edge two transfers, so split lanes carry a tree's chunks on two
    threadblocks at once: one moves 25.4 GB/s at the 256 KiB buffer (docs/cost-model.md §1), less
    than many links. At 1 GiB, 1x16 MI250 allgather k = 8: 299.3 GB/s at best with one instance,
    330.4 with two (bound 336.8); 1x8 V100 reduce-scatter: 159.5 at best with one instance, 164.3
    with two (k = 16, paced; bound 168.4).
    """
    n, options = state.topology.num_gpus, state.options
    chunks = loop_size(n, forest.k, options.coll, options.align) * instances
    return options.more_instances and serving(chunks, options.coll, n, options.align).satisfied


def _to_pace(state: CompileState) -> Fitted | None:
    """The next simulated candidate to lower again with its free senders paced, or None.

    A reduce-scatter or allreduce program small enough for the wide search (:data:`WIDE_SEARCH_STEPS`)
    is paced when it is the fastest lowering of its k and instances (lanes sized by rate or split),
    simulates within :data:`PACING_BAND` of the fastest unpaced candidate at the reference size, and
    falls short of its trees' bound by more than :data:`PACING_ROOM` (pacing only closes a gap to that
    bound).
    Pacing every lowering doubled the compile time of the presets; the others are unlikely to become
    the fastest (4x8 MI300X allreduce at k = 2: 221.6 → 229.8 GB/s; it can also lose: 1x16 MI250
    reduce-scatter at k = 8, 309.8 → 296.7, with the slice handshake of docs/cost-model.md §1).
    """
    if state.options.coll not in PACED_COLLECTIVES:
        return None
    unpaced = [item for item in state.fitted if not item.lowered.paced]
    speeds = {id(item): _simulated_algbw(state, item) for item in unpaced}
    fastest = max(speeds.values(), default=0.0)
    best_of_k: dict[str, Fitted] = {}
    for item in unpaced:
        name = item.lowered.algorithm.name
        if name not in best_of_k or speeds[id(item)] > speeds[id(best_of_k[name])]:
            best_of_k[name] = item
    for item in best_of_k.values():
        if (
            _pacing_key(item) not in state.paced
            and item.lowered.usage.total_steps <= WIDE_SEARCH_STEPS
            and speeds[id(item)] >= (1 - PACING_BAND) * fastest > 0
            and speeds[id(item)] < (1 - PACING_ROOM) * float(item.bound)
        ):
            return item
    return None


def _simulated_algbw(state: CompileState, item: Fitted) -> float:
    """The best algbw ``item`` simulated at the reference size over the buffers tried; 0 if it was not
    simulated (its busiest arc cannot reach the contenders)."""
    fastest = _fastest_grain(state, item)
    return 0.0 if fastest is None else fastest.algbw(state.reference)


def _fastest_grain(state: CompileState, item: Fitted) -> Fitted | None:
    """``item`` deployed with the buffer of :func:`_buffers` it simulated fastest with at the reference
    size (the first of equals); None if it was simulated with none."""
    variants = [replace(item, buffer_bytes=buffer) for buffer in _buffers(state.options, item)]
    known = [variant for variant in variants if variant.simulated(state.reference)]
    return max(known, key=lambda variant: variant.algbw(state.reference), default=None)


def _pacing_key(item: Fitted) -> tuple[str, bool]:
    """What names a lowering that may be paced: its program's name and whether its lanes are split."""
    return item.lowered.algorithm.name, item.lowered.split_lanes


def _pacing_steps(state: CompileState, item: Fitted) -> Generator[None, None, None]:
    """``item`` lowered again with its free senders paced, added to the candidates where that changes
    the program."""
    paced = yield from _relowered(
        state,
        item,
        item.lowered.algorithm.name,
        split_lanes=item.lowered.split_lanes,
        pace_free_senders=True,
        join_stages=item.lowered.join_stages,
    )
    state.paced.add(_pacing_key(item))
    if paced is not None and paced.lowered.algorithm != item.lowered.algorithm:
        state.fitted.append(paced)
        _simulate_ahead(state, [paced])


# Collectives whose candidates are also lowered with free senders paced: reduce-scatter's and
# allreduce's leaves send their own input and run ahead (docs/cost-model.md §4, cause 8); an
# allgather's only free senders are its roots' (1x16 MI250 k = 8: 330.6 -> 332.5 GB/s, at twice the
# compile time).
PACED_COLLECTIVES = ("reducescatter", "allreduce")
# A candidate that simulates within this share of its trees' bound is not paced: there is no more to
# gain than that (2x8 A100 allreduce k = 1: 170.9 of 171.4 GB/s).
PACING_ROOM = Fraction(2, 100)
# How close to the fastest unpaced candidate one must simulate to be paced: pacing gains up to about
# 4 % (1x8 V100 allreduce k = 8 with two instances: 79.4 -> 82.8 GB/s at 1 GiB, and 32.5 -> 34.4 at
# 1 MiB, against 82.4 for the fastest unpaced), so a band of EQUIVALENT (3 %) left it out.
# bench_predict: 1x8 V100 allreduce 0.948 -> 0.970 of the power-of-two bound, reduce-scatter 0.963 ->
# 0.970 (and 1 MiB 55.5 -> 61.3 GB/s); no other preset changed.
PACING_BAND = 2 * EQUIVALENT


def _relowered(
    state: CompileState,
    fitted: Fitted,
    name: str,
    *,
    split_lanes: bool,
    pace_free_senders: bool = False,
    share_stages: bool = False,
    join_stages: bool = True,
    instances: int | None = None,
    max_emissions: int | None = None,
    loop_chunks: int | None = None,
    plans: Plans | None = None,
) -> Generator[None, None, Fitted | None]:
    """The candidate lowered again another way, to be simulated beside it (or, ``--lanes split``,
    instead of it); None where that way does not fit. Which way is faster depends on the fabric, so
    the simulation decides, where a program is small enough (:data:`WIDE_SEARCH_STEPS`) for one more
    lowering and simulation to be cheap:

    * ``split_lanes``: lanes split towards one per transfer, as far as the threadblocks allow
      (:func:`collc.lowering.assign.split_lanes`); None where even a lane per group needs merged
      threadblocks. 4x8 V100 allgather k = 1: 57.2 with lanes sized by rate, 66.3 GB/s with a lane
      per transfer; 4x8 A100 allreduce k = 1, split to the A100's 108 threadblocks: 107.3 → 128.1;
      1x8 V100 allgather k = 8: 167.7 → 149.4.
    * ``pace_free_senders``: threadblocks that only send data that is always there wait for their
      GPU's dependent traffic once per iteration (:func:`collc.lowering.emit._pace_free_senders`).
      4x8 MI300X allreduce k = 2: 221.6 → 229.8; 1x16 MI250 reduce-scatter k = 8: 309.8 → 296.7 (it
      gained 307.7 → 327.6 before the slice handshake entered the model, docs/cost-model.md §1).
    * ``share_stages``: threadblocks that carry several tree depths, for a candidate whose lanes per
      tree depth need merged threadblocks where the first candidate was too large for the wide search
      (:func:`_lowering_steps`), given at most ``max_emissions`` (:data:`SHARED_EMISSIONS`).
    * ``join_stages=False``: where the candidate joined a pair's nearest tree depths to fit the
      threadblocks (:func:`collc.lowering.assign.coalesce_stages`), the depths kept apart and
      threadblocks merged instead, as before joins existed. Joined usually wins (4x8 MI300X
      allreduce k = 2 at 256 KiB: 237.1 GB/s joined, 221.6 apart), not always (2x16 MI250 allreduce
      k = 2 at the default buffer: 119.7 joined, 130.0 apart).

    * ``loop_chunks``: an allreduce loop shared unevenly (:func:`shared_loop`) with more chunks,
      which share it more evenly at the price of a longer pipeline fill (:func:`_lowerings`).

    ``plans``: the plans the candidate's first lowering built, to reuse (:class:`collc.lowering.lower.Plans`).
    """
    options = replace(
        state.options,
        instances=instances or fitted.instances,
        name=name,
        split_lanes=split_lanes,
        pace_free_senders=pace_free_senders,
        share_stages=share_stages,
        join_stages=join_stages,
        max_emissions=max_emissions,
        loop_chunks=loop_chunks or fitted.loop_chunks,
    )
    try:
        lowered = yield from lower_steps(
            fitted.solution.forest,
            options,
            state.limits,
            planes=state.planes,
            reduce_forest=fitted.reduce_forest,
            arc_bandwidths=state.topology.arc_bandwidths(),
            allow_shared_stages=False,
            plans=plans,
        )
    except DoesNotFit:
        return None
    if lowered.algorithm == fitted.lowered.algorithm:
        return replace(fitted, lowered=lowered)  # same program, same simulation
    predictor = Memo(state.model.collc(lowered.algorithm))
    return replace(
        fitted,
        lowered=lowered,
        predictor=predictor,
        instances=options.instances,
        loop_chunks=options.loop_chunks,
    )


def _loop_chunks(topology: Topology, options: CompileOptions, forest: Forest) -> int | None:
    """:func:`shared_loop` for a candidate's forest (None: its roots share the loop equally)."""
    return shared_loop(topology.num_gpus, forest.k, options.coll, options.align)


def _candidates_fitted(state: CompileState) -> int:
    """The k candidates fitted so far in this attempt: their forests' k, which every other lowering
    of one (split lanes, two instances, paced senders) shares."""
    return len({(item.solution.forest.k, item.solution.forest.layout) for item in state.fitted})


def _unsimulated(state: CompileState) -> Fitted | None:
    """The next simulation at the reference size that the choose step needs and has not run (in the
    order it asks for them, :func:`_simulation_order`), so that each runs as a step of its own: a service can
    stop a compile between two of them (one takes seconds at 128 GPUs)."""
    for variants in _variants(state, state.fitted):
        for item in _simulation_order(variants, state.reference):
            if not item.simulated(state.reference):
                return item
    return None


def _simulate_step(state: CompileState) -> None:
    """Simulate: one candidate at the reference size with one buffer (:func:`_unsimulated`), and
    beside it, while threads are left (:func:`collc.predict.des.simulation_threads`), the next
    candidates the choose step may ask for (a faster one found meanwhile may spare them; their
    results are only used if asked for, so the choice is the same on any number of threads)."""
    item = _unsimulated(state)
    assert item is not None
    runs = item.runs([state.reference])
    variants = [item for group in _variants(state, sorted(state.fitted, key=_by_ceiling)) for item in group]
    for run in (run for other in variants for run in other.runs([state.reference])):
        if len(runs) >= simulation_threads():
            break
        if run not in runs:
            runs.append(run)
    prefetch(runs)
    item.algbw(state.reference)


def _by_ceiling(item: Fitted) -> float:
    """Sort key of the simulation order (:func:`_simulation_order`): highest ceiling first."""
    return -item.ceiling


def _choose_step(state: CompileState) -> None:
    """Simulate: the fastest fitted candidate at the reference size (then maybe doubled instances);
    with none fitted, the next attempt, and after the last one the reasons nothing fits. When a
    candidate not yet tried could still be faster (:func:`_next_candidate`), it is lowered first and
    this step runs again (the simulations are memoised)."""
    fitted, reference, notes = state.fitted, state.reference, state.notes
    if not fitted:
        state.attempt += 1
        state.candidates = None
        if state.attempt == len(state.attempts) and state.unsolved and not state.failures:
            raise UnbalancedSwitches(
                f"no forest on {state.topology.name}: {_unsolved_text(state)}",
                hint="give the links at those switches the same bandwidth both ways, or try --k",
            )
        if state.attempt == len(state.attempts):
            raise DoesNotFit(
                f"no schedule fits {state.runtime} on {state.topology.name}: "
                + "; ".join(
                    [*dict.fromkeys(state.failures), *([_unsolved_text(state)] if state.unsolved else [])]
                ),
                hint="try --max-k with a small budget, --instances 1, or the other runtime's limits; "
                "a file cannot hold more than 4096 elements per rank",
            )
        return
    state.fastest = max(
        item.algbw(reference)
        for variants in _buffers_of(state.options, fitted)
        for item in _contenders(variants, reference)
    )
    if _blocks_first(state) and state.blocks_alone is None:
        state.blocks_alone = _at_lone_scale(state.topology, state.options) or _blocks_used(state, fitted)
    if _next_candidate(state) is not None:  # a wider search: choose again once it is simulated
        return
    if not state.refining:
        state.refining = True
        if _unsimulated(state) is not None:  # the close candidates at the finer grains first
            return
    weighing = near_optimal(state.weighing, state.model.bound_algbw(state.options.coll))
    groups = _variants(state, fitted)
    best = _deployment(groups, weighing, vendor_best(state.model, state.options.coll), notes)
    if state.failures:
        notes.append("did not fit: " + "; ".join(state.failures))
    if state.unsolved:
        notes.append("no forest: " + _unsolved_text(state))
    untried = sum(1 for c in (state.candidates or [])[state.position :] if not _ruled_out(state, c))
    if _search_width(state) == 1 and untried > 0:
        notes.append(_alone_note(state, fitted[0], untried))
    if len(fitted) > 1:
        at_best = [replace(item, buffer_bytes=best.buffer_bytes) for item in fitted]
        listed = [_listed(state, item) for item in at_best]
        simulated = {id(item) for item in _contenders(listed, reference)}
        tried = ", ".join(
            f"{_label(item)}: "
            + (
                format_figure(item.algbw(reference))
                if id(item) in simulated or item.simulated(reference)
                else f"at most {format_figure(item.ceiling)}"
            )
            + ("" if item.buffer_bytes == best.buffer_bytes else f" at {_grain(item.buffer_bytes)}")
            for item in listed
        )
        notes.append(
            f"chose {_label(best)} by simulating the candidates at "
            f"{format_size(reference)} (algbw GB/s {tried}; {weighing.rule()}; a candidate whose busiest "
            "arc cannot carry that is not simulated)"
        )
        top = max(listed, key=lambda item: (item.bound, -item.solution.forest.k))
        if top.bound > best.bound:
            notes.append(_preferred(best, top, weighing))
    state.best = _feeder_instances(
        state.topology, state.options, state.limits, state.planes, state.model, best, reference, notes
    )


def _unsolved_text(state: CompileState) -> str:
    """The candidates with no forest (:attr:`CompileState.unsolved`), their k's grouped by reason."""
    by_reason: dict[str, set[int | None]] = {}
    for k, reason in state.unsolved.values():
        by_reason.setdefault(reason, set()).add(k)
    return "; ".join(
        "k = "
        + ", ".join("the solver's" if k is None else str(k) for k in sorted(ks, key=lambda k: k or 0))
        + f": {reason}"
        for reason, ks in by_reason.items()
    )


def _listed(state: CompileState, item: Fitted) -> Fitted:
    """``item`` (at the chosen buffer) as the choice's note shows it: where that buffer is a finer grain
    the item was not simulated with (it was not close, :func:`_close`), at the coarser grain it was
    fastest with instead, so that the note shows simulations and runs none of its own."""
    if item.buffer_bytes not in FINE_BUFFER_CHOICES or item.simulated(state.reference):
        return item
    return _fastest_grain(state, item) or item


def _grain(buffer_bytes: int | None) -> str:
    """How the notes name a buffer."""
    return "the default buffer" if buffer_bytes is None else f"NCCL_BUFFSIZE={format_size(buffer_bytes)}"


def _alone_note(state: CompileState, first: Fitted, untried: int) -> str:
    """Why only ``first`` was lowered and simulated (:func:`_search_width`)."""
    left = f"({untried} left untried; --k tries one)"
    steps = first.lowered.usage.total_steps
    if not first.solution.forest.blocks or steps > LONE_CANDIDATE_STEPS:
        which = (
            "k = 1 (box blocks)"
            if first.solution.forest.blocks
            else f"k = {first.solution.forest.k}, the best priced candidate,"
        )
        return (
            f"only {which} was lowered and simulated: its program has {steps:,} steps, and above "
            f"{LONE_CANDIDATE_STEPS:,} each further candidate costs tens of seconds {left}"
        )
    return (
        f"only k = 1 (box blocks) was lowered and simulated: one tree per step, any file here has at "
        f"least {_least_steps(state.topology, state.options):,} steps, more than a wide search simulates "
        f"({WIDE_SEARCH_STEPS:,}), and the box-block file is used at a size the pick weighs {left}"
    )


def _label(item: Fitted) -> str:
    """How the notes name a candidate: its k, its instances where more than one, and how its lanes were
    split, its senders paced or its tree depths shared or joined where they were."""
    lowered = item.lowered
    ways = [item.solution.forest.layout] if item.solution.forest.layout != "trees" else []
    ways += [f"{item.instances} instances"] if item.instances > 1 else []
    ways += [f"{item.loop_chunks} chunks per loop"] if item.finer_loop else []
    if lowered.split_lanes:
        split = "lanes split to the threadblock limit" if lowered.unsplit_groups else "a lane per transfer"
        ways.append(split)
    if lowered.paced:
        ways.append("free senders paced")
    if lowered.stages_shared:
        ways.append("tree depths sharing threadblocks")
    if lowered.joined_stages:
        ways.append("a pair's nearest tree depths joined")
    if not lowered.join_stages:
        ways.append("tree depths kept apart")
    return f"k = {item.solution.forest.k}" + (f" ({', '.join(ways)})" if ways else "")


def _forest_name(item: Fitted) -> str:
    """A candidate's forest in the notes: its k, and which box blocks it is where it is."""
    forest = item.solution.forest
    return f"k = {forest.k}" + (f" ({forest.layout})" if forest.layout != "trees" else "")


def _preferred(best: Fitted, top: Fitted, weighing: Weighing) -> str:
    """Why the emitted k is not the candidate with the highest bound: what the two simulate."""
    gain = float(top.bound / best.bound - 1) * 100
    figures = " and ".join(
        "{} against {} GB/s at {}".format(*format_pair(best.algbw(size), top.algbw(size)), format_size(size))
        for size in weighing.largest
    )
    grain = "" if top.buffer_bytes == best.buffer_bytes else f" (it at {_grain(top.buffer_bytes)})"
    return (
        f"{_forest_name(best)} preferred to {_forest_name(top)} (whose bound is "
        f"{gain:.2f} % higher): simulated {figures}{grain}; use --k to override"
    )


def _range_step(state: CompileState) -> None:
    """Range: the sizes where the chosen file is predicted to beat the runtime (or the user's)."""
    assert state.best is not None
    state.chosen = _byte_range(
        state.topology, state.options, state.runtime, state.model, state.best, state.notes
    )


def _verify_step(state: CompileState) -> None:
    """Verify: the program with its final range through the verifier, for at most about
    :data:`SLICE_SECONDS` (the step runs again until the verifier is done), then its XML."""
    assert state.best is not None and state.chosen is not None
    if state.verifying is None:
        algo = _ranged(_given(state, state.best).lowered.algorithm, state.chosen[0], state.best.buffer_bytes)
        state.verifying = Verification(
            algo, runtime=state.runtime, topology=state.file_topology, buffer_bytes=state.best.buffer_bytes
        )
    if state.verifying.advance(state.deadline()):
        report = _checked(state.verifying.report)
        state.verifying = None
        state.result = _finish(state, _given(state, state.best), *state.chosen, report)


def _given(state: CompileState, item: Fitted) -> Fitted:
    """``item`` on the file's own ranks (:func:`box_major`): its program and its trees renumbered. Its
    predictor stays: the renumbered program runs the same transfers on the same links."""
    if state.given is None:
        return item
    order = state.given[1]
    lowered = replace(item.lowered, algorithm=renumbered(item.lowered.algorithm, order))
    solution = replace(item.solution, forest=renumbered_forest(item.solution.forest, order))
    reduce_forest = None if item.reduce_forest is None else renumbered_forest(item.reduce_forest, order)
    return replace(item, lowered=lowered, solution=solution, reduce_forest=reduce_forest)


#: how long one forest, lower or verify step runs before it hands back (a service may run another job's
#: step between two): at 128 GPUs a forest takes about 3 s, a lowering 2 s and verifying a file 5 s.
#: Small jobs during a 1,024-GPU compile on one worker: mean JCT 0.79 s with 0.5 s slices, 0.46 s
#: with 0.2 s (docs/serve.md)
SLICE_SECONDS = 0.2

#: the steps of a compile by name (:func:`next_step`), in the order they first run
STEPS = {
    "bound": _price_step,
    "forest": _solve_step,
    "lower": _lower_step,
    "simulate": _simulate_step,
    "choose": _choose_step,
    "range": _range_step,
    "verify": _verify_step,
}


@dataclass(frozen=True)
class Fitted:
    """A candidate program that fits the runtime, with its (memoised) event simulation."""

    solution: Solution
    lowered: Lowered
    instances: int
    predictor: Memo
    reduce_forest: Forest | None = None  # allreduce's reduce-scatter half, where it has its own
    buffer_bytes: int | None = None  # the NCCL_BUFFSIZE it is deployed with; None: the runtime's default
    # an allreduce loop shared unevenly: its chunks per instance (shared_loop, or the finer loop of
    # _lowerings); None: every root carries its k chunks
    loop_chunks: int | None = None

    @property
    def shares(self) -> tuple[int, ...] | None:
        """Each root's chunks per instance where the loop is shared unevenly (spread_shares)."""
        forest = self.solution.forest
        return None if self.loop_chunks is None else spread_shares(forest.num_gpus, self.loop_chunks)

    @property
    def finer_loop(self) -> bool:
        """Whether the loop is finer than :func:`shared_loop` (the variant of :func:`_lowerings`)."""
        forest = self.solution.forest
        loop = shared_loop(forest.num_gpus, forest.k, self.lowered.algorithm.coll, None)
        return loop is not None and self.loop_chunks is not None and self.loop_chunks > loop

    @property
    def proto(self) -> Protocol:
        """The model of the file's protocol as deployed (its pipelining grain)."""
        return deployed_protocol(self.lowered.algorithm.proto, self.buffer_bytes)

    @property
    def bound(self) -> Fraction:
        """The algbw bound of the file's trees (what :func:`coll_algbw` aims at)."""
        return coll_algbw(self.solution.forest, self.lowered.algorithm.coll, self.reduce_forest)

    @property
    def ceiling(self) -> float:
        """An algbw no simulation of the file exceeds: what its busiest arc allows
        (:meth:`~collc.predict.des.ProgramCost.arc_limit_algbw`). Not the trees' bound: for an
        allreduce that is reduce-scatter plus allgather, and where the two halves run on opposite
        directions of the links (a line of GPUs, a degraded box) the file beats it."""
        cost = self.predictor.inner
        assert isinstance(cost, ProgramCost)
        return cost.arc_limit_algbw(self.proto)

    def simulated(self, nbytes: int) -> bool:
        """Whether :meth:`algbw` of ``nbytes`` is already known (the simulation has run)."""
        algo = self.lowered.algorithm
        return self.predictor.knows(algo.coll, served_size(algo, nbytes), self.proto)

    def runs(self, sizes: Iterable[int]) -> list[tuple[ProgramCost, Run]]:
        """The simulations :meth:`algbw` still needs for ``sizes``, to be made side by side
        (:func:`collc.predict.des.prefetch`)."""
        algo = self.lowered.algorithm
        return runs_of(self.predictor, algo.coll, [served_size(algo, size) for size in sizes], self.proto)

    def algbw(self, nbytes: int) -> float:
        """Simulated algbw (GB/s) of a call of ``nbytes`` (moved to the nearest size the file serves)."""
        algo = self.lowered.algorithm
        served = served_size(algo, nbytes)
        return served / self.predictor.time_us(algo.coll, served, self.proto) / 1000


def deployed_protocol(proto: str, buffer_bytes: int | None) -> Protocol:
    """The model of ``proto`` with a connection buffer of ``buffer_bytes`` (None: the default). Only a
    Simple file takes it: NCCL_BUFFSIZE is Simple's, and LL and LL128 keep their own buffers."""
    return simple(buffer_bytes) if proto == "Simple" and buffer_bytes is not None else PROTOCOL_MODELS[proto]


def buffer_choices(options: CompileOptions, *, wide: bool = False) -> tuple[int | None, ...]:
    """The ``NCCL_BUFFSIZE`` values a Simple file is simulated with (None: the runtime's default);
    ``wide``: for a program small enough for the wide search, :data:`WIDE_BUFFER_CHOICES` too.

    The buffer is the pipelining grain (:func:`collc.predict.params.simple`): a 1 GiB call on 128
    chunks walks each 8 MiB chunk in 4 calls of 2 MiB at the default 4 MiB buffer, and a tree deeper
    than that spends most of the call filling and draining (4x8 A100 allreduce: 0.78 of the bound).
    The user's ``--buffsize`` is the only choice; LL and LL128 have buffers of their own, not tuned,
    and an MSCCL++ plan pipelines in units of its own.
    """
    if options.buffsize is not None:
        return (None if options.buffsize == DEFAULT_BUFFER_BYTES else options.buffsize,)
    if options.proto != "Simple" or options.runtime not in BUFFERED_RUNTIMES:
        return (None,)
    return (None, *BUFFER_CHOICES, *(WIDE_BUFFER_CHOICES if wide else ()))


def _buffers(options: CompileOptions, item: Fitted) -> tuple[int | None, ...]:
    """The buffers ``item`` is simulated with: :func:`buffer_choices`, wide where its program has at
    most :data:`WIDE_SEARCH_STEPS` steps."""
    return buffer_choices(options, wide=item.lowered.usage.total_steps <= WIDE_SEARCH_STEPS)


def _buffers_of(options: CompileOptions, items: list[Fitted]) -> list[list[Fitted]]:
    """The items deployed with each buffer of :func:`buffer_choices` (wide), buffer by buffer (the
    runtime's default first, with every item; then the smaller ones, each with the items
    :func:`_buffers` gives it)."""
    return [
        [replace(item, buffer_bytes=buffer) for item in items if buffer in _buffers(options, item)]
        for buffer in buffer_choices(options, wide=True)
    ]


def _variants(state: CompileState, items: list[Fitted]) -> list[list[Fitted]]:
    """The ``items`` deployed with each buffer they are simulated with, buffer by buffer: those of
    :func:`_buffers_of`, and once the search is done (``state.refining``) each of
    :data:`FINE_BUFFER_CHOICES` with the close ones (:func:`_close`)."""
    groups = _buffers_of(state.options, items)
    if not state.refining or state.options.buffsize is not None or len(groups) == 1:
        return groups
    close = {id(item.lowered) for item in _close(state)}
    return groups + [
        [replace(item, buffer_bytes=buffer) for item in items if id(item.lowered) in close]
        for buffer in FINE_BUFFER_CHOICES
    ]


def _close(state: CompileState) -> list[Fitted]:
    """The fitted candidates to simulate at the finer grains: of wide-search size, whose best simulated
    algbw at the reference size (over :func:`_buffers`) is within :data:`EQUIVALENT` of the fastest
    (those the pick may choose). Whatever grain was fastest for them: at the reference size close
    candidates often tie across grains, and the finer one gains at a sixteenth of it (4x8 H100
    allgather: 510.9 GB/s at 1 GiB at 256 KiB, 511.3 at 128 KiB, and 464.8 against 470.3 at 64 MiB)."""
    speeds = [(item, _simulated_algbw(state, item)) for item in state.fitted]
    fastest = max((speed for _, speed in speeds), default=0.0)
    return [
        item
        for item, speed in speeds
        if speed >= fastest * (1 - EQUIVALENT) > 0 and item.lowered.usage.total_steps <= WIDE_SEARCH_STEPS
    ]


def buffer_variants(options: CompileOptions, items: list[Fitted]) -> list[Fitted]:
    """Every item deployed with every buffer it is simulated with (:func:`_buffers_of`), buffer by
    buffer."""
    return [variant for group in _buffers_of(options, items) for variant in group]


class Weighing(NamedTuple):
    """The call sizes the pick compares candidates at (:func:`_pick`).

    ``reference`` orders them (1 GiB, or the user's largest size); ``smaller`` decide among those close
    there: a thousandth and a sixteenth of it, where fill and drain weigh more, less any below the
    user's smallest size (the file never runs them). ``forced``: the user's range is written as it
    is, so the file runs every size in it, faster than the runtime or not, and what it delivers there
    is its own figure; otherwise (one end given too: the other is where the file wins) the file's
    range is chosen where it wins and the runtime keeps the rest. ``collc compile --min-bytes 256MiB``
    on 1x16 MI250 reduce-scatter had picked the file that wins at 1 MiB (k = 2, 314.7 GB/s at 1 GiB
    against RCCL's 316.4), a size its range never takes. With ``--min-bytes 64MiB`` alone, k = 2 was
    weighed by its own figure at 64 MiB, where it loses, and then won nowhere on that side (exit 1).
    """

    reference: int
    smaller: tuple[int, ...]
    forced: bool
    # an algbw at the reference that is not traded for the smaller sizes (:data:`NEAR_OPTIMAL` of the
    # bound, :func:`near_optimal`); 0: none
    floor: float = 0.0

    @property
    def largest(self) -> tuple[int, ...]:
        """The reference and the largest smaller size (where there is one): where a finer buffer and
        a larger k must show their gain."""
        return (self.reference, *self.smaller[-1:])

    def rule(self) -> str:
        """The pick's rule among the close candidates, in words (the report's note)."""
        if not self.smaller:
            return "the fastest: the range takes no smaller size"
        *most, last = [format_size(size) for size in (self.reference, *reversed(self.smaller))]
        sizes = f"{', '.join(most)} and {last}"
        close = f"within {float(EQUIVALENT):.0%} of the fastest, the one that"
        if self.floor:
            close = (
                f"within {float(EQUIVALENT):.0%} of the fastest and, where the fastest reaches "
                f"{float(NEAR_OPTIMAL):.0%} of the bound ({format_figure(self.floor)}) and the runtime "
                "does not, not below it, the one that"
            )
        if self.forced:
            return f"{close} delivers most at {sizes}, which the range takes"
        return (
            f"{close} beats the runtime at most of {sizes}, then with the runtime's own delivers most there"
        )


def near_optimal(weighing: Weighing, bound: Fraction) -> Weighing:
    """``weighing`` with its floor at :data:`NEAR_OPTIMAL` of the collective's ``bound`` (algbw)."""
    return weighing._replace(floor=float(NEAR_OPTIMAL * bound))


def weighing(options: CompileOptions) -> Weighing:
    """What :func:`_pick` weighs for ``options``: see :class:`Weighing`."""
    reference = _reference_bytes(options)
    smaller = tuple(size for size in (reference // 1024, reference // 16) if size >= options.min_bytes)
    forced = options.user_range and bool(options.min_bytes or options.max_bytes)
    return Weighing(reference, smaller, forced)


def _pick(fitted: list[Fitted], weighing: Weighing, vendor: Callable[[int], float]) -> Fitted:
    """The candidate to emit: among those within :data:`EQUIVALENT` of the fastest at the reference
    size (and, where the fastest reaches the weighing's floor and the runtime does not, not below it:
    a file within 5 % of the bound keeps that place; where the runtime is that close itself, the file
    is for the smaller sizes), the one whose range takes most of the sizes weighed (the reference, and
    64 MiB and 1 MiB for 1 GiB, where fill and drain weigh more), then delivers most over them: the
    product of its algbw where its range would take the size and of the runtime's best (``vendor``)
    elsewhere (:func:`_delivered`). A larger k can gain a per cent at 64 MiB and lose several times over at 1
    MiB (4x8 MI300X allgather, k = 32 against k = 2: 471.0 against 462.3 GB/s, and 14.3 against 69.7
    where the runtime gets 17.2). A file that beats the runtime at one size more comes first, since
    that size is then collc's: on 1x16 MI250 allgather, k = 16 at 256 KiB is 1.7 % faster at 1 GiB
    than k = 8 with two instances at 128 KiB (331.3 against 325.8 GB/s) and loses to RCCL's ring at
    64 MiB (265.4 against 270.5), where k = 8 wins (270.7). Ties keep the earlier (better priced).
    Only a file whose range would take one of those sizes or the reference counts: where none of the
    close candidates is used at any of them, the one of all simulated that is used and delivers most
    is emitted (32x8 H100 rail allreduce, 256 GPUs: the box-block file is the fastest at 1 GiB, 191.7
    GB/s at the 256 KiB buffer, and loses to NCCL's tree (197.8) at every size; k = 1 with tree
    depths sharing threadblocks wins from 512 KiB to 16 MiB and is emitted).

    A candidate whose ceiling (:attr:`Fitted.ceiling`) is below that share of the fastest cannot be
    close and is never simulated (:func:`_contenders`).
    """
    if len(fitted) == 1:
        return fitted[0]
    reference = weighing.reference
    contenders = _contenders(fitted, reference)
    fastest = max(item.algbw(reference) for item in contenders)
    threshold = fastest * float(1 - EQUIVALENT)
    if fastest >= weighing.floor > vendor(reference):
        threshold = max(threshold, weighing.floor)
    close = [item for item in contenders if item.algbw(reference) >= threshold]
    for pool in (close, contenders):
        if used := _used(pool, weighing, vendor):
            return max(used, key=lambda item: _delivered(item, weighing, vendor).rank)
    return close[0]


class _Delivery(NamedTuple):
    """What :func:`_delivered` finds of a candidate: the product over the smaller sizes it weighs,
    what the file or the runtime delivers at the reference, how many of those sizes and the
    reference the file's range would take, and whether it would take any size at all (else the
    runtime runs them all)."""

    product: float
    at_reference: float
    taken: int
    used: bool

    @property
    def rank(self) -> tuple[int, float]:
        """What the pick maximises: the sizes weighed that the file takes, then the product over
        the smaller sizes and the reference."""
        return self.taken, self.product * self.at_reference


class _Contest(NamedTuple):
    """One size of :func:`_delivered`: the file's and the runtime's algbw there."""

    nbytes: int
    algbw: float
    vendor: float

    @property
    def wins(self) -> bool:
        return no_slower(self.algbw, self.vendor)


def _delivered(item: Fitted, weighing: Weighing, vendor: Callable[[int], float]) -> _Delivery:
    """What a candidate and the runtime deliver together at the sizes :func:`_pick` weighs: the
    product over the smaller sizes of the file's algbw where its one size range would take that size
    (:func:`collc.compile.ranges.taken_run` over these sizes and the reference) and the runtime's
    elsewhere. A file that loses at 64 MiB cannot take 1 MiB when it takes 1 GiB, so its win at 1 MiB
    counts for nothing (a degraded 4x8 H100 allreduce picked k = 8 for 28.3 against 22.8 GB/s at
    1 MiB, and its range then started above 64 MiB, where it lost); nor where it loses at a size of
    the range's grid between two it wins at (:func:`_bridged`). A range the user set (``forced``)
    takes every size weighed: there the file's own figures count, winning or not.

    The range prefers the run that reaches the top of its grid, so where the file loses at the
    reference and wins below it, the top (1 TiB) decides too: 8x8 MI300X allreduce, k = 8, wins at 1
    MiB (33.2 GB/s against 20.4), loses at 1 GiB and wins from 2 GiB up, so its range takes those
    sizes and its 1 MiB is the runtime's; it had been picked over k = 1 and then not used at 1 MiB.
    Anywhere else the top changes nothing, and it is not simulated (at 512 GPUs a run there costs
    seconds)."""
    reference = weighing.reference
    weighed = [_Contest(size, item.algbw(size), vendor(size)) for size in weighing.smaller]
    at_reference = _Contest(reference, item.algbw(reference), vendor(reference))
    if weighing.forced:
        return _Delivery(prod(c.algbw for c in weighed), at_reference.algbw, len(weighed) + 1, True)
    contests = _bridged([*weighed, at_reference], item, vendor)
    top = grid()[-1]
    if top > reference and not at_reference.wins and any(contest.wins for contest in weighed):
        contests.append(_Contest(top, item.algbw(top), vendor(top)))
    taken = {contest.nbytes for contest in taken_run(contests)}
    product = prod(c.algbw if c.nbytes in taken else c.vendor for c in weighed)
    delivered = at_reference.algbw if reference in taken else at_reference.vendor
    weighed_taken = len(taken & {c.nbytes for c in (*weighed, at_reference)})
    return _Delivery(product, delivered, weighed_taken, bool(taken))


def _bridged(contests: list[_Contest], item: Fitted, vendor: Callable[[int], float]) -> list[_Contest]:
    """``contests`` with the sizes of the range's grid between two neighbours that both win: the
    range takes the two in one run only if the file wins at every grid size between them (4x8 A100
    allreduce, box blocks with two instances: it wins at 1 MiB and 64 MiB and loses to the tree at 4
    and 16 MiB, so its range starts at 32 MiB and the runtime keeps 1 MiB)."""
    bridged = [contests[0]]
    for last, contest in itertools.pairwise(contests):
        if last.wins and contest.wins:
            between = [size for size in grid() if last.nbytes < size < contest.nbytes]
            bridged += [_Contest(size, item.algbw(size), vendor(size)) for size in between]
        bridged.append(contest)
    return bridged


def vendor_best(model: TopologyModel, coll: str) -> Callable[[int], float]:
    """The runtime's best algbw (GB/s, ring or tree at its fastest protocol) per call size, memoised."""
    return cache(lambda nbytes: max(vendor_algbw(model, coll, nbytes).values()))


def _simulation_order(fitted: list[Fitted], reference: int) -> Iterator[Fitted]:
    """The candidates that may be within :data:`EQUIVALENT` of the fastest at the reference size,
    highest ceiling first (:attr:`Fitted.ceiling`), each simulated there once the caller moves past it;
    the first whose ceiling is below that share of the fastest simulated so far ends the order."""
    fastest = 0.0
    for item in sorted(fitted, key=_by_ceiling):
        if item.ceiling < fastest * (1 - EQUIVALENT):
            return
        yield item
        fastest = max(fastest, item.algbw(reference))


def _contenders(fitted: list[Fitted], reference: int) -> list[Fitted]:
    """The candidates of :func:`_simulation_order`, simulated, in their own order; the others are
    left out unsimulated."""
    simulated = {id(item) for item in _simulation_order(fitted, reference)}
    return [item for item in fitted if id(item) in simulated]


def _deployment(
    groups: list[list[Fitted]], weighing: Weighing, vendor: Callable[[int], float], notes: list[str]
) -> Fitted:
    """The candidate and the ``NCCL_BUFFSIZE`` to emit, from the candidates deployed with each buffer
    they were simulated with (:func:`_variants`; the first group has the runtime's default buffer, or
    the user's).

    :func:`_pick` chooses among them all. A buffer below the default is deployed only when it gains
    :data:`BUFFER_GAIN` at the reference size or at a sixteenth of it (where the range has it) over the
    best file at the default buffer (it is a process-wide setting); where the pick's buffer does not,
    the pick is made again without it (on two boxes of four GPUs behind 10 GB/s ports 512 KiB is
    picked, 1.8 % faster at 64 MiB, and 256 KiB gains 2.1 %).
    """
    variants = [item for group in groups for item in group]
    first = _pick(groups[0], weighing, vendor)
    sizes = weighing.largest
    while (best := _pick(variants, weighing, vendor)).buffer_bytes != first.buffer_bytes:
        if any(best.algbw(size) >= first.algbw(size) * (1 + BUFFER_GAIN) for size in sizes):
            break
        variants = [item for item in variants if item.buffer_bytes != best.buffer_bytes]
    else:
        return first
    figures = ", ".join(
        "{} {} vs {}".format(format_size(size), *format_pair(best.algbw(size), first.algbw(size)))
        for size in sizes
    )
    notes.append(
        f"NCCL_BUFFSIZE={format_size(best.buffer_bytes)}: a finer pipelining grain than the default "
        f"{format_size(DEFAULT_BUFFER_BYTES)} (simulated algbw GB/s {figures}); use --buffsize to override"
    )
    return best


def _reference_bytes(options: CompileOptions) -> int:
    """The call size candidates are compared at: the user's largest size, else :data:`REFERENCE_BYTES`
    (or the user's smallest size where that is larger; both are 0 where the user gave none)."""
    return options.max_bytes or max(REFERENCE_BYTES, options.min_bytes)


def _feeder_instances(
    topology: Topology,
    options: CompileOptions,
    limits: RuntimeLimits,
    planes: dict[str, int],
    model: TopologyModel,
    best: Fitted,
    reference: int,
    notes: list[str],
) -> Fitted:
    """Twice the instances for a reduce-scatter whose NIC-feeding pairs carry one transfer each, when
    the simulation says the doubled file is faster at the reference size.

    A lane per NIC-feeding transfer cannot help a pair with a single transfer; with two instances
    every pair carries two. The doubled file is only tried when its feeding pairs get their lanes
    without merged, capped or stage-sharing threadblocks, and while it still pipelines over
    :data:`MIN_DOUBLED_ITERATIONS` at the reference call size (else it cannot win: half the
    iterations hide the fill). Only reduce-scatter, where an aggregation waits for its slowest input,
    and only lanes sized by rate: the search already simulates every candidate with two instances and
    split lanes where it is wide (:func:`_doubles`).
    """
    lowered = best.lowered
    wanted = options.more_instances and options.coll == "reducescatter" and lowered.single_feeders
    if not wanted or lowered.merged_tbs or lowered.split_lanes:
        return best
    doubled = 2 * best.instances
    call_bytes = best.proto.call_bytes
    chunks = 2 * lowered.algorithm.nchunksperloop
    if reference < MIN_DOUBLED_ITERATIONS * chunks * call_bytes:
        return best
    forest = best.solution.forest
    name = _name(topology, options.coll, forest, doubled)
    try:
        candidate = lower(
            forest,
            replace(options, instances=doubled, name=name),
            limits,
            planes=planes,
            arc_bandwidths=topology.arc_bandwidths(),
            allow_shared_stages=False,
        )
    except DoesNotFit:
        return best
    if not candidate.feeder_lanes or candidate.merged_tbs or candidate.lanes_capped:
        return best
    twice = Fitted(
        best.solution,
        candidate,
        doubled,
        Memo(model.collc(candidate.algorithm)),
        buffer_bytes=best.buffer_bytes,
    )
    if twice.algbw(reference) <= best.algbw(reference):
        return best
    before, after = format_pair(best.algbw(reference), twice.algbw(reference))
    notes.append(
        f"{doubled} instances: {plural(lowered.single_feeders, 'group')} of NIC-feeding transfers "
        f"(pair, rail, tree depth) had one transfer each, too few for a lane per transfer ({before} "
        f"-> {after} GB/s simulated at {format_size(reference)}); "
        "use --instances to override"
    )
    return twice


#: what a file's name says of its forest's layout (Forest.layout)
LAYOUT_SUFFIXES = {
    "trees": "",
    "breadth-first trees": "-bfs",
    "trees on the runtime's paths": "-routed",
    "trees on the faster directions": "-faster",
    "box blocks": "-blocks",
    "direct box blocks": "-blocks-direct",
}


def _name(topology: Topology, coll: str, forest: Forest, instances: int) -> str:
    layout = LAYOUT_SUFFIXES[forest.layout]
    return f"collc-{topology.name}-{topology.num_gpus}gpus-{coll}-k{forest.k}{layout}-i{instances}"[:200]


def _file_bound(trees: Fraction, best: Fitted) -> Fraction:
    """The algbw bound of the written file's trees: ``trees`` (:func:`coll_algbw`, on the paths the
    trees were packed on), or what the file's busiest arc on the runtime's paths allows where that is
    more. The runtime's network spreads a pair's traffic over parallel paths (leaves under two
    spines, :meth:`collc.predict.network.Network.spread`) where the trees name one, and the file then
    runs faster than its trees' own paths allow: that figure is no bound of the file, its busiest arc
    on the paths it runs on is (in wire bytes, as ``trees``)."""
    cost = best.predictor.inner
    spread = cost.busiest_arc_algbw() if isinstance(cost, ProgramCost) else None
    return trees if spread is None else max(trees, spread)


@dataclass(frozen=True)
class Unwritten:
    """The file a compile chose but did not write, because it wins at no size: what ``--json`` says
    of it (the written file's report keys, with ``file`` null)."""

    runtime: str
    k: int
    layout: str  # Forest.layout
    instances: int
    nchunksperloop: int
    buffer_bytes: int | None
    bound_algbw: Fraction
    ceiling_algbw: Fraction
    predicted: tuple[SizeOutlook, ...]  # at REPORT_SIZES; none of them selected: nothing is written
    serves: str  # the counts its nchunksperloop serves (Serving.describe)
    notes: tuple[str, ...]  # the compile's notes: how the file was chosen


class NoWin(InfeasibleError):
    """The compiled file is predicted slower than the runtime's own algorithms at every size."""

    def __init__(self, message: str, *, hint: str | None = None, unwritten: Unwritten | None = None):
        super().__init__(message, hint=hint)
        self.unwritten = unwritten


def _finish(
    state: CompileState, best: Fitted, chosen: ByteRange, forced: bool, report: VerifyReport
) -> CompileResult:
    """The compile's result: ``best`` with the range ``chosen`` (verified: ``report``), its XML and
    the notes on how it was lowered."""
    topology, options, runtime, notes = state.file_topology, state.options, state.runtime, state.notes
    lowered = best.lowered
    algo = _ranged(lowered.algorithm, chosen, best.buffer_bytes)
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
            "the simulation above includes that"
        )
    notes.extend(_buffer_notes(options) + _cap_notes(state))
    lowered = replace(lowered, algorithm=algo)
    shares = best.shares
    if shares is not None and state.given is not None:  # spread in the search's rank order
        shares = tuple(shares[rank] for rank in sorted(range(len(shares)), key=state.given[1].__getitem__))
    return CompileResult(
        topology=topology,
        options=options,
        runtime=runtime,
        limits=state.limits,
        solution=best.solution,
        lowered=lowered,
        instances=best.instances,
        bound_algbw=state.model.bound_algbw(options.coll),
        file_bound_algbw=_file_bound(
            coll_algbw(
                best.solution.forest,
                options.coll,
                best.reduce_forest,
                shares=shares,
                arc_bandwidths=topology.arc_bandwidths(),
            ),
            best,
        ),
        serving=serving(algo.nchunksperloop, options.coll, topology.num_gpus, options.align),
        byte_range=chosen,
        model=state.model,
        predictor=best.predictor,
        verification=report,
        xml=to_xml(algo, runtime=runtime),
        reduce_forest=best.reduce_forest,
        notes=notes,
        forced=forced,
        buffer_bytes=best.buffer_bytes,
        fastest=best.algbw(state.reference) >= state.fastest,
        loop_shares=shares,
    )


def _from_asked_size(chosen: ByteRange, algo: Algorithm, rows: list[SizeOutlook], nranks: int) -> ByteRange:
    """``chosen`` starting at nccl-tests' size for the power of two its first size was simulated for.

    The range is chosen on sizes the file serves, each the nearest above a power of two; nccl-tests
    asks for the nearest below it (:func:`~collc.compile.outlook.nccl_tests_bytes`). Where they differ
    (allgather on 72 GPUs: 1,048,320 against 1,049,472 bytes for 1 MiB) the call a user measures at
    the range's first size would go to the runtime. The start moves down to it, less than one unit,
    and stays above every size simulated below it (the grid's, which lost).
    """
    if chosen.min_bytes == 0:
        return chosen
    nominal = 1 << (chosen.min_bytes.bit_length() - 1)
    simulated = [row.nbytes for row in rows if row.nbytes < chosen.min_bytes]
    floor = max([*simulated, served_size(algo, nominal // 2)]) + 1
    asked = nccl_tests_bytes(algo.coll, nominal, nranks)
    return replace(chosen, min_bytes=min(chosen.min_bytes, max(asked, floor)))


def _ranged(algo: Algorithm, chosen: ByteRange, buffer_bytes: int | None) -> Algorithm:
    """The program as written: its size range, and its name recording the NCCL_BUFFSIZE it was
    chosen and verified for (:func:`collc.msccl.program.tag_buffer`), so that ``collc verify`` and
    ``collc simulate`` of the file use that buffer without being told."""
    return replace(
        algo,
        min_bytes=chosen.min_bytes,
        max_bytes=chosen.max_bytes,
        name=tag_buffer(algo.name, buffer_bytes),
    )


def _verified(algo: Algorithm, runtime: str, topology: Topology, buffer_bytes: int | None) -> VerifyReport:
    """The verifier's report on ``algo`` deployed with ``buffer_bytes`` (which decides how many chunks
    one primitive call carries), checked (:func:`_checked`)."""
    return _checked(verify(algo, runtime=runtime, topology=topology, buffer_bytes=buffer_bytes))


def _checked(report: VerifyReport) -> VerifyReport:
    """``report``, which must find no error: a program the verifier rejects is a bug in collc, never
    written."""
    if not report.ok:
        problems = "; ".join(f"{p.rule}: {p.message}" for p in report.errors[:10])
        raise InvariantError(
            f"the lowered program failed verification ({len(report.errors)} errors): {problems}"
        )
    return report


def with_range(result: CompileResult, chosen: ByteRange) -> CompileResult:
    """The same program for another size range (a bundle's ranges), verified again for that range."""
    algo = _ranged(result.algorithm, chosen, result.buffer_bytes)
    report = _verified(algo, result.runtime, result.topology, result.buffer_bytes)
    return replace(
        result,
        lowered=replace(result.lowered, algorithm=algo),
        byte_range=chosen,
        verification=report,
        xml=to_xml(algo, runtime=result.runtime),
        notes=list(result.notes),
    )


def closest_text(rows: Sequence[SizeOutlook]) -> str:
    """Where a file that wins nowhere comes closest to the runtime's best, for the no-win message: its
    figures with the digits that tell them apart (they may agree to four)."""
    closest = max(rows, key=lambda row: (row.algbw or 0) / row.vendor_algbw)
    collc, vendor = format_pair(closest.algbw or 0, closest.vendor_algbw)
    return f"closest: {collc} vs {vendor} GB/s at {format_size(closest.nbytes)}"


def _byte_range(
    topology: Topology,
    options: CompileOptions,
    runtime: str,
    model: TopologyModel,
    best: Fitted,
    notes: list[str],
) -> tuple[ByteRange, bool]:
    """The user's range, else the sizes where the file is predicted to beat the runtime (ranges.py),
    inside the one end the user gave and starting or ending there; and whether the file wins nowhere
    there and is only written because it was forced."""
    if options.user_range:
        return ByteRange(options.min_bytes, options.max_bytes), False
    algo = best.lowered.algorithm
    given = ByteRange(options.min_bytes, options.max_bytes)

    def probe(nbytes: int) -> SizeOutlook:
        return outlook(model, algo, [nbytes], runtime, best.predictor, best.proto)[0]

    grid_rows = outlook(model, algo, grid(), runtime, best.predictor, best.proto)
    chosen, rows = predicted_range(grid_rows, runtime, probe, options.user_end, given)
    if chosen is not None:
        return at_end(_from_asked_size(chosen, algo, rows, topology.num_gpus), options.user_end, given), False
    what = f"{options.coll} on {topology.name} ({options.proto})"
    if options.force:
        notes.append(
            f"forced: the file is predicted slower than the runtime's own algorithms at every size "
            f"({what}); it takes every size"
        )
        return given, True
    predicted = outlook(model, algo, REPORT_SIZES, runtime, best.predictor, best.proto)
    unwritten = Unwritten(
        runtime=runtime,
        k=best.solution.forest.k,
        layout=best.solution.forest.layout,
        instances=best.instances,
        nchunksperloop=algo.nchunksperloop,
        buffer_bytes=best.buffer_bytes,
        bound_algbw=model.bound_algbw(options.coll),
        ceiling_algbw=model.ceiling_algbw(options.coll),
        predicted=tuple(replace(row, selected=False) for row in predicted),
        serves=serving(algo.nchunksperloop, options.coll, topology.num_gpus, options.align).describe(),
        notes=tuple(notes),
    )
    raise NoWin(
        f"collc's {what} is predicted slower than the runtime's own ring/tree at every size from "
        f"{format_size(rows[0].nbytes)} to {format_size(rows[-1].nbytes)} ({closest_text(rows)}); "
        "no file written",
        hint="keep the runtime's own algorithm; --force writes it anyway, --min-bytes with --max-bytes "
        "set the whole range yourself",
        unwritten=unwritten,
    )
