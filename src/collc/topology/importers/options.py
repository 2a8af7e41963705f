"""Choices a user makes when importing: figures the report lacks or that override it."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class ReadOptions:
    """``nic_speed``: every NIC port's GB/s (default: the dump's). ``link_speed``: GB/s per NVLink or
    xGMI link (default: the documented per-generation figure). ``gpu_model``: the GPU model for the text
    fallbacks, whose matrices name no model and no speed."""

    nic_speed: Fraction | None = None
    link_speed: Fraction | None = None
    gpu_model: str | None = None
