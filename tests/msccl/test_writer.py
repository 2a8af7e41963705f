# ruff: noqa: E501  (the expected XML lines are as long as the runtime format makes them)
"""The XML writer: exact canonical format, byte determinism, round trip of the shared fixtures."""

from __future__ import annotations

import pytest

from collc.errors import InvariantError
from collc.msccl.program import Algorithm, GpuProgram, Step, Threadblock
from collc.msccl.reader import read_xml
from collc.msccl.writer import to_xml

from .fixtures import VALID, without_comments

EXPECTED_TWO_GPU = """\
<algo name="swap" proto="LL" nchannels="1" nchunksperloop="2" ngpus="2" coll="allgather" inplace="0" outofplace="1" minBytes="0" maxBytes="65536">
  <gpu id="0" i_chunks="1" o_chunks="2" s_chunks="0">
    <tb id="0" send="1" recv="1" chan="0">
      <step s="0" type="s" srcbuf="i" srcoff="0" dstbuf="o" dstoff="0" cnt="1" depid="-1" deps="-1" hasdep="0"/>
      <step s="1" type="r" srcbuf="o" srcoff="1" dstbuf="o" dstoff="1" cnt="1" depid="-1" deps="-1" hasdep="0"/>
    </tb>
    <tb id="1" send="-1" recv="-1" chan="0">
      <step s="0" type="cpy" srcbuf="i" srcoff="0" dstbuf="o" dstoff="0" cnt="1" depid="-1" deps="-1" hasdep="0"/>
    </tb>
  </gpu>
  <gpu id="1" i_chunks="1" o_chunks="2" s_chunks="0">
  </gpu>
</algo>
"""


def two_gpu_algorithm() -> Algorithm:
    """A small allgather whose ``gpus`` and ``tbs`` lists are deliberately out of id order."""
    tb0 = Threadblock(
        0,
        1,
        1,
        0,
        [Step(0, "s", "i", 0, "o", 0, 1), Step(1, "r", "o", 1, "o", 1, 1)],
    )
    tb1 = Threadblock(1, -1, -1, 0, [Step(0, "cpy", "i", 0, "o", 0, 1)])
    return Algorithm(
        "swap",
        "LL",
        1,
        2,
        2,
        "allgather",
        0,
        1,
        0,
        65536,
        [GpuProgram(1, 1, 2, 0), GpuProgram(0, 1, 2, 0, [tb1, tb0])],
    )


def test_exact_canonical_text_in_id_order() -> None:
    assert to_xml(two_gpu_algorithm()) == EXPECTED_TWO_GPU


def test_output_is_byte_deterministic() -> None:
    assert to_xml(two_gpu_algorithm()) == to_xml(two_gpu_algorithm())


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_parsed_fixture_is_written_back_identically(path) -> None:
    text = path.read_text()
    assert to_xml(read_xml(text, str(path))) == without_comments(text)


def test_written_text_reads_back_to_the_same_ir() -> None:
    algo = two_gpu_algorithm()
    again = read_xml(to_xml(algo))
    assert to_xml(again) == to_xml(algo)
    assert sorted(again.gpus, key=lambda g: g.id)[0].tbs[1].steps == algo.gpus[1].tbs[0].steps


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("proto", "simple", "proto"),
        ("coll", "reduce_scatter", "coll"),
        ("name", 'a"b', "name"),
        ("name", "x" * 256, "name"),
        ("nchannels", True, "nchannels"),
        ("ngpus", 2.0, "ngpus"),
    ],
)
def test_unwritable_fields_are_invariant_errors(field: str, value: object, needle: str) -> None:
    algo = two_gpu_algorithm()
    setattr(algo, field, value)
    with pytest.raises(InvariantError, match=needle):
        to_xml(algo)


def test_unknown_step_type_is_an_invariant_error() -> None:
    algo = two_gpu_algorithm()
    algo.gpus[1].tbs[0].steps[0].type = "ra"
    with pytest.raises(InvariantError, match="type"):
        to_xml(algo)


def test_target_runtime_is_recorded_and_ignored_by_the_reader() -> None:
    algo = two_gpu_algorithm()
    text = to_xml(algo, runtime="rccl")
    assert text.splitlines()[0].endswith(' maxBytes="65536" runtime="rccl">')
    assert text.replace(' runtime="rccl"', "") == to_xml(algo)
    assert to_xml(read_xml(text)) == to_xml(algo)
    with pytest.raises(InvariantError, match="runtime"):
        to_xml(algo, runtime="nccl")
