"""Where the shared MSCCL XML fixtures live: ``<repo>/../shared/fixtures/msccl`` (CI has the same layout)."""

from __future__ import annotations

import re
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "msccl"
VALID = sorted((FIXTURES / "valid").glob("*.xml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.xml"))


def without_comments(text: str) -> str:
    """The fixture text with comments, and the lines and spaces they leave behind, removed."""
    stripped = re.sub(r" *<!--.*?-->", "", text, flags=re.S)
    return "\n".join(line for line in stripped.split("\n") if line.strip()) + "\n"
