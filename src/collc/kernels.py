"""How the helpers of collc's compiled loops are compiled: without numba's reference counting.

A numba function that takes arrays increfs each of them when it starts and decrefs it when it returns,
an atomic operation on the array's shared counter each, unless the compiler can prove the pair
useless. A helper that a compiled loop calls for every event (a heap push, a flow's new rate) and that
takes a record of arrays (:class:`collc.predict.fairshare.Shares` holds 15) pays dozens of them per
call. In the event simulation of a 128-GPU program that was two thirds of its time: 1.24 s per run
of 4 iterations with the counting, 0.38 s without (same end times to the last bit).

:data:`kernel` compiles a helper with numba's runtime left out (``_nrt=False``): it only borrows the
arrays its caller holds. Such a helper must neither allocate nor return nor keep a new array; numba
refuses to compile one that does ("NRT required but not enabled", "Only accept returning of array
passed into the function as argument"), so the rule is checked where it is written. Functions that
allocate (the loops themselves, a fill from scratch) keep the default.
"""

from __future__ import annotations

from numba import njit

#: decorator of a compiled helper that only borrows arrays (module docstring)
kernel = njit(cache=True, _nrt=False)
