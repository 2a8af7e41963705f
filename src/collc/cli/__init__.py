"""The `collc` command line: a thin click layer over the pipeline stages.

Each command group lives in its own module and is registered on :data:`main` below. Errors the user
can cause (:class:`collc.errors.CollcError`) are printed as one message with their exit code. Any other
failure (a bug, running out of memory) is printed as one line too, with exit code 2 and a hint to rerun
with ``--debug``; only ``--debug`` shows a traceback. A reader that closes stdout early (``| head``)
ends the command quietly, with the exit code of a process killed by SIGPIPE.
"""

from __future__ import annotations

import os
import sys

import click

from collc import __version__
from collc.cli.jsonout import failure_document
from collc.errors import CollcError, InputError

#: the exit code of a failure that is not a :class:`CollcError` (bad input in a form collc missed)
UNEXPECTED_EXIT = InputError.exit_code
_RERUN = "rerun with `collc --debug ...` for the traceback"
#: the exit code when the reader of stdout went away (`collc ... | head`): a process killed by SIGPIPE
PIPE_CLOSED_EXIT = 128 + 13


def unexpected_error(error: BaseException) -> InputError:
    """An exception that is not a :class:`CollcError` as the error collc reports: one line and a hint."""
    if isinstance(error, MemoryError):
        return InputError("out of memory", hint="the input is too large for this machine; " + _RERUN)
    if isinstance(error, RecursionError):
        return InputError("the input is nested too deeply to process", hint=_RERUN)
    detail = " ".join(str(error).split())[:200]
    return InputError(f"unexpected {type(error).__name__}" + (f": {detail}" if detail else ""), hint=_RERUN)


def failure_message(error: BaseException) -> str:
    """One line (plus a hint) for an exception that is not a :class:`CollcError`."""
    return str(unexpected_error(error))


class _ReportingGroup(click.Group):
    """A click group that turns every failure into a short message and an exit code.

    :class:`CollcError` keeps its own exit code (1 for an invalid schedule, 2 for bad input); any other
    exception exits with :data:`UNEXPECTED_EXIT`. click's own usage errors pass through to click. A
    run given ``--json`` also prints its command's failure document on stdout (:mod:`collc.cli.jsonout`).
    """

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except click.exceptions.ClickException as error:  # click prints it; --json still gets a document
            _print_failure_document(ctx, InputError(error.format_message()), error.exit_code)
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            _silence_stdout()
            sys.exit(PIPE_CLOSED_EXIT)
        except CollcError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            _print_failure_document(ctx, error, error.exit_code)
            click.echo(str(error), err=True)
            sys.exit(error.exit_code)
        except Exception as error:  # the last line of defence: no traceback without --debug
            if ctx.obj and ctx.obj.get("debug"):
                raise
            failure = unexpected_error(error)
            _print_failure_document(ctx, failure, UNEXPECTED_EXIT)
            click.echo(str(failure), err=True)
            sys.exit(UNEXPECTED_EXIT)


def _print_failure_document(ctx: click.Context, error: CollcError, exit_code: int) -> None:
    """With ``--json``: the command's document for ``error`` on stdout, so that stdout holds one JSON
    document whatever the outcome (:mod:`collc.cli.jsonout`); the message still goes to stderr."""
    document = failure_document(ctx.meta, error, exit_code)
    if document is not None:
        click.echo(document)


def _silence_stdout() -> None:
    """Point stdout at the null device: its reader is gone (`collc ... | head`), so nothing is left to
    say to it, and Python's own flush at exit must not fail on the closed pipe either."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)


@click.group(cls=_ReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="collc")
@click.option("--debug", is_flag=True, help="Show the Python traceback of errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """collc: collective schedules from ForestColl's throughput-optimal bound, verified MSCCL XML."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


# Command registration: one line per command module (each module owns its commands).
from collc.cli import bound as _bound  # noqa: E402,F401
from collc.cli import compile as _compile  # noqa: E402,F401
from collc.cli import diff as _diff  # noqa: E402,F401
from collc.cli import report as _report  # noqa: E402,F401
from collc.cli import runtime as _runtime  # noqa: E402,F401
from collc.cli import serve as _serve  # noqa: E402,F401
from collc.cli import simulate as _simulate  # noqa: E402,F401
from collc.cli import submit as _submit  # noqa: E402,F401
from collc.cli import topo as _topo  # noqa: E402,F401
from collc.cli import trees as _trees  # noqa: E402,F401
from collc.cli import verify as _verify  # noqa: E402,F401
