"""``collc verify FILE...``: lint and simulate MSCCL XML files and MSCCL++ execution plans (JSON);
optionally explain runtime selection (XML).

Exit status: 0 every file is valid (and, with ``--explain``, selected), 1 some file is invalid (or not
selected), 2 some file could not be read or an option is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from collc.cli import main
from collc.cli.common import degradation_options, directory_files, load_topology
from collc.cli.jsonout import json_option
from collc.errors import InputError
from collc.fileio import read_bounded
from collc.input_limits import MAX_SCHEDULE_BYTES
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


def _read(path: Path) -> str:
    try:
        return read_bounded(path, MAX_SCHEDULE_BYTES, hint="pass an MSCCL XML file").decode("utf-8")
    except OSError as error:
        raise InputError(
            f"cannot read {path}: {error.strerror or error}", hint="pass an existing MSCCL XML file"
        ) from None
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: the file is not UTF-8 text (byte {error.start})",
            hint="the runtimes read MSCCL XML as UTF-8 (ASCII) text; re-save it as UTF-8",
        ) from None


def _render(report: VerifyReport, selection: Selection | None) -> str:
    errors = len(report.errors)
    warnings = len(report.problems) - errors
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
    call = _call(explain, nranks, size, topology)
    buffer_bytes = _buffer_bytes(buffsize)
    topology_runtime = topology.metadata.runtime if topology is not None else None
    outputs: list[dict[str, object]] = []
    loaded: list[tuple[str, Algorithm]] = []
    chosen: str | None = None  # with --explain: the first selected file in load order
    exit_code = 0
    for name in _expand(files):
        try:
            text = _read(Path(name))
        except InputError as error:
            click.echo(str(error), err=True)
            outputs.append({"file": name, "ok": False, "unreadable": error.message})
            exit_code = 2
            continue
        if looks_like_plan(text):  # an MSCCL++ execution plan: the executor's rules, no runtime choice
            report = verify_plan_text(text, name, topology)
            if runtime not in (None, "mscclpp"):
                report.notes.append(f"--runtime {runtime} does not apply: plans run on the MSCCL++ executor")
            if call:
                report.notes.append("selection not explained: --explain covers MSCCL XML files")
            exit_code = max(exit_code, 0 if report.ok else 1)
            outputs.append(report.to_dict())
            if not as_json:
                click.echo(_render(report, None))
            continue
        # an explicit --runtime wins; then the file's own declaration; then the topology's
        file_runtime = runtime or (None if declared_runtime(text) else topology_runtime)
        with terminal_progress(as_json) as progress:
            report = verify_text(
                text,
                name,
                runtime=file_runtime,
                topology=topology,
                buffer_bytes=buffer_bytes,
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
        selection = None
        if call and report.ok:
            assert report.algorithm is not None  # a valid report was read
            buffer = deployed_buffer(report.algorithm, buffer_bytes)
            selection = _selection(report.algorithm, report.runtime, call, dtype, inplace, buffer)
        if call and not report.ok:
            report.notes.append("selection not explained: the file is invalid")
        if report.ok:
            assert report.algorithm is not None
            loaded.append((name, report.algorithm))
        if selection is not None and selection.selected and chosen is None:
            chosen = name
        good = report.ok and (selection is None or (selection.selected and selection.deadlock is None))
        exit_code = max(exit_code, 0 if good else 1)
        record = report.to_dict()
        if selection is not None:
            record["selection"] = selection.to_dict()
        outputs.append(record)
        if not as_json:
            click.echo(_render(report, selection))
    pairs = overlapping(loaded)  # the target runtimes spell the collectives alike
    overlaps = [pair.message for pair in pairs if not pair.fallback]
    fallbacks = [pair.message for pair in pairs if pair.fallback]
    if as_json:
        values = {
            "ok": exit_code == 0,
            "files": outputs,
            "overlaps": overlaps,
            "fallbacks": fallbacks,
            "chosen": chosen,
        }
        document = json_document(VERIFY_KEYS, values, exit_code=exit_code)
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        for message in overlaps:
            click.echo(f"warning: {message} [overlapping-selection]")
        for message in fallbacks:
            click.echo(f"note: {message}")
        if call and len(outputs) > 1:
            caveat = (
                " (if it loads at all: an invalid file in the set can fail initialisation)"
                if exit_code
                else ""
            )
            click.echo(
                f"the runtime would use: {chosen or 'none of these files (NCCL runs the call)'}{caveat}"
            )
    click.get_current_context().exit(exit_code)


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


def _call(explain_flag: bool, nranks: int | None, size: str | None, topology: Topology | None):
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


def _selection(
    algo: Algorithm, runtime: str, call, dtype: str, inplace: bool, buffer_bytes: int | None
) -> Selection:
    nranks, nbytes = call
    return explain_call(
        algo,
        nranks=nranks if nranks is not None else algo.ngpus,
        nbytes=nbytes,
        dtype_size=DTYPE_SIZES[dtype],
        inplace=inplace,
        runtime=runtime,
        buffer_bytes=buffer_bytes,
    )
