"""Shared fixtures: reference presets and their prediction models, built once per test session."""

from __future__ import annotations

from functools import cache

from collc.predict.model import TopologyModel
from collc.topology import load


@cache
def model(name: str, boxes: int) -> TopologyModel:
    """The prediction model of preset ``name`` with ``boxes`` boxes (cached across tests)."""
    return TopologyModel(load(name, {"boxes": str(boxes)}))
