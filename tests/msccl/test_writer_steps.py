"""The writer's direct line for plain steps is the checked path's text, and odd fields still get checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collc.errors import InvariantError
from collc.msccl.program import BUFFERS, STEP_TYPES, Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.writer import _plain_step_line, _step_attributes, _tag, to_xml

numbers = st.integers(min_value=-(2**40), max_value=2**40)
steps = st.builds(
    Step,
    s=numbers,
    type=st.sampled_from(STEP_TYPES),
    srcbuf=st.sampled_from(BUFFERS),
    srcoff=numbers,
    dstbuf=st.sampled_from(BUFFERS),
    dstoff=numbers,
    cnt=numbers,
    depid=numbers,
    deps=numbers,
    hasdep=numbers,
)


@given(steps)
def test_a_plain_step_line_is_the_checked_text(step: Step) -> None:
    assert _plain_step_line(step) == _tag(3, "step", _step_attributes("step", step), closed=True)


def _one_step(step: Step) -> Algorithm:
    tb = Threadblock(0, -1, -1, 0, [step])
    return Algorithm("x", "Simple", 1, 1, 1, "allreduce", 1, 0, 0, 0, [GpuProgram(0, 1, 1, 0, [tb])])


@pytest.mark.parametrize(
    "field, value",
    [("cnt", True), ("cnt", 1.0), ("type", "send"), ("srcbuf", "x"), ("dstbuf", "scratch")],
)
def test_a_step_with_a_field_the_runtime_cannot_read_is_rejected(field: str, value: object) -> None:
    step = Step(0, "cpy", "i", 0, "o", 0, 1)
    setattr(step, field, value)
    assert _plain_step_line(step) is None
    with pytest.raises(InvariantError, match=field):
        to_xml(_one_step(step))
