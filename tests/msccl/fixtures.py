"""Helpers for comparing the writer's output with the MSCCL XML fixtures."""

from __future__ import annotations

import re

from shared_fixtures import FIXTURES, INVALID, VALID  # noqa: F401 (re-exported for the tests here)


def without_comments(text: str) -> str:
    """The fixture text with comments, and the lines and spaces they leave behind, removed."""
    stripped = re.sub(r" *<!--.*?-->", "", text, flags=re.S)
    return "\n".join(line for line in stripped.split("\n") if line.strip()) + "\n"
