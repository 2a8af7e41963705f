"""One assertion helper every lowering test uses: collc.verify, plus the lowering's own structural and
simulation checks (a second, independent opinion on the same rules)."""

from __future__ import annotations

from collc.lowering.limits import RuntimeLimits
from collc.msccl.program import Algorithm
from collc.topology.model import Topology
from collc.verify import verify

from .minisim import expected_ok, simulate
from .structural import structural_problems


def assert_valid(algo: Algorithm, limits: RuntimeLimits, topology: Topology | None = None) -> None:
    report = verify(algo, runtime=limits.runtime, topology=topology)
    problems = [f"verify: {p.rule}: {p.message}" for p in report.problems if p.severity == "error"]
    problems += structural_problems(algo, limits)
    modes = ([True] if algo.inplace else []) + ([False] if algo.outofplace else [])
    for inplace in modes:
        result = simulate(algo, inplace=inplace, depth=1)
        if result["deadlock"]:
            problems.append(f"deadlock (inplace={inplace})")
        if result["leftover"]:
            problems.append(f"leftover messages (inplace={inplace})")
        if result["writes_to_input"] and not inplace:
            problems.append(f"writes to i out of place: {result['writes_to_input'][:3]}")
        problems += expected_ok(algo, result, inplace=inplace)[:5]
    assert not problems, "\n".join(problems)
