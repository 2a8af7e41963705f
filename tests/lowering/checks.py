"""One assertion helper every lowering test uses: structure, simulation and (once present) collc.verify."""

from __future__ import annotations

from collc.lowering.limits import RuntimeLimits
from collc.msccl.program import Algorithm
from collc.topology.model import Topology

from .minisim import expected_ok, simulate
from .structural import structural_problems


def assert_valid(algo: Algorithm, limits: RuntimeLimits, topology: Topology | None = None) -> None:
    problems = structural_problems(algo, limits)
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
