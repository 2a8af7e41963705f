"""Binary min-heaps of item numbers (compiled), ordered by two arrays the caller owns.

An item is an index into ``key`` and ``tie``: it comes before another by ``key``, then by ``tie``.
The heap is ``heap[:size]``; push and pop return the new size. The event simulation keeps its
threadblocks to examine and its arrivals in such heaps (:mod:`collc.predict.des`), and the list
schedule of the lowering its ready and running operations (:mod:`collc.lowering.sequence`).
"""

from __future__ import annotations

import numpy as np

from collc.kernels import kernel


@kernel
def _before(a: int, b: int, key: np.ndarray, tie: np.ndarray) -> bool:
    """Whether item ``a`` comes before item ``b``: by ``key``, then by ``tie``."""
    return key[a] < key[b] or (key[a] == key[b] and tie[a] < tie[b])


@kernel
def heap_push(heap: np.ndarray, size: int, item: int, key: np.ndarray, tie: np.ndarray) -> int:
    """Push ``item`` onto the min-heap ``heap[:size]`` ordered by (``key``, ``tie``); the new size."""
    node = size
    heap[node] = item
    while node and _before(heap[node], heap[(node - 1) // 2], key, tie):
        parent = (node - 1) // 2
        heap[node], heap[parent] = heap[parent], heap[node]
        node = parent
    return size + 1


@kernel
def heap_pop(heap: np.ndarray, size: int, key: np.ndarray, tie: np.ndarray) -> int:
    """Remove the first item (``heap[0]``) from the min-heap ``heap[:size]``; the new size."""
    size -= 1
    heap[0] = heap[size]
    node = 0
    while True:
        child = 2 * node + 1
        if child >= size:
            break
        if child + 1 < size and _before(heap[child + 1], heap[child], key, tie):
            child += 1
        if not _before(heap[child], heap[node], key, tie):
            break
        heap[node], heap[child] = heap[child], heap[node]
        node = child
    return size
