"""Max-min fair rates of flows that share arcs, kept up to date as flows come and go (compiled).

The event simulation (:mod:`collc.predict.des`) asks for new rates every time a send starts or drains:
a 1 GiB call of a 128-GPU program does that about a million times. Progressive filling: raise every
unfrozen flow's rate together until an arc is full, freeze the flows through it, repeat. Every flow
also crosses a private arc of capacity ``cap`` (its threadblock's copy rate), so once the common level
reaches ``cap`` every unfrozen flow freezes at ``cap``. After :data:`MAX_FILL_ROUNDS` levels the
remaining flows get their fair share at their tightest arc (or ``cap``), which never exceeds a
capacity (a slight underestimate of their max-min rates).

The state of every round is kept, so that a flow of the last round can leave, and a flow can join,
without filling again: a leaving flow of the last round never crossed a full arc, and a joining flow
that keeps every earlier round's arcs above that round's level (and, where the last round stopped at
``cap``, at or above ``cap``) changes no earlier round, so only the last round's shares are
recomputed. Otherwise the rounds are filled again from the first one a leaving or joining flow changes,
the earlier ones kept (:func:`update`): in the event simulation of a 2x16 MI250 program about 40 % of
the time went to filling, and 86 % of the fills it made from scratch can keep at least the first round. The
arithmetic is the same as filling from scratch, so the rates are identical to the last bit
(tests/predict/test_des_regression.py checks it against filling from scratch).

The functions are compiled with numba (``cache=True``: once per installation) and work on
:class:`Shares`, a record of plain arrays, so that the simulation's compiled loop can call them too;
the ones it calls per flow borrow the record's arrays (:mod:`collc.kernels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from collc.kernels import kernel
from collc.predict.tournament import tree_fill, tree_of, tree_set

MAX_FILL_ROUNDS = 6
_LEVEL_SLACK = 1 + 1e-12  # an arc within this factor of the level is full


class Shares(NamedTuple):
    """Flows over arcs and the filling state (every field an array, so compiled code can take it).

    ``arc_ptr``/``arc_idx``: the arcs of flow ``f`` are ``arc_idx[arc_ptr[f]:arc_ptr[f + 1]]``;
    ``on_ptr``/``on_idx``: the flows that cross arc ``a``, likewise. ``counts[r]`` and
    ``capacity[r]``: per arc, the unfrozen flows and the capacity the frozen ones left at the start of
    round ``r``; ``levels[r]``: the level round ``r`` froze at. ``meta``: [rounds filled (the last
    round is ``meta[0]``), whether the last round stopped at ``cap``].
    """

    arc_ptr: np.ndarray
    arc_idx: np.ndarray
    on_ptr: np.ndarray
    on_idx: np.ndarray
    bandwidth: np.ndarray
    cap: np.ndarray  # shape (1,): the copy rate of one threadblock
    rate: np.ndarray
    last: np.ndarray  # active and unfrozen in the last round
    counts: np.ndarray
    capacity: np.ndarray
    levels: np.ndarray
    meta: np.ndarray
    scratch: np.ndarray  # per arc, for filling
    fair: np.ndarray  # per arc, its share in the last round: a tournament tree (the smallest at the root)
    seen: np.ndarray  # per flow, to report each changed flow once
    frozen: np.ndarray  # per active flow: the round it froze in (the last round's flows: the last round)


def shares_of(routes: Sequence[Sequence[int]], bandwidth: np.ndarray, cap: float) -> Shares:
    """The state for flows crossing ``routes[f]`` (arc indices into ``bandwidth``), none active yet.

    A route must not repeat an arc (paths never loop).
    """
    num_arcs = len(bandwidth)
    arc_ptr = np.zeros(len(routes) + 1, dtype=np.int64)
    arc_ptr[1:] = np.cumsum([len(route) for route in routes])
    arc_idx = np.array([a for route in routes for a in route], dtype=np.int64)
    flow_of = np.repeat(np.arange(len(routes), dtype=np.int64), np.diff(arc_ptr))
    order = np.argsort(arc_idx, kind="stable")
    on_ptr = np.searchsorted(arc_idx[order], np.arange(num_arcs + 1)).astype(np.int64)
    return Shares(
        arc_ptr=arc_ptr,
        arc_idx=arc_idx,
        on_ptr=on_ptr,
        on_idx=flow_of[order],
        bandwidth=np.asarray(bandwidth, dtype=np.float64),
        cap=np.array([cap], dtype=np.float64),
        rate=np.zeros(len(routes)),
        last=np.zeros(len(routes), dtype=np.bool_),
        counts=np.zeros((MAX_FILL_ROUNDS + 1, num_arcs)),
        capacity=np.zeros((MAX_FILL_ROUNDS + 1, num_arcs)),
        levels=np.zeros(MAX_FILL_ROUNDS),
        meta=np.array([0, 1], dtype=np.int64),
        scratch=np.zeros(num_arcs),
        fair=tree_of(num_arcs),
        seen=np.zeros(len(routes), dtype=np.bool_),
        frozen=np.zeros(len(routes), dtype=np.int64),
    )


@kernel
def _share(capacity: float, count: float) -> float:
    """An arc's fair share: its capacity over its unfrozen flows (infinite without any)."""
    return capacity / count if count > 0 else np.inf


