"""`suuupra platform ...`: the local platform."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from suuupra.cli.context import console, fail, state
from suuupra.platform.base import PlatformError
from suuupra.platform.manager import ComponentStatus, Platform

app = typer.Typer(
    help="Run the local platform: Kafka, schema registry, ClickHouse, Redis, PostgreSQL.",
    no_args_is_help=True,
)


def _table(statuses: list[ComponentStatus]) -> Table:
    table = Table("component", "state", "pid", "address", "detail")
    for status in statuses:
        health = "[green]healthy[/]" if status.health.ok else "[red]down[/]"
        table.add_row(status.name, health, str(status.pid or "-"), status.address, status.health.detail)
    return table


def _platform(ctx: typer.Context) -> Platform:
    try:
        return Platform(state(ctx).settings, report=lambda message: console.print(f"  {message}"))
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
def up(ctx: typer.Context) -> None:
    """Install what is missing, start every component on 127.0.0.1 and wait until each one answers."""
    platform = _platform(ctx)
    began = time.monotonic()
    try:
        statuses = platform.up()
    except PlatformError as error:
        raise fail(
            f"{error}\nRun `suuupra platform status` to see what is up, `suuupra platform down` to stop it."
        ) from error
    console.print(_table(statuses))
    console.print(f"platform up in {time.monotonic() - began:.1f} s; data in {platform.settings.paths.data_dir}")


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the processes `platform up` started (nothing else); data is kept."""
    stopped = _platform(ctx).down()
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing of ours was running")


@app.command()
def status(ctx: typer.Context) -> None:
    """Show each component's health; exits 1 if any is down."""
    statuses = _platform(ctx).status()
    console.print(_table(statuses))
    if not all(s.health.ok for s in statuses):
        raise typer.Exit(1)
