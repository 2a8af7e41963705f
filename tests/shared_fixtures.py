"""Where the MSCCL XML fixtures live: ``tests/verify/fixtures/{valid,invalid}`` in this repository.

They are written by ``tests/verify/fixture_source.py`` (which says what each one is and which rule each
invalid one breaks); tests of any area import the paths from here.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "verify" / "fixtures"
VALID = sorted((FIXTURES / "valid").glob("*.xml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.xml"))
