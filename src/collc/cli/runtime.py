"""``collc runtime [PATH]``: which of collc's outputs an installed NCCL, RCCL or MSCCL++ shim loads.

With PATH it reads that library; without, it reads every libnccl, librccl and libmscclpp_nccl in the
usual places (:func:`collc.runtimes.libinfo.search_places`) and reports those it cannot read on one
line each. For each library it prints the family and version (from ``ncclGetVersion``), the MSCCL entry
points it exports, and for MSCCL XML and MSCCL++ plans whether it loads them and with which
environment variables. ``--json`` prints ``{"libraries": [...], "skipped": [{"path", "error"}]}``.
"""

from __future__ import annotations

import json

import click

from collc.cli import main
from collc.cli.jsonout import json_option
from collc.errors import InputError
from collc.jsondoc import json_document
from collc.runtimes.libinfo import (
    RuntimeReport,
    assess,
    default_search_places,
    found_libraries,
    read_library,
)


def report_text(report: RuntimeReport) -> str:
    """The human report of one library."""
    entry_points = ", ".join(report.msccl_entry_points) or "none"
    lines = [
        f"{report.path}: {report.flavor.value} {report.version} (version code {report.version_code})",
        f"  MSCCL entry points: {entry_points}",
    ]
    for support in report.outputs:
        lines.append(f"  {support.output}: {support.verdict.value}: {support.reason}")
        lines += [f"    {env.name}={env.value}  ({env.why})" for env in support.env]
    return "\n".join(lines)


#: the keys of every ``collc runtime --json`` document, then the outcome keys
RUNTIME_KEYS = ("libraries", "skipped")


@main.command()
@click.argument("path", required=False)
@json_option(RUNTIME_KEYS, help="Print the reports as JSON.")
def runtime(path: str | None, as_json: bool) -> None:
    """Say which of collc's outputs the NCCL/RCCL library at PATH (or each one found) loads."""
    skipped: list[dict[str, str]] = []
    if path is not None:
        reports = [assess(read_library(path))]
    else:
        places = default_search_places()
        candidates = found_libraries(places)
        if not candidates:
            raise InputError(
                "no libnccl, librccl or libmscclpp_nccl found in LD_LIBRARY_PATH, `ldconfig -p`, the "
                "system and CUDA/ROCm library directories or Python's nvidia/nccl and torch folders",
                hint="give the library's path: `collc runtime /path/to/libnccl.so.2`",
            )
        reports = []
        for candidate in candidates:
            try:
                reports.append(assess(read_library(candidate)))
            except InputError as error:
                skipped.append({"path": candidate, "error": error.message})
        if not reports:
            raise InputError(
                f"none of the {len(candidates)} libraries found could be read: "
                + "; ".join(f"{s['path']}: {s['error']}" for s in skipped),
                hint="give a library's path to see the full reason",
            )
    if as_json:
        libraries = [report.to_json() for report in reports]
        payload = json_document(RUNTIME_KEYS, {"libraries": libraries, "skipped": skipped})
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo("\n\n".join(report_text(r) for r in reports))
    for entry in skipped:
        click.echo(f"{entry['path']}: skipped: {entry['error']}")