@kernel
def _fair_into(out: np.ndarray, capacity: np.ndarray, counts: np.ndarray) -> float:
    """Each arc's fair share into ``out``; the smallest one."""
    level = np.inf
    for a in range(len(out)):
        share = _share(capacity[a], counts[a])
        out[a] = share
        if share < level:
            level = share
    return level


@kernel
def _tightest(s: Shares, flow: int, fair: np.ndarray) -> float:
    """The flow's fair share at its tightest arc (``fair``: per arc), at most ``cap``."""
    share = np.inf
    for p in range(s.arc_ptr[flow], s.arc_ptr[flow + 1]):
        share = min(share, fair[s.arc_idx[p]])
    return min(share, s.cap[0])


@kernel
def _refresh(s: Shares, flow: int) -> None:
    """The last round's share of the flow's arcs, after their counts changed."""
    rounds = s.meta[0]
    for p in range(s.arc_ptr[flow], s.arc_ptr[flow + 1]):
        a = s.arc_idx[p]
        tree_set(s.fair, a, _share(s.capacity[rounds, a], s.counts[rounds, a]))


@njit(cache=True)
def fill(s: Shares, active: np.ndarray) -> None:
    """Fill from scratch: the rates of the flows ``active`` and the state of every round."""
    _fill_from(s, active, 0)


@njit(cache=True)
def _fill_from(s: Shares, active: np.ndarray, start: int) -> None:
    """Fill again from round ``start`` on (from scratch where it is 0), the rounds before it kept.

    Kept rounds are those no flow that left or joined could change (:func:`update`): their levels,
    frozen flows and leftover capacities stay, ``s.counts[start]`` counts the unfrozen flows of the
    new active set, and a flow of ``active`` is unfrozen there where ``s.frozen`` is at least
    ``start``. The rounds from ``start`` on are computed exactly as a fill from scratch computes them.
    """
    cap = s.cap[0]
    fair = s.scratch
    live = np.ones(len(active), dtype=np.bool_)
    if start == 0:
        counts = np.zeros(len(s.bandwidth))
        for f in active:
            for p in range(s.arc_ptr[f], s.arc_ptr[f + 1]):
                counts[s.arc_idx[p]] += 1.0
        capacity = s.bandwidth.copy()
        s.counts[0, :] = counts
        s.capacity[0, :] = capacity
    else:
        counts = s.counts[start].copy()
        capacity = s.capacity[start].copy()
        for j in range(len(active)):
            live[j] = s.frozen[active[j]] >= start
    hit = np.zeros(len(active), dtype=np.bool_)
    rounds = start
    level = np.inf
    for round_ in range(start, MAX_FILL_ROUNDS):
        level = _fair_into(fair, capacity, counts)
        if level >= cap:  # also when every flow is frozen (then the level is infinite)
            for j in range(len(active)):
                if live[j]:
                    s.rate[active[j]] = cap
            break
        if round_ == MAX_FILL_ROUNDS - 1:  # the rest: each its fair share at its tightest arc (feasible)
            for j in range(len(active)):
                if live[j]:
                    s.rate[active[j]] = _tightest(s, active[j], fair)
            break
        # Every flow through a full arc freezes, so a full arc has no unfrozen flow left and the others
        # keep a positive capacity.
        full = level * _LEVEL_SLACK
        for j in range(len(active)):
            hit[j] = False
            if live[j]:
                f = active[j]
                for p in range(s.arc_ptr[f], s.arc_ptr[f + 1]):
                    if fair[s.arc_idx[p]] <= full:
                        hit[j] = True
                        break
        freed = np.zeros(len(counts))
        for j in range(len(active)):
            if hit[j]:
                f = active[j]
                s.rate[f] = level
                s.frozen[f] = rounds
                live[j] = False
                for p in range(s.arc_ptr[f], s.arc_ptr[f + 1]):
                    freed[s.arc_idx[p]] += 1.0
        for a in range(len(counts)):
            counts[a] -= freed[a]
            capacity[a] -= level * freed[a]
        s.levels[rounds] = level
        rounds += 1
        s.counts[rounds, :] = counts
        s.capacity[rounds, :] = capacity
    s.meta[0] = rounds
    s.meta[1] = 1 if level >= cap else 0
    tree_fill(s.fair, fair)  # computed from the last round's counts and capacity
    s.last[:] = False
    for j in range(len(active)):
        if live[j]:
            s.last[active[j]] = True
            s.frozen[active[j]] = rounds


