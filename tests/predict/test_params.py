import pytest

from collc.errors import InputError
from collc.predict.params import busbw_factor, protocol


def test_busbw_factors_follow_nccl_tests() -> None:
    assert busbw_factor("allreduce", 8) == pytest.approx(14 / 8)
    assert busbw_factor("allgather", 16) == pytest.approx(15 / 16)


def test_protocol_lookup_is_case_insensitive_and_checked() -> None:
    assert protocol("ll128").name == "LL128"
    with pytest.raises(InputError):
        protocol("fast")
