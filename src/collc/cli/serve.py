"""``collc serve``: run the schedule service (docs/serve.md)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import click

from collc.cli import main
from collc.errors import InputError
from collc.input_limits import MAX_GPUS
from collc.serve.policy import POLICIES, MLFQConfig, make_policy
from collc.serve.steps import HELD_STATES
from collc.sizes import parse_size

#: the environment variable read for the bearer token when --token is not given
TOKEN_VARIABLE = "COLLC_SERVE_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only this machine (then no token is required)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8470, show_default=True)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False),
    default="collc-serve-state",
    show_default=True,
    help="Directory of the SQLite database (jobs, results, cache) and offloaded job states.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 1024),
    default=None,
    help="Workers (processes, or Ray actors) [default: the cores].",
)
@click.option(
    "--backend",
    "backend_name",
    type=click.Choice(["process", "ray"]),
    default="process",
    show_default=True,
    help="Where workers run: processes here, or actors on a Ray cluster (pip install 'collc[ray]').",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDRESS",
    help="The Ray cluster to join ('auto': the one this machine belongs to) [default: start a local Ray].",
)
@click.option("--policy", type=click.Choice(POLICIES), default="skip-join", show_default=True)
@click.option(
    "--quantum",
    type=float,
    default=MLFQConfig.base_quantum,
    show_default=True,
    help="MLFQ top-level quantum (s).",
)
@click.option(
    "--levels", type=click.IntRange(1, 16), default=MLFQConfig.levels, show_default=True, help="MLFQ levels."
)
@click.option(
    "--aging",
    type=float,
    default=MLFQConfig.aging,
    show_default=True,
    help="Seconds of waiting that promote a job one level.",
)
@click.option(
    "--memory-budget",
    default="1GiB",
    show_default=True,
    metavar="SIZE",
    help="Preempted jobs' states held in memory; beyond it the last to run are written to --state.",
)
@click.option(
    "--held-states",
    type=click.IntRange(0, 64),
    default=HELD_STATES,
    show_default=True,
    help="Preempted jobs each worker keeps alive (no pickling); beyond them states go to the budget.",
)
@click.option("--max-gpus", type=click.IntRange(2, MAX_GPUS), default=MAX_GPUS, show_default=True)
@click.option("--no-cache", is_flag=True, help="Compile every request (benchmarks): no cache, no coalescing.")
@click.option(
    "--token", default=None, help=f"Bearer token required on requests [default: ${TOKEN_VARIABLE}]."
)
def serve_command(
    host: str,
    port: int,
    state_dir: str,
    workers: int | None,
    backend_name: str,
    ray_address: str | None,
    policy: str,
    quantum: float,
    levels: int,
    aging: float,
    memory_budget: str,
    held_states: int,
    max_gpus: int,
    no_cache: bool,
    token: str | None,
) -> None:
    """Serve compiles over HTTP/JSON: submit, status, result, cancel, health, /metrics."""
    import uvicorn

    from collc.serve.app import create_app
    from collc.serve.backend import Backend, ProcessBackend
    from collc.serve.scheduler import Scheduler
    from collc.serve.store import Store

    token = token or os.environ.get(TOKEN_VARIABLE) or None
    if not is_loopback(host) and not token:
        raise InputError(
            f"--host {host} accepts connections from other machines, so a bearer token is required",
            hint=f"give --token TOKEN or set {TOKEN_VARIABLE}, or bind 127.0.0.1",
        )
    if quantum <= 0 or aging <= 0:
        raise InputError("--quantum and --aging must be positive seconds")
    if ray_address is not None and backend_name != "ray":
        raise InputError("--ray-address is for --backend ray", hint="add --backend ray")
    config = MLFQConfig(levels=levels, base_quantum=quantum, aging=aging)
    budget = parse_size(memory_budget, option="--memory-budget", minimum=0)
    store = Store(Path(state_dir))
    count = workers or os.cpu_count() or 1
    if backend_name == "ray":
        from collc.serve.ray_backend import RayBackend

        backend: Backend = RayBackend(count, held_states, ray_address)
    else:
        backend = ProcessBackend(count, held_states)
    scheduler = Scheduler(
        store,
        backend,
        make_policy(policy, config),
        memory_budget=budget,
        max_gpus=max_gpus,
        cache=not no_cache,
    )
    scheduler.start()
    try:
        click.echo(
            f"collc serve: http://{host}:{port} ({policy}, {backend.workers} workers, state in {state_dir})",
            err=True,
        )
        uvicorn.run(create_app(scheduler, token), host=host, port=port, log_level="warning")
    finally:
        scheduler.close()
        store.close()
