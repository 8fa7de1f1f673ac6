"""`suuupra jobs ...` and `suuupra flink ...`: run PyFlink jobs locally or on a session cluster."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from jobs.registry import JOBS, UnknownJobError, job_file, job_module
from suuupra.cli.context import console, fail, state
from suuupra.flink_cluster import FlinkCluster, stop_with_savepoint, submit
from suuupra.platform.base import PlatformError

app = typer.Typer(help="Run the PyFlink jobs: local mini-cluster, session cluster, restore.", no_args_is_help=True)
cluster_app = typer.Typer(help="A standalone Flink session cluster from the PyFlink package.", no_args_is_help=True)

Bounded = Annotated[bool, typer.Option("--bounded", help="Read the topics up to their current end, then finish.")]


def _export_settings(ctx: typer.Context) -> None:
    """Jobs load their settings themselves (also under `flink run`): pass the CLI's choices on as environment."""
    cli = state(ctx)
    if cli.config_file:
        os.environ["SUUUPRA_CONFIG"] = str(cli.config_file.resolve())
    if cli.profile:
        os.environ["SUUUPRA_PROFILE"] = cli.profile


@app.command("list")
def list_jobs() -> None:
    """The jobs there are."""
    for name, module in sorted(JOBS.items()):
        console.print(f"{name}  ({module})")


@app.command()
def run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Job name, see `suuupra jobs list`.")],
    bounded: Bounded = False,
    restore: Annotated[
        str | None, typer.Option(help="Start from this checkpoint or savepoint folder, or 'latest'.")
    ] = None,
) -> None:
    """Run a job on a local mini-cluster, in the foreground (Ctrl-C stops it; its checkpoints are kept)."""
    _export_settings(ctx)
    settings = state(ctx).settings
    try:
        module = job_module(name)
    except UnknownJobError as error:
        raise fail(str(error)) from error
    from jobs.runtime import job_checkpoint_dir, latest_checkpoint

    if restore:
        path = latest_checkpoint(settings, name) if restore == "latest" else Path(restore)
        if path is None:
            raise fail(
                f"no completed checkpoint of {name} under {job_checkpoint_dir(settings, name)}; run it without "
                "--restore, or give --restore the chk-N folder of another run"
            )
        if not path.exists():
            raise fail(f"no checkpoint or savepoint folder {path}; give --restore an existing one, or 'latest'")
        os.environ["SUUUPRA_FLINK__RESTORE_FROM"] = str(path)
        console.print(f"restoring from {path}")
    console.print(f"running {name} on a local mini-cluster (checkpoints in {job_checkpoint_dir(settings, name)})")
    # Ctrl-C raises _Stopped rather than KeyboardInterrupt, which py4j, waiting for the JVM, logs with a traceback.
    # A run whose SIGINT is ignored (started in the background by a shell) keeps ignoring it.
    interruptible = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if interruptible:
        signal.signal(signal.SIGINT, _stopped)
    try:
        module.main(["--bounded"] if bounded else [])
    except (_Stopped, KeyboardInterrupt):
        again = f"suuupra jobs run {name}{' --bounded' if bounded else ''} --restore latest"
        console.print(f"stopped; `{again}` goes on from its last checkpoint", soft_wrap=True)
        raise typer.Exit(130) from None
    finally:
        if interruptible:
            signal.signal(signal.SIGINT, signal.default_int_handler)


class _Stopped(BaseException):
    """Ctrl-C during `jobs run`."""


def _stopped(signum: int, frame: object) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while it stops changes nothing
    raise _Stopped


@app.command("submit")
def submit_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Job name, see `suuupra jobs list`.")],
    jobmanager: Annotated[str, typer.Option(help="REST address of the session cluster, HOST:PORT.")],
    bounded: Bounded = False,
    detached: Annotated[bool, typer.Option("--detached", help="Return once the job is submitted.")] = False,
    restore: Annotated[Path | None, typer.Option(help="Start from this savepoint or checkpoint folder.")] = None,
) -> None:
    """Submit a job to a Flink session cluster with `flink run -py` (connector jars and Python included)."""
    _export_settings(ctx)
    settings = state(ctx).settings
    try:
        submit(settings, job_file(name), jobmanager, ["--bounded"] if bounded else [], detached, restore,
               report=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True))  # fmt: skip
    except (UnknownJobError, PlatformError) as error:
        raise fail(str(error)) from error


@app.command()
def stop(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Job name, see `suuupra jobs list`.")],
    jobmanager: Annotated[str, typer.Option(help="REST address of the session cluster, HOST:PORT.")],
    savepoint_dir: Annotated[Path, typer.Option(help="Where the savepoint goes.")],
) -> None:
    """Stop a job running on a session cluster with a savepoint; `jobs submit --restore` continues from it."""
    try:
        location = stop_with_savepoint(jobmanager, name, savepoint_dir)
    except PlatformError as error:
        raise fail(str(error)) from error
    console.print(f"{name} stopped; savepoint: {location}")


@cluster_app.command()
def up(ctx: typer.Context) -> None:
    """Start a JobManager and a TaskManager on 127.0.0.1 (REST on `flink.rest_port`); on a running cluster, start a
    TaskManager if its own died (its jobs then restart there from their last checkpoints)."""
    cluster = FlinkCluster(state(ctx).settings)
    try:
        started = cluster.start()
    except PlatformError as error:
        raise fail(str(error)) from error
    what = f"started {' and '.join(started)}" if started else "already running"
    console.print(f"Flink session cluster up ({what}): {cluster.rest_url}")


@cluster_app.command()
def down(ctx: typer.Context) -> None:
    """Stop the session cluster started by `suuupra flink up`."""
    FlinkCluster(state(ctx).settings).stop()
    console.print("Flink session cluster stopped")
