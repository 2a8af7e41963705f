"""Min-tournament trees over a fixed set of items (compiled): the smallest value at the root in O(1),
one item's value changed in O(log n), and every item at most a bound listed in O(k log n).

The event simulation keeps when each flow ends in one (the next event is the root), and the fair
shares keep each arc's share of the last filling round in one (whether the level reached the copy
rate is the root).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from collc.kernels import kernel


@njit(cache=True)
def tree_of(size: int) -> np.ndarray:
    """A tree over ``size`` items, every value infinite: node 1 is the root, the children of node ``n``
    are ``2n`` and ``2n + 1``, and the items are the leaves from ``len(tree) // 2`` on."""
    leaves = 1
    while leaves < size:
        leaves *= 2
    return np.full(2 * leaves, np.inf)


@kernel
def tree_set(tree: np.ndarray, leaf: int, value: float) -> None:
    """Set a leaf of a min-tournament tree (leaves at ``len(tree) // 2 ..``) and its ancestors."""
    node = len(tree) // 2 + leaf
    tree[node] = value
    node //= 2
    while node >= 1:
        smallest = min(tree[2 * node], tree[2 * node + 1])
        if tree[node] == smallest:
            break
        tree[node] = smallest
        node //= 2


@njit(cache=True)
def tree_at_most(tree: np.ndarray, bound: float, out: np.ndarray) -> int:
    """The leaves whose value is at most ``bound``, in increasing order, into ``out``; how many."""
    half = len(tree) // 2
    count = 0
    stack = np.empty(64, dtype=np.int64)
    stack[0] = 1
    depth = 1
    while depth:
        depth -= 1
        node = stack[depth]
        if tree[node] > bound:
            continue
        if node >= half:
            out[count] = node - half
            count += 1
        else:  # right first, so that the left child is popped first
            stack[depth] = 2 * node + 1
            stack[depth + 1] = 2 * node
            depth += 2
    return count


@njit(cache=True)
def tree_fill(tree: np.ndarray, values: np.ndarray) -> None:
    """Set every item's value at once (the items past ``len(values)`` become infinite)."""
    half = len(tree) // 2
    tree[half:] = np.inf
    tree[half : half + len(values)] = values
    for node in range(half - 1, 0, -1):
        tree[node] = min(tree[2 * node], tree[2 * node + 1])
