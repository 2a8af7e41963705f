"""Lines of the compile report that are decided from figures alone."""

from __future__ import annotations

from fractions import Fraction

from collc.compile.report import ArcLimit, arc_limit_line
from collc.predict.des import ArcLoad


def test_a_busiest_arc_below_the_forests_bound_is_named_with_its_load() -> None:
    """3 boxes of 8 GPUs on one switch, 300 GB/s NVSwitch ports and 50 GB/s NICs: the forest at
    k = 1 (360 GB/s) sends one edge between two GPUs of a box through the network, which the runtime
    joins through the NVSwitch, so a port carries 21 chunk sends per iteration of 24 chunks (an
    allreduce crosses an arc once per phase, and can count more sends than chunks)."""
    limit = ArcLimit(24 * 300 / 21, ArcLoad(("e2g6", "e2nv"), 21.0, 300.0))
    line = arc_limit_line(limit, Fraction(360), 24)
    assert line is not None
    assert "342.9 GB/s algbw at most" in line
    assert "e2g6 -> e2nv carries 21 chunk sends per iteration of 24 chunks" in line
    assert "300 GB/s" in line
    assert arc_limit_line(limit, Fraction(2400, 7), 24) is None  # 342.857...: the arc allows the bound
    assert arc_limit_line(ArcLimit(360.0, limit.arc), Fraction(360), 24) is None
