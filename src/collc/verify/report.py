"""What the verifier reports: located problems with a stable rule id, and the report of one file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from collc.errors import Location

if TYPE_CHECKING:
    from collc.msccl.program import Algorithm

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding. ``rule`` is a stable id (documented in docs/verify.md) that CI can match on."""

    rule: str
    severity: Severity
    message: str
    location: Location | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, object]:
        location = None
        if self.location is not None:
            location = {
                "file": self.location.file,
                "line": self.location.line,
                "column": self.location.column,
            }
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "location": location,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location is not None else ""
        text = f"{where}{self.severity}: {self.message} [{self.rule}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


@dataclass
class VerifyReport:
    """All problems found in one algorithm (lint first, then the simulation's, in a stable order)."""

    filename: str | None = None
    runtime: str = "msccl-executor"
    problems: list[Problem] = field(default_factory=list)
    #: what was checked, e.g. "simulated in-place, K=2, m=1 and m=71" or why the simulation was skipped
    notes: list[str] = field(default_factory=list)
    #: the program as read from the file's text (:func:`collc.verify.verify_text`; None where it did not
    #: parse), so that a caller that also explains or compares the file does not parse it again (a
    #: 128-GPU file takes seconds to read)
    algorithm: Algorithm | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when no problem is an error (warnings do not make a file invalid)."""
        return not any(problem.severity == "error" for problem in self.problems)

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    def rules(self) -> set[str]:
        """The rule ids of every problem (handy in tests and CI filters)."""
        return {problem.rule for problem in self.problems}

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.filename,
            "runtime": self.runtime,
            "ok": self.ok,
            "problems": [problem.to_dict() for problem in self.problems],
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
