"""The program IR's name record of the NCCL_BUFFSIZE a file was compiled for."""

from __future__ import annotations

import pytest

from collc.msccl.program import MIN_BUFFSIZE, recorded_buffer, tag_buffer

NAME = "collc-dgx-a100-16gpus-allreduce-k1-i1"


def test_a_tagged_name_gives_its_buffer_back_and_retagging_replaces_it():
    tagged = tag_buffer(NAME, 256 << 10)
    assert tagged == NAME + "-buffsize-262144" and recorded_buffer(tagged) == 256 << 10
    assert tag_buffer(tagged, 1 << 20) == NAME + "-buffsize-1048576"
    assert tag_buffer(tagged, None) == NAME == tag_buffer(NAME, None)
    assert recorded_buffer(NAME) is None


@pytest.mark.parametrize(
    "suffix",
    [
        "-buffsize-",
        "-buffsize-12",
        f"-buffsize-{MIN_BUFFSIZE - 4096}",
        "-buffsize-262145",
        "-buffsize-0262144",
        "-buffsize-2621४4",
        "-buffsize-262144x",
        f"-buffsize-{1 << 40}",
    ],
)
def test_a_name_that_only_looks_tagged_is_a_label(suffix):
    """Third-party names are labels: only a decimal multiple of 4 KiB in collc's range is read back."""
    assert recorded_buffer(NAME + suffix) is None
    assert tag_buffer(NAME + suffix, None) == NAME + suffix
