"""Stage 5: lowering a forest to a per-GPU MSCCL program.

``lower(forest, options, limits)`` turns a solved forest into a fitted :class:`Algorithm`.
docs/lowering.md describes the stages, the layout, the channel rule and why the step order cannot
deadlock. The driver that solves, lowers, verifies, predicts and chooses is :mod:`collc.compile`.
"""

from collc.lowering.limits import RuntimeLimits, Usage, limits_for, runtime_limits, usage
from collc.lowering.lower import DoesNotFit, Lowered, LoweringOptions, coll_algbw, lower

__all__ = [
    "DoesNotFit",
    "Lowered",
    "LoweringOptions",
    "RuntimeLimits",
    "Usage",
    "coll_algbw",
    "limits_for",
    "lower",
    "runtime_limits",
    "usage",
]
