"""Stage 5: lowering a forest to a per-GPU MSCCL program, and ``compile_schedule`` (issue 5).

``lower(forest, options, limits)`` turns a solved forest into a fitted :class:`Algorithm`;
``compile_schedule(topology, options)`` solves, chooses k, lowers and verifies. docs/lowering.md
describes the stages, the layout, the channel rule and why the step order cannot deadlock.
"""

from collc.lowering.compile import CompileOptions, CompileResult, Serving, compile_schedule, report_lines
from collc.lowering.limits import RuntimeLimits, Usage, limits_for, runtime_limits, usage
from collc.lowering.lower import DoesNotFit, Lowered, LoweringOptions, coll_algbw, lower

__all__ = [
    "CompileOptions",
    "CompileResult",
    "DoesNotFit",
    "Lowered",
    "LoweringOptions",
    "RuntimeLimits",
    "Serving",
    "Usage",
    "coll_algbw",
    "compile_schedule",
    "limits_for",
    "lower",
    "report_lines",
    "runtime_limits",
    "usage",
]
