"""The `collc` command line: a thin click layer over the pipeline stages.

Each command group lives in its own module and is registered on :data:`main` below. Errors the user
can cause (:class:`collc.errors.CollcError`) are printed as one message with their exit code;
``--debug`` re-raises them with the traceback.
"""

from __future__ import annotations

import sys

import click

from collc import __version__
from collc.errors import CollcError


class _ReportingGroup(click.Group):
    """A click group that turns :class:`CollcError` into a message and an exit code."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CollcError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(str(error), err=True)
            sys.exit(error.exit_code)


@click.group(cls=_ReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="collc")
@click.option("--debug", is_flag=True, help="Show the Python traceback of errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """collc: throughput-optimal collective schedules (ForestColl) compiled to verified MSCCL XML."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# Command registration: one line per command module (each module owns its commands).
from collc.cli import bound as _bound  # noqa: E402,F401
from collc.cli import compile as _compile  # noqa: E402,F401
from collc.cli import report as _report  # noqa: E402,F401
from collc.cli import simulate as _simulate  # noqa: E402,F401
from collc.cli import topo as _topo  # noqa: E402,F401
from collc.cli import trees as _trees  # noqa: E402,F401
from collc.cli import verify as _verify  # noqa: E402,F401
