"""``collc verify FILE...``: lint and simulate MSCCL XML files and MSCCL++ execution plans (JSON);
optionally explain runtime selection (XML).

Exit status: 0 every file is valid (and, with ``--explain``, selected), 1 some file is invalid (or not
selected), 2 some file could not be read or an option is wrong. Every file is checked and reported
(one that cannot be read gets its located error), and the command exits with the worst status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from collc.cli import main
from collc.cli.common import degradation_options, directory_files, load_topology, read_schedule_text
from collc.cli.jsonout import json_option
from collc.errors import InputError
from collc.jsondoc import json_document
from collc.msccl.program import Algorithm
from collc.mscclpp.reader import leading_character, looks_like_plan
from collc.mscclpp.verify import verify_plan_text
from collc.progress import terminal_progress
from collc.sizes import parse_size
from collc.topology.degrade import Degradation
from collc.topology.model import Topology
from collc.verify import VerifyReport, declared_runtime, deployed_buffer, explain_call, verify_text
from collc.verify.calls import SLOTS
from collc.verify.runtimes import PROFILES
from collc.verify.select import DTYPE_SIZES, Selection, overlapping


def _render(report: VerifyReport, selection: Selection | None) -> str:
    errors, warnings = report.counts()
    status = "ok" if report.ok else "INVALID"
    lines = [
        f"{report.filename}: {status} ({errors} error(s), {warnings} warning(s); runtime {report.runtime})"
    ]
    for problem in report.problems:
        where = str(problem.location) if problem.location is not None else report.filename
        lines.append(f"  {where}: {problem.severity}: {problem.message} [{problem.rule}]")
        if problem.hint:
            lines.append(f"    fix: {problem.hint}")
    lines.extend(f"  note: {note}" for note in report.notes)
    if selection is not None:
        lines.append(f"  selected for this call: {'yes' if selection.selected else 'no'}")
        lines.extend(f"    because {reason}" for reason in selection.reasons)
        lines.extend(f"    {detail}" for detail in selection.details)
        if selection.deadlock:
            lines.append(f"  a call of this size hangs: {selection.deadlock}")
    return "\n".join(lines)


#: the keys of every ``collc verify --json`` document, then the outcome keys
VERIFY_KEYS = ("ok", "files", "overlaps", "fallbacks", "chosen")
#: the keys of each entry of ``files``, whatever became of the file, then the outcome keys of that file
FILE_KEYS = ("file", "ok", "runtime", "problems", "problem_count", "notes", "selection")


@main.command("verify")
@click.argument("files", nargs=-1, required=True, metavar="FILE|DIR...")
@click.option(
    "--runtime",
    type=click.Choice(tuple(PROFILES)),
    default=None,
    help="Runtime to lint against (default: the one the file declares, else the topology's, else "
    "msccl-executor); msccl-legacy is the loader of msccl-tools' 2023 files, with its defaults.",
)
@click.option("--topology", "topo", metavar="TOPO", help="Check threadblocks against this topology's GPUs.")
@click.option(
    "--set", "settings", multiple=True, metavar="KEY=VALUE", help="Topology parameter (repeatable)."
)
@degradation_options
@json_option(VERIFY_KEYS, help="Machine-readable output for CI.")
@click.option("--explain", is_flag=True, help="Say whether the runtime would select each file for a call.")
@click.option(
    "--nranks",
    type=click.IntRange(min=1),
    help="--explain: communicator size (default: the topology's GPUs, else each file's ngpus).",
)
@click.option(
    "--bytes",
    "size",
    metavar="SIZE",
    help="--explain: nBytes of the call as the runtime counts it (allgather: output, reducescatter: "
    "input), e.g. 64MiB.",
)
@click.option(
    "--dtype",
    type=click.Choice(sorted(DTYPE_SIZES)),
    default="bf16",
    show_default=True,
    help="--explain: element type.",
)
@click.option("--inplace", is_flag=True, help="--explain: the call is in-place.")
@click.option(
    "--buffsize",
    metavar="SIZE",
    help="Connection buffer of the file's protocol (NCCL_BUFFSIZE for Simple, NCCL_LL_BUFFSIZE, "
    "NCCL_LL128_BUFFSIZE); decides how many chunks one primitive call carries (default: the runtime's).",
)
def verify_command(
    files: tuple[str, ...],
    runtime: str | None,
    topo: str | None,
    settings: tuple[str, ...],
    degradation: Degradation,
    as_json: bool,
    explain: bool,
    nranks: int | None,
    size: str | None,
    dtype: str,
    inplace: bool,
    buffsize: str | None,
) -> None:
    """Lint and simulate MSCCL XML files and MSCCL++ plans (a DIR means every file in it).

    Exit 0 valid, 1 invalid, 2 unreadable.
    """
    needing = (
        ("--set", settings),
        ("--without", degradation.without),
        ("--derate", degradation.derate),
        ("--gpus", degradation.gpus),
    )
    given = [flag for flag, value in needing if value]
    if given and topo is None:
        raise InputError(f"{given[0]} needs --topology", hint="e.g. --topology dgx-a100 --set boxes=2")
    topology: Topology | None = load_topology(topo, settings, degradation) if topo is not None else None
    options = _Options(
        runtime=runtime,
        topology=topology,
        call=_call(explain, nranks, size, topology),
        dtype=dtype,
        inplace=inplace,
        buffer_bytes=_buffer_bytes(buffsize),
        quiet=as_json,
    )
    results: list[_Checked] = []
    for name in _expand(files):
        try:
            report, selection = _check(name, options)
        except InputError as error:  # unreadable or beyond collc's limits: this file only
            results.append(_Checked(name, error=error))
            click.echo(str(error), err=True)
            continue
        results.append(_Checked(name, report, selection))
        if not as_json:
            click.echo(_render(report, selection))
    exit_code = max((result.exit_code for result in results), default=0)
    loaded = [
        (r.name, r.report.algorithm) for r in results if r.report and r.report.ok and r.report.algorithm
    ]
    pairs = overlapping(loaded)  # the target runtimes spell the collectives alike
    overlaps = [pair.message for pair in pairs if not pair.fallback]
    fallbacks = [pair.message for pair in pairs if pair.fallback]
    # with --explain: the first selected file in load order
    chosen = next((r.name for r in results if r.selection is not None and r.selection.selected), None)
    if as_json:
        values = {
            "ok": exit_code == 0,
            "files": [result.to_json() for result in results],
            "overlaps": overlaps,
            "fallbacks": fallbacks,
            "chosen": chosen,
        }
        error = next((result.error for result in results if result.error is not None), None)
        click.echo(json.dumps(json_document(VERIFY_KEYS, values, error, exit_code), indent=2))
    else:
        for message in overlaps:
            click.echo(f"warning: {message} [overlapping-selection]")
        for message in fallbacks:
            click.echo(f"note: {message}")
        if options.call and len(results) > 1:
            caveat = (
                " (if it loads at all: an invalid file in the set can fail initialisation)"
                if exit_code
                else ""
            )
            click.echo(
                f"the runtime would use: {chosen or 'none of these files (NCCL runs the call)'}{caveat}"
            )
    click.get_current_context().exit(exit_code)


@dataclass(frozen=True)
class _Options:
    """What every file is checked with: the options of the command line, read once."""

    runtime: str | None
    topology: Topology | None
    call: tuple[int | None, int] | None  # --explain: (nranks or None, nbytes)
    dtype: str
    inplace: bool
    buffer_bytes: int | None
    quiet: bool  # --json: no progress on the terminal


@dataclass(frozen=True)
class _Checked:
    """What became of one file: its report and, with ``--explain``, its selection; or the located error
    that kept it from being checked (unreadable, not UTF-8, beyond collc's limits)."""

    name: str
    report: VerifyReport | None = None
    selection: Selection | None = None
    error: InputError | None = None

    @property
    def exit_code(self) -> int:
        """2 where the file could not be checked, 1 where it is invalid, not selected or hangs at the
        explained size, else 0: the command exits with the worst."""
        if self.error is not None or self.report is None:
            return InputError.exit_code
        selection = self.selection
        good = self.report.ok and (selection is None or (selection.selected and selection.deadlock is None))
        return 0 if good else 1

    def to_json(self) -> dict[str, object]:
        """The file's entry in ``files``: :data:`FILE_KEYS` (``runtime`` and ``selection`` null where they
        do not apply), then the outcome keys of this file alone (its error, hint, location, exit code)."""
        values: dict[str, object] = (
            self.report.to_dict()
            if self.report is not None
            else {"file": self.name, "ok": False, "problems": [], "problem_count": 0, "notes": []}
        )
        if self.selection is not None:
            values["selection"] = self.selection.to_dict()
        return json_document(FILE_KEYS, values, self.error, self.exit_code)


def _check(name: str, options: _Options) -> tuple[VerifyReport, Selection | None]:
    """Read and verify one file (an MSCCL++ plan by the executor's rules, else MSCCL XML) and, with
    ``--explain``, say whether the call selects it; an InputError where the file cannot be read or
    exceeds collc's limits."""
    text = read_schedule_text(name)
    if looks_like_plan(text):  # an MSCCL++ execution plan: the executor's rules, no runtime choice
        report = verify_plan_text(text, name, options.topology)
        if options.runtime not in (None, "mscclpp"):
            report.notes.append(
                f"--runtime {options.runtime} does not apply: plans run on the MSCCL++ executor"
            )
        if options.call:
            report.notes.append("selection not explained: --explain covers MSCCL XML files")
        return report, None
    # an explicit --runtime wins; then the file's own declaration; then the topology's
    topology_runtime = options.topology.metadata.runtime if options.topology is not None else None
    file_runtime = options.runtime or (None if declared_runtime(text) else topology_runtime)
    with terminal_progress(options.quiet) as progress:
        report = verify_text(
            text,
            name,
            runtime=file_runtime,
            topology=options.topology,
            buffer_bytes=options.buffer_bytes,
            progress=progress,
        )
    if name.endswith(".json") or leading_character(text) == "[":
        report.notes.append(
            "read as MSCCL XML: an MSCCL++ plan is one JSON object (its first character '{'), and this "
            "file is neither"
        )
    if file_runtime == "mscclpp":
        report.notes.append(
            "runtime mscclpp: MSCCL++ runs execution plans (JSON); this MSCCL program is held to the "
            "rules collc's translation into a plan needs (docs/mscclpp.md)"
        )
    if not options.call:
        return report, None
    if not report.ok:
        report.notes.append("selection not explained: the file is invalid")
        return report, None
    assert report.algorithm is not None  # a valid report was read
    buffer = deployed_buffer(report.algorithm, options.buffer_bytes)
    return report, _selection(report.algorithm, report.runtime, options, buffer)


def _expand(names: tuple[str, ...]) -> list[str]:
    """Files as given; a directory stands for every regular file (or link) directly in it, in sorted
    order, exactly what the runtime loads from MSCCL_ALGO_DIR."""
    expanded = []
    for name in names:
        if Path(name).is_dir():  # nothing checked must not read as "every file is valid"
            expanded.extend(str(entry) for entry in directory_files(name, "verify"))
        else:
            expanded.append(name)
    return expanded


def _call(
    explain_flag: bool, nranks: int | None, size: str | None, topology: Topology | None
) -> tuple[int | None, int] | None:
    """``(nranks or None, nbytes)`` of the call to explain, or None without ``--explain``; a missing
    ``nranks`` means each file's own ``ngpus``."""
    if not explain_flag:
        return None
    if size is None:
        raise InputError("--explain needs --bytes", hint="e.g. --explain --bytes 64MiB [--nranks 16]")
    nranks = nranks if nranks is not None else (topology.num_gpus if topology is not None else None)
    return nranks, parse_size(size, option="--bytes")


def _buffer_bytes(buffsize: str | None) -> int | None:
    if buffsize is None:
        return None
    value = parse_size(buffsize, option="--buffsize")
    if value < SLOTS:
        raise InputError(
            f"--buffsize {buffsize} is smaller than the {SLOTS} slots of a connection buffer",
            hint="give the buffer in bytes as NCCL takes it, e.g. --buffsize 4MiB",
        )
    return value


def _selection(algo: Algorithm, runtime: str, options: _Options, buffer_bytes: int | None) -> Selection:
    """Whether the ``--explain`` call selects ``algo``, and whether a call of its size completes."""
    assert options.call is not None
    nranks, nbytes = options.call
    return explain_call(
        algo,
        nranks=nranks if nranks is not None else algo.ngpus,
        nbytes=nbytes,
        dtype_size=DTYPE_SIZES[options.dtype],
        inplace=options.inplace,
        runtime=runtime,
        buffer_bytes=buffer_bytes,
    )
