"""``collc verify``: lint and simulate any MSCCL XML program before it reaches a GPU (issue 4).

:func:`verify` checks an :class:`~collc.msccl.program.Algorithm` (from the lowering or the reader);
:func:`verify_text` also applies the runtime parser's lexical rules to the raw text; :func:`explain`
says whether the runtime would select the file for a given call. docs/verify.md lists every rule.
"""

from __future__ import annotations

from collc.msccl.program import Algorithm
from collc.msccl.reader import XmlSyntaxError, read_xml_with_notes
from collc.topology.model import Topology
from collc.verify.collective import CHECKED_COLLECTIVES
from collc.verify.fold import Transmission, fold_threadblock
from collc.verify.lint import BLOCKS_SIMULATION, lint
from collc.verify.report import Problem, VerifyReport
from collc.verify.runtimes import PROFILES, profile
from collc.verify.select import Selection, explain
from collc.verify.simulate import Case, simulate

__all__ = [
    "PROFILES",
    "Problem",
    "Selection",
    "VerifyReport",
    "explain",
    "simulation_cases",
    "verify",
    "verify_text",
]

#: FIFO depth in primitive calls per protocol (§4.4): Simple advances 4 of 8 slots per call
FIFO_DEPTH = {"Simple": 2, "LL": 8, "LL128": 8}
#: chunks per call in the small-message case: MSCCL_MAX_COUNT - 1 (§3.1)
SMALL_MESSAGE_CHUNKS = 71


def simulation_cases(algo: Algorithm) -> list[Case]:
    """One chunk per call (large messages) with symbolic data and races for every placement the file
    may be selected for, and whole steps per call (small messages) for completion. Control flow does
    not depend on data, so one run serves all placements; a race-free program computes the same data
    whatever the call size, and one chunk per call is the finest interleaving (the weakest
    happens-before), so races and data are checked there."""
    placements = [True] if algo.inplace else []
    if algo.outofplace or not placements:
        placements.append(False)
    depth = FIFO_DEPTH.get(algo.proto, 2)
    return [Case(depth, 1, tuple(placements)), Case(depth, SMALL_MESSAGE_CHUNKS)]


def verify(
    algo: Algorithm,
    *,
    runtime: str = "msccl-executor",
    topology: Topology | None = None,
    filename: str | None = None,
) -> VerifyReport:
    """Lint ``algo`` for ``runtime`` and, unless a lint error makes it meaningless, simulate it."""
    runtime_profile = profile(runtime)
    report = VerifyReport(filename=filename, runtime=runtime)
    folded: dict[tuple[int, int], list[Transmission]] = {
        (gpu.id, tb.id): fold_threadblock(tb) for gpu in algo.gpus for tb in gpu.tbs
    }
    report.problems.extend(lint(algo, runtime_profile, folded, topology=topology, filename=filename))
    blocking = sorted({p.rule for p in report.errors if p.rule in BLOCKS_SIMULATION})
    if blocking:
        report.notes.append(f"simulation skipped because of {', '.join(blocking)}")
        return report
    coll = runtime_profile.collectives.get(algo.coll, algo.coll)
    if coll not in CHECKED_COLLECTIVES:
        report.notes.append(f"data not checked: no postcondition is known for {coll}")
    seen: set[str] = set()
    for case in simulation_cases(algo):
        found = [p for p in simulate(algo, coll, folded, case, filename) if p.rule not in seen]
        report.problems.extend(found)
        seen.update(p.rule for p in found)
        placements = " and ".join("in-place" if inplace else "out-of-place" for inplace in case.placements)
        report.notes.append(f"simulated {case}" + (f", data and races {placements}" if placements else ""))
    return report


def verify_text(
    text: str,
    filename: str = "<input>",
    *,
    runtime: str = "msccl-executor",
    topology: Topology | None = None,
) -> VerifyReport:
    """As :func:`verify`, on raw XML text: a lexical error the runtime's parser would reject becomes
    the report's only problem (the rest cannot be checked)."""
    profile(runtime)
    try:
        algo, notes = read_xml_with_notes(text, filename, runtime=runtime)
    except XmlSyntaxError as error:
        problem = Problem(error.rule, "error", error.message, error.location, error.hint)
        return VerifyReport(filename=filename, runtime=runtime, problems=[problem])
    report = verify(algo, runtime=runtime, topology=topology, filename=filename)
    report.problems[:0] = [Problem(note.rule, "warning", note.message, note.location) for note in notes]
    return report