@kernel
def _leave(s: Shares, flow: int) -> bool:
    if not s.last[flow]:
        return False
    _count(s, flow, s.meta[0], -1.0)
    _refresh(s, flow)
    s.last[flow] = False
    return True


@kernel
def _join(s: Shares, flow: int) -> bool:
    rounds = s.meta[0]
    if _first_full(s, flow, rounds) < rounds:
        return False
    if s.meta[1]:
        for p in range(s.arc_ptr[flow], s.arc_ptr[flow + 1]):
            a = s.arc_idx[p]
            if not s.capacity[rounds, a] / (s.counts[rounds, a] + 1.0) >= s.cap[0]:
                return False
    _count(s, flow, rounds, 1.0)
    _refresh(s, flow)
    s.last[flow] = True
    s.frozen[flow] = rounds
    return True


@kernel
def _count(s: Shares, flow: int, top: int, change: float) -> None:
    """Add ``change`` to the unfrozen count of the flow's arcs in rounds 0 to ``top``."""
    for r in range(top + 1):
        for p in range(s.arc_ptr[flow], s.arc_ptr[flow + 1]):
            s.counts[r, s.arc_idx[p]] += change


@kernel
def _first_full(s: Shares, flow: int, before: int) -> int:
    """The first round before ``before`` in which the flow would fill one of its arcs to that round's
    level, which changes the round; ``before`` if none would."""
    for r in range(before):
        for p in range(s.arc_ptr[flow], s.arc_ptr[flow + 1]):
            a = s.arc_idx[p]
            if not s.capacity[r, a] / (s.counts[r, a] + 1.0) > s.levels[r] * _LEVEL_SLACK:
                return r
    return before


@kernel
def _set_rate(s: Shares, flow: int, rate: float, changed: np.ndarray, num_changed: int) -> int:
    """Give ``flow`` its ``rate``; append it to ``changed`` (once) if that changed it."""
    if rate != s.rate[flow]:
        s.rate[flow] = rate
        if not s.seen[flow]:
            s.seen[flow] = True
            changed[num_changed] = flow
            num_changed += 1
    return num_changed


