"""Where the shared MSCCL XML fixtures live: ``<checkout>/../shared/fixtures/msccl``.

The fixtures are not part of this repository; CI lays out ``shared/`` beside the clone, as the
development machines do. Without them the verifier's and writer's tests cannot run, so importing this
module fails at collection with a message that says where they were looked for.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "msccl"
if not (FIXTURES / "valid").is_dir() or not (FIXTURES / "invalid").is_dir():
    raise RuntimeError(
        f"MSCCL XML fixtures not found at {FIXTURES}: the tests read ../shared beside the checkout "
        "(as CI lays it out); clone collc next to the shared/ folder"
    )
VALID = sorted((FIXTURES / "valid").glob("*.xml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.xml"))
