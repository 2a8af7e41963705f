"""What the verifier reports: located problems with a stable rule id, and the report of one file.

A check lists at most :data:`MAX_LISTED` problems of each rule (:class:`Tally`) and counts the rest in one
"… and N more" entry, so a report, its text and its JSON stay a few kilobytes however many steps repeat a
mistake (a file of 450,000 misnumbered steps used to print 900,001 problems, 244 MB).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from collc.errors import Location

if TYPE_CHECKING:
    from collc.msccl.program import Algorithm

Severity = Literal["error", "warning"]

#: problems of one rule listed per check (the lint, one simulated case, a plan's rules or its simulation)
MAX_LISTED = 8


@dataclass(frozen=True)
class Problem:
    """One finding. ``rule`` is a stable id (documented in docs/verify.md) that CI can match on."""

    rule: str
    severity: Severity
    message: str
    location: Location | None = None
    hint: str | None = None
    #: in a "… and N more" entry (:meth:`Tally.summaries`): the N problems it stands for; 0 otherwise
    omitted: int = 0

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
            "omitted": self.omitted,
        }

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location is not None else ""
        text = f"{where}{self.severity}: {self.message} [{self.rule}]"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class Tally:
    """Which problems a check lists: the first :data:`MAX_LISTED` of each group (a rule, or a rule in one
    labelled part of the check such as a simulated case); the others are only counted, and
    :meth:`summaries` gives one entry that stands for them."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._unlisted_errors: set[tuple[str, str]] = set()

    def admit(self, rule: str, severity: Severity, label: str = "") -> bool:
        """Count one problem of ``rule`` in the group ``label``; True while it is among those listed (so a
        costly message is only built for them)."""
        group = (rule, label)
        count = self._counts.get(group, 0) + 1
        self._counts[group] = count
        if count <= MAX_LISTED:
            return True
        if severity == "error":
            self._unlisted_errors.add(group)
        return False

    def summaries(self) -> list[Problem]:
        """A "… and N more" entry for each group that had more problems than were listed, in rule order:
        an error where one of those was an error, else a warning (many warnings leave a file valid)."""
        return [
            Problem(
                rule,
                "error" if (rule, label) in self._unlisted_errors else "warning",
                f"… and {count - MAX_LISTED} more '{rule}' problems" + (f" ({label})" if label else ""),
                omitted=count - MAX_LISTED,
            )
            for (rule, label), count in sorted(self._counts.items())
            if count > MAX_LISTED
        ]


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

    def counts(self) -> tuple[int, int]:
        """The errors and the warnings found, those a "… and N more" entry stands for included."""
        errors = sum(problem.omitted or 1 for problem in self.errors)
        return errors, sum(problem.omitted or 1 for problem in self.problems) - errors

    def rules(self) -> set[str]:
        """The rule ids of every problem (handy in tests and CI filters)."""
        return {problem.rule for problem in self.problems}

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.filename,
            "ok": self.ok,
            "runtime": self.runtime,
            "problems": [problem.to_dict() for problem in self.problems],
            "problem_count": sum(self.counts()),
            "notes": list(self.notes),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)
