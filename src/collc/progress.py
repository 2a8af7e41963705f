"""Progress of long work, shown on a terminal and nowhere else.

The stages never print: they take a :data:`Report` callback and call it with the stage's name, how
much of it is done and of how much (``None`` when that is not known). A command picks the callback
with :func:`terminal_progress`: a live bar on standard error when that is a terminal and the command
is not printing JSON, else :func:`silent`, so that piped output, CI logs and ``--json`` documents
carry nothing but the result.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

#: ``report(stage, done, total)``: ``done`` of ``total`` units of ``stage`` are finished
Report = Callable[[str, int, "int | None"], None]


def silent(stage: str, done: int, total: int | None) -> None:
    """The callback that shows nothing (piped output, ``--json``, library use)."""


def shows_progress(stream: TextIO, as_json: bool = False) -> bool:
    """Whether progress belongs on ``stream``: a terminal, and the output is not a JSON document."""
    isatty = getattr(stream, "isatty", None)
    return not as_json and callable(isatty) and bool(isatty())


@contextmanager
def terminal_progress(as_json: bool = False, stream: TextIO | None = None) -> Iterator[Report]:
    """A :data:`Report` that draws one bar per stage on ``stream`` (standard error) while the block
    runs, when :func:`shows_progress`; the bars are cleared when the block ends."""
    stream = stream if stream is not None else sys.stderr
    if not shows_progress(stream, as_json):
        yield silent
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=stream), transient=True) as bars:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield report
