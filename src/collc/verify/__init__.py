"""``collc verify``: lint and simulate any MSCCL XML program before it reaches a GPU.

:func:`verify` checks an :class:`~collc.msccl.program.Algorithm` (from the lowering or the reader);
:func:`verify_text` also applies the runtime parser's lexical rules to the raw text; :func:`explain`
says whether the runtime would select the file for a given call. docs/verify.md lists every rule.
"""

from __future__ import annotations

import dataclasses
import math
import re

from collc.errors import InputError, Location
from collc.msccl.program import TARGET_RUNTIMES, Algorithm, recorded_buffer
from collc.msccl.reader import XmlSyntaxError, read_xml_with_notes
from collc.progress import Report, silent
from collc.sizes import format_size
from collc.topology.model import Topology
from collc.verify.calls import CallModel, call_model, describe_sizes
from collc.verify.collective import CHECKED_COLLECTIVES, real_sizes
from collc.verify.fold import Transmission, fold_threadblock
from collc.verify.lint import BLOCKS_SIMULATION, lint
from collc.verify.report import Problem, Tally, VerifyReport
from collc.verify.runtimes import PROFILES, RuntimeProfile, profile
from collc.verify.select import Selection, explain
from collc.verify.simulate import Case, Simulator, simulate

__all__ = [
    "PROFILES",
    "Problem",
    "Selection",
    "Verification",
    "VerifyReport",
    "declared_runtime",
    "explain",
    "explain_call",
    "simulation_cases",
    "verifiable_threadblocks",
    "verify",
    "verify_text",
]


#: chunks of all ranks' buffers the simulation tracks symbolically: an out-of-place allgather or
#: reduce-scatter holds (N + 1)·N·k chunks, so 1,024 GPUs need more than 2^20 (docs/verify.md, Limits)
MAX_SIMULATED_CHUNKS = 2**21
#: threadblocks × ranks: happens-before is decided by replaying the run's joins once per group of ranks,
#: each live threadblock holding a block per rank of the group (collc.verify.order), so the time grows
#: with this product; collc's 1,024-GPU allgather has 124,416 threadblocks (127 M of these)
MAX_SIMULATED_CLOCK_ENTRIES = 2**27


def verifiable_threadblocks(num_ranks: int) -> int:
    """The most threadblocks per rank that keep a file of ``num_ranks`` ranks within
    :data:`MAX_SIMULATED_CLOCK_ENTRIES` (threadblocks of all ranks × ranks): a limit on what compile
    may write, since it writes nothing the verifier has not passed. Binds from 1,025 ranks on."""
    return MAX_SIMULATED_CLOCK_ENTRIES // max(num_ranks, 1) ** 2


def _check_simulation_size(algo: Algorithm, coll: str, filename: str | None) -> None:
    """Refuse, before any allocation, a program whose simulation would exceed the limits above."""
    sizes = real_sizes(coll, algo.nchunksperloop, algo.ngpus) or (0, 0)
    chunks = sum(sizes[0] + sizes[1] + max(gpu.s_chunks, 0) for gpu in algo.gpus)
    threadblocks = sum(len(gpu.tbs) for gpu in algo.gpus)
    where = Location(filename, algo.line) if filename is not None or algo.line is not None else None
    if chunks > MAX_SIMULATED_CHUNKS:
        raise InputError(
            f"the ranks' buffers hold {chunks:,} chunks in all; collc simulates at most "
            f"{MAX_SIMULATED_CHUNKS:,} (nchunksperloop={algo.nchunksperloop} on {len(algo.gpus)} rank(s))",
            location=where,
            hint="use fewer chunks per loop: the runtime walks a chunk in pieces, a few large ones do",
        )
    if threadblocks * len(algo.gpus) > MAX_SIMULATED_CLOCK_ENTRIES:
        raise InputError(
            f"the file has {threadblocks:,} threadblocks on {len(algo.gpus):,} rank(s); collc simulates at "
            f"most {MAX_SIMULATED_CLOCK_ENTRIES:,} threadblocks × ranks (happens-before keeps a block per "
            "rank for every threadblock, a group of ranks at a time)",
            location=where,
            hint="the runtimes use at most 128 (executor) or 64 (RCCL) threadblocks per rank",
        )


def declared_sizes(algo: Algorithm, runtime_profile: RuntimeProfile) -> tuple[int, int | None]:
    """The nBytes the file may be selected for: (first, last), last None when unbounded. A range
    that selects nothing (warned about as ``size-range``) is checked at every size."""
    first = max(algo.min_bytes, 1)
    last = algo.max_bytes if algo.max_bytes > 0 else None
    if last is not None and not runtime_profile.max_bytes_inclusive:
        last -= 1
    if last is not None and last < first:
        return 1, None
    return first, last


