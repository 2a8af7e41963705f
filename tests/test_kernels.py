"""The helpers of the compiled loops borrow their arrays (collc.kernels): compiled without numba's
reference counting, which took two thirds of the event simulation's time when it was on."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.errors import NumbaError

from collc import heaps
from collc.kernels import kernel
from collc.lowering import emit, sequence
from collc.predict import des, fairshare, tournament

#: every helper that a compiled loop calls per event or per step
HOT_HELPERS = [
    (heaps, ["_before", "heap_push", "heap_pop"]),
    (tournament, ["tree_set"]),
    (
        fairshare,
        ["_share", "_fair_into", "_tightest", "_refresh", "_leave", "_join", "_set_rate", "_share_last"],
    ),
    (des, ["_complete", "_schedule"]),
    (sequence, ["_make_ready"]),
    (emit, ["_put", "_wait_for"]),
]


@pytest.mark.parametrize(
    "module, name",
    [
        pytest.param(module, name, id=f"{module.__name__}.{name}")
        for module, names in HOT_HELPERS
        for name in names
    ],
)
def test_a_hot_helper_is_compiled_without_reference_counting(module, name):
    assert getattr(module, name).targetoptions.get("_nrt") is False


def _allocates(count):
    return np.zeros(count).sum()


def _returns_new(count):
    return np.zeros(count)


def test_a_kernel_that_allocates_or_returns_a_new_array_is_refused_when_compiled():
    for function in (_allocates, _returns_new):
        with pytest.raises(NumbaError, match=r"NRT required|returning of array passed into the function"):
            kernel(function)(3)


def test_a_kernel_works_on_the_arrays_it_borrows():
    key = np.array([5.0, 1.0, 3.0, 1.0])
    tie = np.arange(4)
    heap = np.zeros(4, dtype=np.int64)
    size = 0
    for item in range(4):
        size = heaps.heap_push(heap, size, item, key, tie)
    order = []
    while size:
        order.append(int(heap[0]))
        size = heaps.heap_pop(heap, size, key, tie)
    assert order == [1, 3, 2, 0]
