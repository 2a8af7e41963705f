"""The compile driver: topology -> solve -> lower -> verify -> predict -> choose.

It sits above the pipeline's stages and is the only place that combines them: :func:`compile_schedule`
solves the forest for each candidate k, lowers and fits it to the runtime's limits, verifies it,
simulates the written program and keeps the candidate the simulation says is fastest; it then chooses
the call sizes the file serves so that the runtime selects it only where it is predicted to beat the
runtime's own algorithms.
"""

from collc.compile.driver import CompileOptions, CompileResult, Serving, compile_schedule, serving

__all__ = ["CompileOptions", "CompileResult", "Serving", "compile_schedule", "serving"]