def _placements(algo: Algorithm) -> tuple[bool, ...]:
    placements = [True] if algo.inplace else []
    if algo.outofplace or not placements:
        placements.append(False)
    return tuple(placements)


def _label(model: CallModel, chunks: int, first: int, last: int | None) -> str:
    """The sizes of the declared range ``[first, last]`` whose calls carry ``chunks`` chunks."""
    low, high = model.sizes(chunks)
    return describe_sizes(max(low, first), high if last is None else min(last, high or last))


def simulation_cases(
    algo: Algorithm, model: CallModel | None = None, runtime: str = "msccl-executor"
) -> list[Case]:
    """The largest calls of the declared range (fewest chunks per call: the finest interleaving, the
    weakest happens-before) with symbolic data and races for every placement the file may be selected
    for, and the smallest calls for completion. A race-free program computes the same data whatever
    the call size. An unbounded range starts at one chunk per call, the worst case."""
    runtime_profile = profile(runtime)
    model = model or call_model(runtime_profile, algo.proto, algo.nchunksperloop)
    first, last = declared_sizes(algo, runtime_profile)
    largest = 1 if last is None else model.chunks_per_call(last)
    smallest = model.chunks_per_call(first)
    if _distinct_calls(algo, smallest) == _distinct_calls(algo, largest):
        every = largest == 1 and last is None and first == 1
        return [Case(model.depth, largest, _placements(algo), "" if every else describe_sizes(first, last))]
    return [
        Case(model.depth, largest, _placements(algo), _label(model, largest, first, last)),
        Case(model.depth, smallest, (), _label(model, smallest, first, last)),
    ]


def _distinct_calls(algo: Algorithm, chunks: int) -> int:
    """Runs with ``chunks`` per call behave the same once no step has more chunks than that."""
    return min(chunks, max((step.cnt for gpu in algo.gpus for tb in gpu.tbs for step in tb.steps), default=1))


class _Deadlocks:
    """Completion runs (no data) at a given number of chunks per call, each run once."""

    def __init__(self, algo: Algorithm, coll: str, folded, model: CallModel, filename: str | None):
        self.algo, self.coll, self.folded, self.model, self.filename = algo, coll, folded, model, filename
        self.runs: dict[int, Problem | None] = {}

    def at(self, chunks: int) -> Problem | None:
        """The deadlock of calls carrying ``chunks`` chunks, or None when they complete."""
        key = _distinct_calls(self.algo, chunks)
        if key not in self.runs:
            low, high = self.model.sizes(key)
            sizes = describe_sizes(low if key == chunks else 1, high)
            case = Case(self.model.depth, key, (), sizes)
            problems = simulate(self.algo, self.coll, self.folded, case, self.filename)
            self.runs[key] = next((p for p in problems if p.rule == "deadlock"), None)
        return self.runs[key]

    def largest_deadlocking(self, low: int, high: int) -> int:
        """The most chunks per call in ``[low, high)`` that deadlock, given that ``low`` does and
        ``high`` does not (bisection: more chunks per call only adds room in the FIFOs)."""
        while high - low > 1:
            middle = (low + high) // 2
            if self.at(middle) is not None:
                low = middle
            else:
                high = middle
        return low


def _size_limit(deadlocks: _Deadlocks, chunks: int, below: int) -> tuple[int, Problem]:
    """The largest safe nBytes and the deadlock just above it, given that calls of ``chunks`` chunks
    deadlock and calls of ``below`` chunks do not."""
    worst = deadlocks.largest_deadlocking(chunks, below)
    limit = deadlocks.model.largest_call(worst + 1)
    return limit, deadlocks.at(worst)  # type: ignore[return-value]


def verify(
    algo: Algorithm,
    *,
    runtime: str = "msccl-executor",
    topology: Topology | None = None,
    filename: str | None = None,
    buffer_bytes: int | None = None,
    progress: Report = silent,
) -> VerifyReport:
    """Lint ``algo`` for ``runtime`` and, unless a lint error makes it meaningless, simulate it over
    the call sizes the file declares (``buffer_bytes``: the connection buffer of its protocol, default
    the runtime's); ``progress`` hears how far each simulated case is."""
    verification = Verification(
        algo,
        runtime=runtime,
        topology=topology,
        filename=filename,
        buffer_bytes=buffer_bytes,
        progress=progress,
    )
    verification.advance()
    return verification.report


