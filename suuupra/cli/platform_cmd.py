"""`suuupra platform ...`: the local platform."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from suuupra.cli.context import console, fail, state
from suuupra.platform.base import PlatformError
from suuupra.platform.manager import ComponentStatus, Platform
from suuupra.settings import load_profile, record_platform_state

app = typer.Typer(
    help="Run the local platform: Kafka, schema registry, ClickHouse, Redis, PostgreSQL.",
    no_args_is_help=True,
)


def kafka_shape(brokers: int) -> dict[str, int]:
    """The local cluster's Kafka settings for `brokers` nodes: the production profile's replication where there are
    nodes enough for it."""
    production = load_profile("production").get("kafka", {})
    replication = min(int(production.get("replication_factor", 3)), brokers)
    min_insync = min(int(production.get("min_insync_replicas", 2)), max(1, replication - 1))
    return {"brokers": brokers, "replication_factor": replication, "min_insync_replicas": min_insync}


def _table(statuses: list[ComponentStatus]) -> Table:
    table = Table("component", "state", "pid", "address", "detail")
    for status in statuses:
        health = "[green]healthy[/]" if status.health.ok else "[red]down[/]"
        table.add_row(status.name, health, str(status.pid or "-"), status.address, status.health.detail)
    return table


def _platform(ctx: typer.Context, kafka: dict[str, int] | None = None) -> Platform:
    settings = state(ctx).settings
    if kafka is not None:
        settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update=kafka)})
    try:
        return Platform(settings, report=lambda message: console.print(f"  {message}"))
    except PlatformError as error:
        raise fail(str(error)) from error


@app.command()
def install(ctx: typer.Context) -> None:
    """Install what is missing: Debian packages (as root) and Kafka and Apicurio jars from Maven Central."""
    platform = _platform(ctx)
    try:
        platform.install()
    except PlatformError as error:
        raise fail(str(error)) from error
    console.print(f"installed; JVM components in {platform.settings.paths.lib_dir}")


@app.command()
def up(
    ctx: typer.Context,
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1, max=9,
            help="Kafka brokers: 3 gives the production profile's replication (3) and min.insync.replicas (2). "
            "Recorded in the data folder, so later commands and `platform up` use the same cluster; changing it "
            "needs Kafka's data removed.",
        ),
    ] = None,
) -> None:  # fmt: skip
    """Install what is missing, start every component on 127.0.0.1 and wait until each one answers."""
    shape = kafka_shape(brokers) if brokers is not None else None
    platform = _platform(ctx, kafka=shape)
    began = time.monotonic()
    try:
        statuses = platform.up()
    except PlatformError as error:
        raise fail(
            f"{error}\nRun `suuupra platform status` to see what is up, `suuupra platform down` to stop it."
        ) from error
    if shape is not None:
        record_platform_state(platform.settings, "kafka", dict(shape))
    console.print(_table(statuses))
    console.print(f"platform up in {time.monotonic() - began:.1f} s; data in {platform.settings.paths.data_dir}")


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the processes `platform up` started (nothing else); data is kept."""
    stopped = _platform(ctx).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


@app.command()
def reset(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Stop the platform and delete its data (events, tables, databases, online features, search index, checkpoints);
    installed jars and trained models are kept. `suuupra platform up` then starts an empty platform."""
    platform = _platform(ctx)
    if not yes and not typer.confirm(f"Delete every component's data under {platform.settings.paths.data_dir}?"):
        raise typer.Exit(1)
    removed = platform.reset()
    console.print(f"removed: {', '.join(str(path) for path in removed)}" if removed else "nothing to remove")
    console.print("start an empty platform with `suuupra platform up`")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show each component's health; exits 1 if any is down."""
    statuses = _platform(ctx).status()
    console.print(_table(statuses))
    if not all(s.health.ok for s in statuses):
        raise typer.Exit(1)
