"""Compiles of shipped presets that several tests read, made once per test process.

A compile with the automatic choice simulates dozens of candidates (seconds to a minute on CI's two
cores), and the same preset and collective is read by tests of several areas: that every preset
compiles within the runtime's limits (tests/lowering), that the file converges to the bound
(tests/predict), where it is selected (tests/compile). ``compile_schedule`` is deterministic, so they
can share one result: :func:`preset_compile` makes it on first use in a process, and the tests that
share one carry :func:`same_worker`, so that pytest-xdist (``--dist loadgroup``, pyproject.toml) runs
them in one process.

The compile is forced: for a file that wins somewhere that changes nothing (the same file, range and
notes); a file that wins nowhere is returned instead of refused. A shared result is read-only: a test
that changes the options, the topology or the compile's code (monkeypatch) compiles its own.
"""

from __future__ import annotations

from functools import cache

import pytest

from collc.compile import CompileOptions, CompileResult, compile_schedule
from collc.topology import load


@cache
def preset_compile(name: str, boxes: int, coll: str) -> CompileResult:
    """What ``collc compile NAME --set boxes=BOXES --coll COLL --force`` compiles (its runtime,
    the automatic k, buffer and range)."""
    topology = load(name, {"boxes": str(boxes)})
    return compile_schedule(topology, CompileOptions(coll=coll, force=True))


def same_worker(name: str, boxes: int) -> pytest.MarkDecorator:
    """The mark that keeps the tests reading one preset's compiles in one test process."""
    return pytest.mark.xdist_group(f"{name}x{boxes}")