class Verification:
    """:func:`verify` in slices: the lint when made, then the simulated cases one after the other, each
    run until a deadline passes and resumed where it stopped (:meth:`Simulator.run`), then the size
    limit. A compile service runs it between other jobs' steps (one case takes seconds at 128 GPUs).

    It holds a live simulation, which cannot be pickled: a compile handed to another process drops it
    and verifies from the start there (:class:`collc.compile.driver.CompileState`).
    """

    def __init__(
        self,
        algo: Algorithm,
        *,
        runtime: str = "msccl-executor",
        topology: Topology | None = None,
        filename: str | None = None,
        buffer_bytes: int | None = None,
        progress: Report = silent,
    ):
        self.algo, self.filename, self.progress = algo, filename, progress
        self.runtime_profile = profile(runtime)
        self.report = VerifyReport(filename=filename, runtime=runtime)
        self.folded: dict[tuple[int, int], list[Transmission]] = {
            (gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs
        }
        self.report.problems.extend(
            lint(algo, self.runtime_profile, self.folded, topology=topology, filename=filename)
        )
        self.cases: list[Case] = []
        self.seen: set[str] = set()
        self.simulator: Simulator | None = None
        self.done = False
        blocking = sorted({p.rule for p in self.report.errors if p.rule in BLOCKS_SIMULATION})
        if blocking:
            self.report.notes.append(f"simulation skipped because of {', '.join(blocking)}")
            self.done = True
            return
        self.coll = self.runtime_profile.collectives.get(algo.coll, algo.coll)
        if self.coll not in CHECKED_COLLECTIVES:
            self.report.notes.append(f"data not checked: no postcondition is known for {self.coll}")
        _check_simulation_size(algo, self.coll, filename)
        model = call_model(self.runtime_profile, algo.proto, algo.nchunksperloop, buffer_bytes)
        self.deadlocks = _Deadlocks(algo, self.coll, self.folded, model, filename)
        self.cases = simulation_cases(algo, model, runtime)

    def advance(self, deadline: float = math.inf) -> bool:
        """Go on until the report is complete (True) or ``deadline`` (a :func:`time.perf_counter`
        reading) has passed (False: call again to go on)."""
        while not self.done:
            if not self.cases:
                _note_size_limit(self.report, self.algo, self.runtime_profile, self.deadlocks)
                self.done = True
                break
            case = self.cases[0]
            if self.simulator is None:
                self.simulator = Simulator(
                    self.algo, self.coll, self.folded, case, self.filename, self.progress
                )
            problems = self.simulator.run(deadline)
            if problems is None:
                return False
            self.simulator.release()
            self.simulator = None
            self.cases.pop(0)
            self._record(case, problems)
        return True

    def _record(self, case: Case, problems: list[Problem]) -> None:
        """A finished case: its deadlock (for the size limit), its problems of rules not reported yet,
        and a note of what was simulated."""
        self.deadlocks.runs.setdefault(
            _distinct_calls(self.algo, case.call_chunks),
            next((p for p in problems if p.rule == "deadlock"), None),
        )
        found = [p for p in problems if p.rule not in self.seen]
        self.report.problems.extend(found)
        self.seen.update(p.rule for p in found)
        placements = " and ".join("in-place" if inplace else "out-of-place" for inplace in case.placements)
        self.report.notes.append(
            f"simulated {case}" + (f", data and races {placements}" if placements else "")
        )


def explain_call(
    algo: Algorithm,
    *,
    nranks: int,
    nbytes: int,
    dtype_size: int,
    inplace: bool,
    runtime: str = "msccl-executor",
    buffer_bytes: int | None = None,
) -> Selection:
    """:func:`explain`, plus how the runtime cuts this call into primitive calls and whether a call of
    this size completes (the size-aware model of :func:`verify`, for one call)."""
    selection = explain(
        algo, nranks=nranks, nbytes=nbytes, dtype_size=dtype_size, inplace=inplace, runtime=runtime
    )
    runtime_profile = profile(runtime)
    model = call_model(runtime_profile, algo.proto, algo.nchunksperloop, buffer_bytes)
    chunks = model.chunks_per_call(nbytes)
    selection.details.append(
        f"{chunks} chunk(s) per primitive call (a call carries at most {model.call_bytes} bytes; "
        f"a connection holds {model.depth} calls)"
    )
    coll = runtime_profile.collectives.get(algo.coll, algo.coll)
    folded = {(gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs}
    problem = _Deadlocks(algo, coll, folded, model, None).at(chunks)
    if problem is not None:
        selection.deadlock = problem.message.removeprefix("deadlock: ")
    return selection


def _note_size_limit(
    report: VerifyReport, algo: Algorithm, runtime_profile: RuntimeProfile, deadlocks: _Deadlocks
) -> None:
    """Where the verdict depends on the call size, say up to which size the file is safe: in the
    deadlock message when the declared range reaches past it, as a note when only larger calls than
    the file declares would deadlock."""
    model = deadlocks.model
    first, last = declared_sizes(algo, runtime_profile)
    largest = 1 if last is None else model.chunks_per_call(last)
    smallest = model.chunks_per_call(first)
    if deadlocks.at(smallest) is not None:
        return  # deadlocks at every size the file declares
    if deadlocks.at(largest) is not None:
        limit, _ = _size_limit(deadlocks, largest, smallest)
        index = next(i for i, p in enumerate(report.problems) if p.rule == "deadlock")
        declared = f"maxBytes={algo.max_bytes}" if algo.max_bytes else "no maxBytes (every size)"
        problem = report.problems[index]
        report.problems[index] = dataclasses.replace(
            problem,
            message=f"safe up to {limit} bytes ({format_size(limit)}) per call, but the file declares "
            f"{declared}; a larger call deadlocks: {problem.message.removeprefix('deadlock: ')}",
            hint=f"set maxBytes to at most {limit}, or make the exchange fit the FIFO ({model.depth} calls)",
        )
        return
    if largest > 1 and deadlocks.at(1) is not None:
        limit, problem = _size_limit(deadlocks, 1, largest)
        report.notes.append(
            f"safe up to {limit} bytes ({format_size(limit)}) per call (the file declares at most {last}); "
            f"a call above that would {problem.message[0].lower()}{problem.message[1:]}"
        )


#: the ``runtime`` attribute of ``<algo>`` that collc writes (the runtimes' parsers look attributes up
#: by name and ignore the others, as they ignore msccl-tools' ``maxcount`` and ``nthreadblocks``)
_DECLARED_RUNTIME = re.compile(r'<algo\b[^>]*?\sruntime="([^"]*)"')


def declared_runtime(text: str) -> str | None:
    """The runtime the file says it was written for (``<algo … runtime="rccl">``), if any."""
    start = text.find("<algo")
    if start < 0:
        return None
    end = text.find(">", start)
    match = _DECLARED_RUNTIME.match(text, start, end + 1 if end >= 0 else len(text))
    return match.group(1) if match else None


def deployed_buffer(algo: Algorithm, given: int | None) -> int | None:
    """The connection buffer ``algo`` runs with: ``given``, else for a Simple file the NCCL_BUFFSIZE its
    name records (:func:`collc.msccl.program.recorded_buffer`), else None (the runtime's default)."""
    if given is not None or algo.proto != "Simple":
        return given
    return recorded_buffer(algo.name)


def verify_text(
    text: str,
    filename: str = "<input>",
    *,
    runtime: str | None = None,
    topology: Topology | None = None,
    buffer_bytes: int | None = None,
    progress: Report = silent,
) -> VerifyReport:
    """As :func:`verify`, on raw XML text: a lexical error the runtime's parser would reject becomes
    the report's only problem (the rest cannot be checked). Without ``runtime``, the file's declared
    runtime applies, else msccl-executor."""
    notes = []
    if runtime is None:
        declared = declared_runtime(text)
        if declared is not None and declared not in TARGET_RUNTIMES:
            notes.append(
                f'the file declares runtime="{declared}", which collc does not know; using msccl-executor'
            )
            declared = None
        runtime = declared or "msccl-executor"
        if declared:
            notes.append(f"runtime {declared}: declared by the file")
    profile(runtime)
    try:
        algo, reader_notes = read_xml_with_notes(text, filename, runtime=runtime)
    except XmlSyntaxError as error:
        if error.rule == "input-limit":
            raise  # beyond what collc reads at all: bad input (exit 2), not a verdict on the file
        problem = Problem(error.rule, "error", error.message, error.location, error.hint)
        return VerifyReport(filename=filename, runtime=runtime, problems=[problem], notes=notes)
    if buffer_bytes is None and (recorded := deployed_buffer(algo, None)) is not None:
        buffer_bytes = recorded
        notes.append(f"NCCL_BUFFSIZE={recorded}: the buffer the file's name records (--buffsize overrides)")
    report = verify(
        algo,
        runtime=runtime,
        topology=topology,
        filename=filename,
        buffer_bytes=buffer_bytes,
        progress=progress,
    )
    tally = Tally()  # what the parser ignores, listed as the lint lists its problems
    ignored = [
        Problem(note.rule, "warning", note.message, note.location)
        for note in reader_notes
        if tally.admit(note.rule, "warning")
    ]
    report.problems[:0] = ignored + tally.summaries()
    report.notes[:0] = notes
    report.algorithm = algo
    return report
