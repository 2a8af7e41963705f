"""Options shared by the commands: the topology argument, output paths and the protocol.

``@topology_argument`` adds a ``TOPO`` argument (a topology file or a preset name) and a repeatable
``--set KEY=VALUE`` option for the topology's declared parameters, loads the topology and passes it to
the command as ``topology``. Topology warnings are printed to stderr. It also adds the options of
:func:`degradation_options` (``--without``, ``--derate``, ``--gpus``), applied to the loaded topology
(:mod:`collc.topology.degrade`), so every command works on the fabric as it is now.

Every option that names a file to write uses :func:`output_path` (or :func:`output_directory`) as its
click callback, so a bad path is refused before any work (see :func:`collc.fileio.check_output_path`).
Every ``--proto`` option uses :data:`PROTOCOL`: the same names in every command, any letter case.
``verify`` and ``simulate`` read schedule files with :func:`read_schedule_text` (size limit, UTF-8).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from collc.errors import InputError
from collc.fileio import check_not_an_input, check_output_directory, check_output_path, read_text
from collc.input_limits import MAX_SCHEDULE_BYTES
from collc.msccl.program import PROTOCOLS
from collc.topology import Topology, TopologyWarning, load
from collc.topology.degrade import Degradation, degrade
from collc.topology.presets import parameters_of


def parse_settings(settings: Iterable[str], source: str) -> dict[str, str]:
    """``["boxes=2", ...]`` -> ``{"boxes": "2"}``; malformed items raise InputError listing parameters."""
    values: dict[str, str] = {}
    for item in settings:
        key, separator, value = item.partition("=")
        if not separator or not key.strip() or not value.strip():
            raise InputError(
                f"--set {item!r} is not KEY=VALUE",
                hint=f"e.g. --set boxes=2; {parameters_of(source)}",
            )
        if key.strip() in values:
            raise InputError(f"--set {key.strip()} is given twice", hint="give each parameter once")
        values[key.strip()] = value.strip()
    return values


class _ProtocolChoice(click.Choice):
    """MSCCL's protocol names in any letter case, returned (and listed in errors) as MSCCL spells them."""

    def get_invalid_choice_message(self, value: Any, ctx: click.Context | None) -> str:
        return f"{value!r} is not a protocol; use one of {', '.join(self.choices)} (any letter case)"


#: the ``--proto`` type of every command (``ll128`` -> ``LL128``)
PROTOCOL = _ProtocolChoice(PROTOCOLS, case_sensitive=False)


def directory_files(name: str, doing: str) -> list[Path]:
    """Every regular file (or link) directly in the directory ``name``, in sorted order: what the
    runtime loads from MSCCL_ALGO_DIR (msccl-executor takes the first match in this order). An empty
    directory is an InputError: nothing to ``doing`` must not read as a result."""
    entries = [entry for entry in sorted(Path(name).iterdir()) if entry.is_file() or entry.is_symlink()]
    if not entries:
        raise InputError(
            f"{name}: the directory holds no files to {doing}",
            hint="give the MSCCL_ALGO_DIR that holds the schedules, or the files themselves",
        )
    return entries


def read_schedule_text(path: str) -> str:
    """The text of the schedule file ``path`` (MSCCL XML or an MSCCL++ plan) for ``verify`` and
    ``simulate``: at most :data:`MAX_SCHEDULE_BYTES`, UTF-8 as the runtimes read it
    (:func:`collc.fileio.read_text`)."""
    return read_text(
        path,
        MAX_SCHEDULE_BYTES,
        what="the file",
        too_large=_TOO_LARGE,
        fix="give an MSCCL XML file or an MSCCL++ plan, as UTF-8 text: the runtimes read them so (re-save it "
        "as UTF-8)",
    )


_TOO_LARGE = (
    "the runtimes' parsers keep at most 4,096 elements per rank, about 210 MiB of XML at 512 ranks "
    "(collc's 512-GPU file is 155 MiB): check that this is the schedule you meant"
)


