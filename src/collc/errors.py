"""Errors a user can cause, and internal invariant violations.

Every error that bad input can trigger is a :class:`CollcError`; the CLI prints it as one message and
exits with its ``exit_code`` (2 for bad input), never with a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """Where in an input file something is: 1-based line and column, either may be unknown."""

    file: str | None = None
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class CollcError(Exception):
    """Base class of every error collc reports to a user without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: error: {self.message}" if self.location else f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InputError(CollcError):
    """The user's input (topology file, option, XML file) is wrong: exit code 2."""

    exit_code = 2


class InfeasibleError(CollcError):
    """The request is well-formed but cannot be met (e.g. no schedule fits the runtime's limits)."""

    exit_code = 1


class InvariantError(CollcError):
    """A result failed a correctness invariant. This is a bug in collc, reported with its details."""

    exit_code = 3


def location_in(path: str | Path | None, line: int | None = None, column: int | None = None) -> Location:
    """A :class:`Location` for ``path`` (shown as given) at an optional line and column."""
    return Location(str(path) if path is not None else None, line, column)


def clipped(value: object) -> str:
    """``repr(value)`` for a message, cut short when long: a pasted value must not flood the terminal."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"