@kernel
def _share_last(s: Shares, moved: np.ndarray, changed: np.ndarray) -> int:
    """The rates of the last round's flows after the flows ``moved`` left or joined it; writes the
    flows whose rate changed to ``changed`` and returns how many.

    Only the arcs of the moved flows changed their counts, so only flows that cross one of them can
    change rate (unless the level now reaches the cap, which lifts every last-round flow).
    """
    cap = s.cap[0]
    num_changed = 0
    if s.meta[1]:
        for f in moved:
            if s.last[f]:
                num_changed = _set_rate(s, f, cap, changed, num_changed)
    else:
        fair = s.fair[len(s.fair) // 2 :]  # the leaves: per arc
        if s.fair[1] >= cap:  # the level reaches the cap
            s.meta[1] = 1
            for f in range(len(s.rate)):
                if s.last[f]:
                    num_changed = _set_rate(s, f, cap, changed, num_changed)
        else:
            for f in moved:
                for p in range(s.arc_ptr[f], s.arc_ptr[f + 1]):
                    a = s.arc_idx[p]
                    for q in range(s.on_ptr[a], s.on_ptr[a + 1]):
                        g = s.on_idx[q]
                        if s.last[g]:
                            num_changed = _set_rate(s, g, _tightest(s, g, fair), changed, num_changed)
    for j in range(num_changed):
        s.seen[changed[j]] = False
    return num_changed


@njit(cache=True)
def update(s: Shares, busy: np.ndarray, removed: np.ndarray, added: np.ndarray, changed: np.ndarray) -> int:
    """Rates for the flows marked in ``busy``, which were the last call's minus ``removed`` plus
    ``added``: one flow at a time where that is exact, else filled again from the first round that a
    flow which left or joined changes (:func:`_fill_from`). Writes the busy flows whose rate changed
    (an added flow only if its rate did) to ``changed``; returns how many.

    A round before that one keeps its level and frozen flows: a flow that left had not frozen in it,
    so none of its arcs was full there and their shares only grow; a flow that joined leaves every
    arc of it above the round's level (:func:`_first_full`). Such rounds only count the flow.
    """
    rounds = s.meta[0]
    start = rounds + 1  # the first round to fill again; past the last one: none, so far
    for f in removed:
        if start > rounds and _leave(s, f):
            continue
        top = min(s.frozen[f], start)  # it was unfrozen up to the round it froze in
        _count(s, f, top, -1.0)
        start = top
    for f in added:
        if start > rounds and _join(s, f):
            continue
        top = _first_full(s, f, min(start, rounds))
        _count(s, f, top, 1.0)
        s.frozen[f] = MAX_FILL_ROUNDS  # unfrozen in every round kept
        start = top
    if start > rounds:
        if len(removed) == 0 and len(added) == 0:
            return 0
        return _share_last(s, np.concatenate((removed, added)), changed)
    active = np.flatnonzero(busy)
    before = s.rate[active].copy()
    _fill_from(s, active, start)
    num_changed = 0
    for j in range(len(active)):
        if s.rate[active[j]] != before[j]:
            changed[num_changed] = active[j]
            num_changed += 1
    return num_changed


class FairShares:
    """A Python handle on :class:`Shares` for callers outside the compiled loop (and the tests).

    Flow ``f`` crosses the arcs ``routes[:, f]``, padded with the last, infinite arc of ``bandwidth``.
    """

    def __init__(self, routes: np.ndarray, bandwidth: np.ndarray, cap: float):
        pad = len(bandwidth) - 1
        arcs = [[int(a) for a in routes[:, f] if a != pad] for f in range(routes.shape[1])]
        self.state = shares_of(arcs, np.asarray(bandwidth[:-1], dtype=np.float64), cap)
        self._changed = np.zeros(routes.shape[1], dtype=np.int64)

    @property
    def rate(self) -> np.ndarray:
        return self.state.rate

    def fill(self, active: np.ndarray) -> None:
        fill(self.state, np.asarray(active, dtype=np.int64))

    def update(self, busy: np.ndarray, removed: Sequence[int], added: Sequence[int]) -> np.ndarray:
        count = update(
            self.state,
            np.asarray(busy, dtype=np.bool_),
            np.asarray(removed, dtype=np.int64),
            np.asarray(added, dtype=np.int64),
            self._changed,
        )
        return self._changed[:count].copy()


def max_min_rates(arcs: np.ndarray, bandwidth: np.ndarray, cap: float = np.inf) -> np.ndarray:
    """Max-min fair rates of flows (rows of ``arcs``: arc indices, padded with a last infinite arc),
    every flow also limited to ``cap`` (its threadblock's copy rate)."""
    shares = FairShares(np.ascontiguousarray(arcs.T), bandwidth, cap)
    flows = np.arange(arcs.shape[0])
    shares.fill(flows)
    return shares.rate[flows]