def output_path(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback for a file to write: refuse a path collc must not write (before any work)."""
    _given(ctx, param, value)
    if value is not None:
        check_output_path(value, _flag(param))
    return value


def output_directory(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback for a directory to write into: refuse a path that cannot be one."""
    _given(ctx, param, value)
    if value is not None:
        check_output_directory(value, _flag(param))
    return value


def _given(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """Note an output option's value before it is checked (click stores it only once its callback
    returns): the ``--json`` document of a refused path has the keys of the mode it names
    (``compile --bundle DIR``: the bundle's, :mod:`collc.cli.jsonout`)."""
    if param.name is not None:
        ctx.params[param.name] = value


def _flag(param: click.Parameter) -> str:
    """How the user wrote the option: its shortest spelling (``-o``)."""
    names = getattr(param, "opts", None) or [param.name or "output"]
    return min(names, key=len)


def print_warning(warning: TopologyWarning) -> None:
    click.echo(str(warning), err=True)


def load_topology(source: str, settings: Iterable[str], degradation: Degradation | None = None) -> Topology:
    """The topology named by a ``TOPO`` argument with its ``--set`` values and changes applied."""
    loaded = load(source, parse_settings(settings, source), on_warning=print_warning)
    return degrade(loaded, degradation) if degradation is not None else loaded


_SOURCE_KEY = "collc.topology_source"
_CHANGES_KEY = "collc.topology_changes"


@dataclass(frozen=True)
class Changes:
    """The fabric as loaded and the changes the command applied to it."""

    fabric: Topology
    degradation: Degradation


def current_topology_source() -> tuple[str, dict[str, str]]:
    """(TOPO argument, ``--set`` values) of the running command, for commands that show them."""
    return click.get_current_context().meta[_SOURCE_KEY]


def current_changes() -> Changes | None:
    """The running command's fabric as loaded and its changes, or None when it made none."""
    return click.get_current_context().meta.get(_CHANGES_KEY)


def degradation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: add ``--without``, ``--derate`` and ``--gpus``; call ``command(degradation=...)``."""

    @click.option(
        "--without",
        multiple=True,
        metavar="SPEC",
        help="Take a failed part out: link:A-B, nic:NAME, switch:NAME, gpu:NAME (leaves the collective) "
        "or box:N (repeatable; names as `collc topo show` prints them).",
    )
    @click.option(
        "--derate",
        multiple=True,
        metavar="link:A-B=AMOUNT",
        help="Run the links joining A and B at a share of their bandwidth (=50%) or at a bandwidth "
        "(=100GB/s) (repeatable).",
    )
    @click.option(
        "--gpus",
        multiple=True,
        metavar="SELECTION",
        help="Schedule for these GPUs only, in this rank order: ranks (0-7), names (b0.gpu3), boxes "
        "(b0-b3) or @FILE with one per line, comma-separated. The others neither send nor forward.",
    )
    @functools.wraps(command)
    def wrapper(
        *args: Any, without: tuple[str, ...], derate: tuple[str, ...], gpus: tuple[str, ...], **kwargs: Any
    ):
        if len(gpus) > 1:
            raise InputError(
                f"--gpus is given {len(gpus)} times; one selection sets the GPUs and their rank order",
                hint="list every GPU in one --gpus, comma-separated (e.g. --gpus b0-b1,b3)",
            )
        return command(*args, degradation=Degradation(without, derate, gpus[0] if gpus else None), **kwargs)

    return wrapper


#: the keyword arguments through which a TOPO command is told where to write (never one of its inputs)
OUTPUTS = ("output", "bundle_dir", "plot_path")


def topology_argument(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: add ``TOPO``, ``--set KEY=VALUE`` and the degradation options; call
    ``command(topology=..., ...)`` with the changed topology."""

    @click.argument("topo", metavar="TOPO")
    @click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set a topology parameter, e.g. --set boxes=2 (repeatable; see `collc topo show`).",
    )
    @degradation_options
    @functools.wraps(command)
    def wrapper(
        *args: Any, topo: str, settings: tuple[str, ...], degradation: Degradation, **kwargs: Any
    ) -> Any:
        check_not_an_input([kwargs.get(name) for name in OUTPUTS], [topo, kwargs.get("schedule")])
        values = parse_settings(settings, topo)
        fabric = load(topo, values, on_warning=print_warning)
        meta = click.get_current_context().meta
        meta[_SOURCE_KEY] = (topo, values)
        if not degradation.is_empty:
            meta[_CHANGES_KEY] = Changes(fabric, degradation)
        return command(*args, topology=degrade(fabric, degradation), **kwargs)

    return wrapper
