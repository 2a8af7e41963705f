"""The HTTP/JSON API of ``collc serve`` (Starlette on uvicorn; docs/serve.md lists the endpoints).

Bad requests get a 4xx whose JSON body carries the CLI's message (``error``, the same text ``collc
compile`` prints, located in the submitted topology) and its ``exit_code``; so do unknown paths and
methods. Request bodies are read up to :data:`MAX_REQUEST_BYTES`, as JSON only (``Content-Type:
application/json``, each key once); a bearer token, when set, is required on every endpoint but health.
"""

from __future__ import annotations

import hmac
import io
import json
import tarfile
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from collc import __version__
from collc.errors import CollcError, InputError
from collc.input_limits import MAX_TOPOLOGY_BYTES
from collc.jsondoc import DuplicateKey, unique_members
from collc.serve.scheduler import Scheduler
from collc.serve.store import JobRow

#: the largest request body: a topology at the size limit plus its options
MAX_REQUEST_BYTES = MAX_TOPOLOGY_BYTES + 64 * 1024
#: the endpoints, for the hint of a request to a path that is none of them
ENDPOINTS = "POST /v1/jobs, GET|DELETE /v1/jobs/ID, GET /v1/jobs/ID/result, GET /healthz, GET /metrics"


def _error(
    status: int, message: str, exit_code: int = 2, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A refusal as every endpoint answers it: the CLI's message and exit code (docs/serve.md)."""
    return JSONResponse({"error": message, "exit_code": exit_code}, status_code=status, headers=headers)


async def _routing_error(request: Request, error: Exception) -> Response:
    """Starlette's own refusals (a path that is no endpoint, a method the path does not take) as the
    JSON errors every other refusal is, so that a client reads one shape of error."""
    assert isinstance(error, HTTPException)
    method, path = request.method, request.url.path
    message = {404: f"no endpoint {method} {path}", 405: f"{method} is not allowed on {path}"}.get(
        error.status_code, f"{method} {path}: {error.detail}"
    )
    refusal = InputError(message, hint=f"endpoints: {ENDPOINTS}")
    return _error(error.status_code, str(refusal), headers=error.headers)


def _json_media_type(content_type: str | None) -> None:
    """Refuse a body that does not say it is JSON (a form or text is not read as JSON by guess)."""
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        stated = f"its Content-Type is {media_type}" if media_type else "it has no Content-Type"
        raise InputError(
            f"the request body must be application/json; {stated}",
            hint="send the header Content-Type: application/json",
        )


def request_json(body: bytes) -> object:
    """The request body parsed as JSON, each object's keys unique (an InputError otherwise)."""
    try:
        return json.loads(body, object_pairs_hook=unique_members)
    except DuplicateKey as error:
        raise InputError(
            f"the request gives the key {error.args[0]!r} twice", hint="give each key once"
        ) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"the request is not JSON: {error}") from None
    except RecursionError:  # the parser recurses once per level: 100,000 '[' was an HTTP 500
        raise InputError(
            "the request nests too deeply to be a compile request", hint="a request is one flat object"
        ) from None


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it is larger than :data:`MAX_REQUEST_BYTES` (stops reading there)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(scheduler: Scheduler, token: str | None = None) -> Starlette:
    """The ASGI application over ``scheduler`` (which the caller starts and closes)."""

    def authorised(request: Request) -> bool:
        if not token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            if not authorised(request):
                return _error(401, "error: a bearer token is required (Authorization: Bearer TOKEN)")
            return await handler(request)

        return endpoint

    async def submit(request: Request) -> Response:
        try:
            _json_media_type(request.headers.get("content-type"))
        except InputError as error:
            return _error(415, str(error))
        body = await _read_body(request)
        if body is None:
            return _error(413, f"error: the request is larger than {MAX_REQUEST_BYTES} bytes")
        try:
            admission = await run_in_threadpool(scheduler.submit, request_json(body))
        except CollcError as error:
            return _error(400 if error.exit_code == 2 else 422, str(error), error.exit_code)
        status = admission.job.status()
        status.update(cached=admission.cached, coalesced=admission.coalesced)
        return JSONResponse(status, status_code=200 if admission.cached else 202)

    def find_job(request: Request) -> JobRow | None:
        return scheduler.store.job(request.path_params["job"])

    async def status(request: Request) -> Response:
        job = find_job(request)
        if job is None:
            return _error(404, f"error: no job {request.path_params['job']!r}")
        return JSONResponse(job.status())

    async def result(request: Request) -> Response:
        job = find_job(request)
        if job is None:
            return _error(404, f"error: no job {request.path_params['job']!r}")
        if job.state in ("failed", "cancelled"):
            return _error(409, job.error or job.state, job.exit_code or 1)
        stored = scheduler.store.result(job.key) if job.state == "done" else None
        if stored is None:
            return _error(409, f"error: job {job.id} is {job.state}, not done", 0)
        output = str(job.spec.get("output") or "schedule.xml")
        stored = stored.named(output)
        fmt = request.query_params.get("format", "xml")
        if fmt == "xml":
            return Response(stored.xml, media_type="application/xml")
        if fmt == "json":
            return Response(stored.report, media_type="application/json")
        if fmt == "text":
            return PlainTextResponse(stored.text)
        if fmt == "tar":
            return Response(_tar(output, stored.xml, stored.report), media_type="application/x-tar")
        return _error(400, f"error: unknown format {fmt!r}; use xml, json, text or tar")

    async def cancel(request: Request) -> Response:
        job = await run_in_threadpool(scheduler.cancel, request.path_params["job"])
        if job is None:
            return _error(404, f"error: no job {request.path_params['job']!r}")
        return JSONResponse(job.status())

    async def job(request: Request) -> Response:
        """A job's status (GET) or its cancellation (DELETE): one route, so that a 405 allows both."""
        return await (cancel(request) if request.method == "DELETE" else status(request))

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "version": __version__, "policy": scheduler.policy.name})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(metrics_text(scheduler), media_type="text/plain; version=0.0.4")

    return Starlette(
        routes=[
            Route("/v1/jobs", guarded(submit), methods=["POST"]),
            Route("/v1/jobs/{job}", guarded(job), methods=["GET", "DELETE"]),
            Route("/v1/jobs/{job}/result", guarded(result), methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/metrics", guarded(metrics), methods=["GET"]),
        ],
        exception_handlers={HTTPException: _routing_error},
    )


def _tar(output: str, xml: str, report: str) -> bytes:
    """The result as a tar: the XML file under its requested name and the JSON report beside it."""
    buffer = io.BytesIO()
    name = output.replace("/", "_").replace("\\", "_")
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for member, text in ((name, xml), (name.rsplit(".", 1)[0] + ".report.json", report)):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def metrics_text(scheduler: Scheduler) -> str:
    """Prometheus text exposition of the queues, jobs, JCT histograms and counters."""
    counters = scheduler.counters
    policy = scheduler.policy.name
    lines = ["# TYPE collc_queue_length gauge"]
    for level, length in enumerate(scheduler.queue_lengths()):
        lines.append(f'collc_queue_length{{policy="{policy}",level="{level}"}} {length}')
    lines += ["# TYPE collc_running_jobs gauge", f"collc_running_jobs {scheduler.running()}"]
    lines += ["# TYPE collc_jobs gauge"]
    lines += [
        f'collc_jobs{{state="{state}"}} {count}' for state, count in sorted(scheduler.store.counts().items())
    ]
    lines += ["# TYPE collc_state_memory_bytes gauge", f"collc_state_memory_bytes {scheduler.memory_held()}"]
    for name, value in (
        ("preemptions", counters.preemptions),
        ("offloads", counters.offloads),
        ("reloads", counters.reloads),
        ("cache_hits", counters.cache_hits),
        ("coalesced", counters.coalesced),
    ):
        lines += [f"# TYPE collc_{name}_total counter", f"collc_{name}_total {value}"]
    lines += [
        "# TYPE collc_job_completion_seconds histogram",
        *counters.jct.lines("collc_job_completion_seconds"),
    ]
    lines += [
        "# TYPE collc_small_job_completion_seconds histogram",
        *counters.small_jct.lines("collc_small_job_completion_seconds"),
    ]
    return "\n".join(lines) + "\n"
