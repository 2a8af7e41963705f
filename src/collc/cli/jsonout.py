"""The ``--json`` option of every command that has one, and its document when the command fails.

:func:`json_option` reads ``--json`` before the other options (click's eager parameters), so that an
error in an option, a path or the topology, raised before the command runs, still finds the command's
key set. The command's success path prints :func:`collc.jsondoc.json_document` of the same keys; the
CLI's error handler prints :func:`failure_document` (exit 1 or 2), with whatever the command recorded
with :func:`record_json_facts` before it failed. See docs/compile.md §1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from collc.errors import CollcError
from collc.jsondoc import json_document

#: a command's keys, fixed or chosen by its parameters (``compile``: ``-o`` or ``--bundle``)
Keys = Sequence[str] | Callable[[Mapping[str, Any]], Sequence[str]]

_META_KEY = "collc.json"


@dataclass
class _JsonRun:
    """A run given ``--json``: its command's context (parameters read so far), keys and known facts."""

    context: click.Context
    keys: Keys
    facts: dict[str, object] = field(default_factory=dict)

    def document(self, error: CollcError, exit_code: int) -> dict[str, object]:
        keys = self.keys(self.context.params) if callable(self.keys) else self.keys
        return json_document(keys, {k: v for k, v in self.facts.items() if k in keys}, error, exit_code)


def json_option(keys: Keys, help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: ``--json`` (passed as ``as_json``), whose documents have ``keys`` for every outcome."""

    def remember(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
        if value:
            ctx.meta[_META_KEY] = _JsonRun(ctx, keys)
        return value

    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=remember, help=help)


def record_json_facts(facts: Mapping[str, object]) -> None:
    """Values the failure document of the running command shows (e.g. the figures of a file compiled
    but not written); keys the command's mode does not declare are left out."""
    run = click.get_current_context().meta.get(_META_KEY)
    if run is not None:
        run.facts.update(facts)


def failure_document(meta: MutableMapping[str, Any], error: CollcError, exit_code: int) -> str | None:
    """The JSON text to print on stdout for ``error`` (exit ``exit_code``) when the run was given
    ``--json``, else None."""
    run = meta.get(_META_KEY)
    return None if run is None else json.dumps(run.document(error, exit_code), indent=2)
