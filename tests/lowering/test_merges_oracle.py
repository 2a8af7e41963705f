"""The merge choice against its definition: every same-channel (receive, send) pair costed exactly in
fractions, all sorted, taken greedily. The lowering keeps only what it needs of that (integer costs,
a heap, pairs per channel); on random lanes it must pick the very same pairs."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from collc.lowering.assign import Lane, _forwards_exactly, _merges, _next_stage


def _definition(recvs, sends, lanes, units, busy, excess):
    candidates = []
    for recv in recvs:
        for send in sends:
            if lanes[send].chan != lanes[recv].chan:
                continue
            forwards = _forwards_exactly(lanes[recv], lanes[send], units[recv], units[send])
            if busy is None:
                cost = 0 if forwards else 1 if _next_stage(lanes[recv], lanes[send]) else 2
            else:
                cost = max(busy[recv], busy[send]) if forwards else busy[recv] + busy[send]
            candidates.append((cost, lanes[recv].chan, lanes[recv].src, send, recv))
    pairs, taken = [], set()
    for *_, send, recv in sorted(candidates):
        if len(pairs) >= excess:
            break
        if send not in taken and recv not in taken:
            taken.update((send, recv))
            pairs.append((send, recv))
    return pairs


@st.composite
def gpus(draw):
    """One GPU's lanes: receives (into GPU 0) and sends (from it) on a few channels and stages, some
    forwarding the same tree pieces, with busy times of a few different denominators."""
    count = draw(st.integers(2, 14))
    lanes, units, recvs, sends = [], [], [], []
    for index in range(count):
        receive = draw(st.booleans())
        chan = draw(st.integers(0, 2))
        level = draw(st.integers(1, 3)) * 2
        peer = draw(st.integers(1, 4))
        src, dst = (peer, 0) if receive else (0, peer)
        lanes.append(Lane(src, dst, None, chan, (src, dst, None, (1, level))))
        units.append(frozenset({(draw(st.integers(0, 2)), 0, 0)}))
        (recvs if receive else sends).append(index)
    busy = draw(
        st.none()
        | st.lists(
            st.builds(Fraction, st.integers(1, 40), st.sampled_from([1, 2, 3, 7, 8])),
            min_size=count,
            max_size=count,
        )
    )
    return recvs, sends, lanes, units, busy, draw(st.integers(-1, count))


@settings(max_examples=300, deadline=None)
@given(gpus())
def test_the_merges_are_those_of_the_definition(gpu):
    assert _merges(*gpu) == _definition(*gpu)
