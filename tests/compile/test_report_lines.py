"""Lines of the compile report that are decided from figures alone."""

from __future__ import annotations

from fractions import Fraction
from types import SimpleNamespace

from collc.compile.driver import closest_text
from collc.compile.outlook import SizeOutlook
from collc.compile.report import ArcLimit, _bundle_notes, _outlook_line, arc_limit_line
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


def test_a_slow_fabrics_figures_keep_their_digits_in_the_table_and_in_json() -> None:
    """4 GPUs on a switch at 10^6 GB/s, one of them with a 10^-6 GB/s port: every figure is about
    1.3e-06 GB/s, which one decimal printed as 0.0 and JSON's 3 decimals rounded to 0.0."""
    slow = 4 / 3 * 1e-6
    row = SizeOutlook(2**30, slow * 1.5, 1e-6, slow, None, slow * 2, True)
    assert _outlook_line(row).split() == ["1GiB", "2e-06", "1e-06", "1.3e-06", "-", "2.7e-06", "1.50x", "yes"]
    document = row.to_json()
    assert document["algbw"] == 2e-06 and document["ring_algbw"] == 1.33e-06
    assert document["bound_algbw"] == 2.67e-06
    ordinary = SizeOutlook(2**20, 40.66, 76.24, 15.2, 23.4, 173.33, True)
    assert _outlook_line(ordinary) == (
        "        1MiB       40.7     76.2     15.2     23.4    173.3    1.74x  yes"
    )
    assert ordinary.to_json()["bound_algbw"] == 173.33


def test_the_no_win_message_tells_the_closest_figures_apart() -> None:
    """pcie-nic-4box's allreduce comes within 0.0003 % of the runtime's ring at 1 TiB: four significant
    digits printed "8.533 vs 8.533 GB/s", as if the file were not slower."""
    rows = [
        SizeOutlook(2**20, 2.0, 3.5, 4.0, 3.0, 8.6, False),
        SizeOutlook(2**40, 8.533310, 14.933, 8.533330, 4.1, 8.6, False),
    ]
    assert closest_text(rows) == "closest: 8.53331 vs 8.53333 GB/s at 1TiB"
    rows[1] = SizeOutlook(2**40, 6.0, 10.5, 8.0, 4.1, 8.6, False)
    assert closest_text(rows) == "closest: 6.0 vs 8.0 GB/s at 1TiB"


def _figures(proto: str, runtime: str, at_64mib: float) -> SimpleNamespace:
    """What the bundle note reads of a compile result (1x16 MI250 allreduce's figures, RCCL's best
    as the ring; 1 GiB is the file's)."""
    rows = [
        SizeOutlook(2**20, 19.4, None, 16.2, None, 171.4, False),
        SizeOutlook(2**26, at_64mib, None, 136.6, None, 171.4, at_64mib >= 136.6),
        SizeOutlook(2**30, 164.7, None, 158.3, None, 171.4, True),
    ]
    return SimpleNamespace(proto=proto, runtime=runtime, predicted=rows)


def test_a_file_that_cedes_64_mib_to_the_runtime_points_to_the_bundle() -> None:
    """Its one range starts above 64 MiB, where a bundle's second Simple file (chosen at 64 MiB)
    can serve the call; not where the file wins there, nor for a runtime bundles do not deploy."""
    (note,) = _bundle_notes(_figures("Simple", "rccl", 118.1))
    assert note.startswith("at 64MiB the runtime's own algorithms are predicted faster than this file")
    assert "`--bundle DIR` also compiles a Simple file chosen at 64MiB" in note
    assert _bundle_notes(_figures("Simple", "rccl", 139.7)) == []
    assert _bundle_notes(_figures("Simple", "mscclpp", 118.1)) == []
    assert _bundle_notes(_figures("LL128", "rccl", 118.1)) == []
