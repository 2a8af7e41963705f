"""``collc submit TOPO --server URL -o FILE``: compile on a ``collc serve`` service.

It takes ``collc compile``'s flags, waits for the job with a progress display (on a terminal; quiet
when piped or with ``--json``), writes the file atomically and prints the same report, with the same
exit codes: 2 for bad input (the service's message, located in the topology), 1 when no schedule can be
written, 3 for a verification failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, replace
from pathlib import Path

import click

from collc.cli import main
from collc.cli.common import degradation_options, output_path, parse_settings
from collc.cli.compile import compile_flag_options
from collc.cli.jsonout import json_option
from collc.cli.serve import TOKEN_VARIABLE
from collc.compile.flags import CompileFlags
from collc.compile.report import REPORT_KEYS
from collc.errors import CollcError, InfeasibleError, InputError
from collc.fileio import atomic_write, check_not_an_input
from collc.serve.steps import SUBMITTED, degradation_json
from collc.topology.degrade import Degradation
from collc.topology.selection import inline_files

#: seconds between status polls: the first poll comes soon (a cache hit), later ones less often
FIRST_POLL, LAST_POLL = 0.02, 0.5


class JobFailed(CollcError):
    """The service reported the job's error; it exits with the job's exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message.removeprefix("error: "))
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message if "error:" in self.message else f"error: {self.message}"

    def located(self, topo: str) -> JobFailed:
        """This error with the submitted topology text named as the user's ``topo``: the service
        locates a message in the text it got (:data:`SUBMITTED`), the user knows the file."""
        return JobFailed(self.message.replace(SUBMITTED, topo), self.exit_code)


class Client:
    """A minimal JSON client of the service (standard library only)."""

    def __init__(self, server: str, token: str | None, timeout: float = 30.0):
        self.server, self.token, self.timeout = server.rstrip("/"), token, timeout

    def request(self, method: str, path: str, body: object = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise InputError(
                f"cannot reach the collc service at {self.server}: {reason}",
                hint="start it with `collc serve`, or give --server URL",
            ) from None

    def json(self, method: str, path: str, body: object = None) -> dict[str, object]:
        status, payload = self.request(method, path, body)
        try:
            answer = json.loads(payload)
        except ValueError:
            raise InputError(
                f"{self.server}{path} answered {status} with no JSON; is it a collc service?"
            ) from None
        if status >= 400:
            raise JobFailed(str(answer.get("error")), int(answer.get("exit_code") or 2))
        return answer


def request_body(
    topo: str, settings: dict[str, str], flags: CompileFlags, output: str, degradation: Degradation
) -> dict[str, object]:
    """The submit request: a topology file's text, or a preset name, with its parameters, flags and
    changes (``--gpus @FILE`` sent as the names in the file)."""
    path = Path(topo)
    source: dict[str, object]
    if path.is_file():
        try:
            source = {"topology": path.read_text(encoding="utf-8")}
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read {topo}: {error}") from None
    else:
        source = {"preset": topo}
    if degradation.gpus:
        degradation = replace(degradation, gpus=inline_files(degradation.gpus))
    changes = degradation_json(degradation)
    return {**source, "set": settings, "options": asdict(flags), "output": output, **changes}


def finished(client: Client, body: dict[str, object], timeout: float, show: bool) -> dict[str, object]:
    """Submit ``body`` and wait for its job to be done (a JobFailed when it is refused or fails)."""
    job = client.json("POST", "/v1/jobs", body)
    job = wait(client, job, time.monotonic() + timeout, show)
    if job["state"] != "done":
        raise JobFailed(str(job["error"] or job["state"]), int(job["exit_code"] or 1))
    return job


def wait(client: Client, job: dict[str, object], deadline: float, show: bool) -> dict[str, object]:
    """Poll the job until it is over (or ``deadline``), showing its stage and progress when ``show``."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    delay = FIRST_POLL
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task("queued", total=1.0)
        while job["state"] not in ("done", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise InfeasibleError(
                    f"job {job['id']} did not finish within --timeout (state {job['state']})",
                    hint=f"it keeps running on the service; GET /v1/jobs/{job['id']} for its status",
                )
            time.sleep(delay)
            delay = min(LAST_POLL, delay * 2)
            job = client.json("GET", f"/v1/jobs/{job['id']}")
            stage = f"{job['state']} {job['stage']}".strip()
            bar.update(task, completed=float(job["progress"]), description=f"{stage} (level {job['level']})")
    return job


@main.command("submit")
@click.argument("topo", metavar="TOPO")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Set a topology parameter.")
@click.option(
    "-o", "--output", required=True, type=click.Path(), callback=output_path, help="XML file to write."
)
@compile_flag_options
@degradation_options
@click.option("--server", default="http://127.0.0.1:8470", show_default=True, help="The collc service.")
@click.option("--token", default=None, help=f"Bearer token [default: ${TOKEN_VARIABLE}].")
@json_option(REPORT_KEYS, help="Print the report as JSON (no progress display), as `collc compile` does.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait for the job.")
def submit_command(
    topo: str,
    settings: tuple[str, ...],
    output: str,
    server: str,
    token: str | None,
    as_json: bool,
    timeout: float,
    degradation: Degradation,
    **flags: object,
) -> None:
    """Compile TOPO on a collc service and write the file like `collc compile`."""
    client = Client(server, token or os.environ.get(TOKEN_VARIABLE))
    check_not_an_input([output], [topo])
    body = request_body(topo, parse_settings(settings, topo), CompileFlags(**flags), output, degradation)
    try:
        job = finished(client, body, timeout, show=not as_json and sys.stderr.isatty())
    except JobFailed as error:
        raise error.located(topo) from None
    status, xml = client.request("GET", f"/v1/jobs/{job['id']}/result?format=xml")
    if status != 200:
        raise JobFailed(f"the service did not return the result ({status})", 1)
    atomic_write(output, xml)
    report = "json" if as_json else "text"
    status, text = client.request("GET", f"/v1/jobs/{job['id']}/result?format={report}")
    click.echo(text.decode().rstrip("\n"))
