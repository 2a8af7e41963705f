"""The plan reader and verifier on mutated plans: a report (or a located refusal) every time, only
documented rule ids, the same report twice."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from collc.errors import InputError
from collc.mscclpp.verify import verify_plan_text

from .test_verify import FIXTURES, documented_plan_rules

PLANS = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]
RULES = documented_plan_rules()
VALUES = st.one_of(
    st.integers(-2, 12),
    st.none(),
    st.booleans(),
    st.sampled_from(["i", "o", "s", "memory", "port", "nop", "x"]),
    st.just([]),
    st.just({}),
    st.lists(st.integers(0, 3), max_size=3),
)


def _slots(node: object, path: tuple = ()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key)
            yield from _slots(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*path, index)
            yield from _slots(value, (*path, index))


@st.composite
def mutated(draw) -> str:
    plan = json.loads(json.dumps(draw(st.sampled_from(PLANS))))
    for _ in range(draw(st.integers(1, 3))):
        slots = list(_slots(plan))
        path = draw(st.sampled_from(slots))
        parent = plan
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(VALUES)
    return json.dumps(plan)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(mutated())
def test_mutated_plans_get_a_deterministic_report_with_documented_rules(text: str) -> None:
    try:
        first = verify_plan_text(text, "m.json")
    except InputError as error:  # only the limits refuse a plan
        assert "at most" in error.message or "nests too deeply" in error.message
        return
    assert {problem.rule for problem in first.problems} <= RULES
    assert verify_plan_text(text, "m.json").to_json() == first.to_json()
