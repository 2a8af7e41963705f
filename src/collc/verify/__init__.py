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
    """Every placement the file may be selected for, each with one chunk per call (large messages,
    with data, races and postcondition) and whole steps per call (small messages, completion only)."""
    placements = [True] if algo.inplace else []
    if algo.outofplace or not placements:
        placements.append(False)
    depth = FIFO_DEPTH.get(algo.proto, 2)
    cases = []
    for inplace in placements:
        cases.append(Case(inplace, depth, 1, track_data=True))
        cases.append(Case(inplace, depth, SMALL_MESSAGE_CHUNKS, track_data=True))
    return cases


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
    rules_by_placement: dict[bool, set[str]] = {}
    for case in simulation_cases(algo):
        seen = rules_by_placement.setdefault(case.inplace, set())
        found = [p for p in simulate(algo, coll, folded, case, filename) if p.rule not in seen]
        report.problems.extend(found)
        seen.update(p.rule for p in found)
        report.notes.append(f"simulated {case}")
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
