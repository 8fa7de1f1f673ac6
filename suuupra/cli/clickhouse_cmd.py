"""`suuupra clickhouse ...` (schema migrations, panel list) and `suuupra query PANEL` (a dashboard panel as a table)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.table import Table

from connectors.clickhouse.backend import ClickHouseError
from connectors.clickhouse.server import ServerBackend
from suuupra.cli.context import console, fail, state
from suuupra.clickhouse.migrate import MigrationError, migrate
from suuupra.clickhouse.migrate import server_backend as make_server_backend
from suuupra.clickhouse.panels import PanelError, get_panel, load_panels, run_panel
from suuupra.settings import ClickHouseSettings, Settings

app = typer.Typer(help="ClickHouse schema migrations and dashboard panels.", no_args_is_help=True)


@contextmanager
def _backend(settings: Settings | ClickHouseSettings) -> Iterator[ServerBackend]:
    # The driver logs every failed connect with a traceback; the error below already says what went wrong.
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)
    backend = make_server_backend(settings)
    try:
        yield backend
    except ClickHouseError as error:
        raise fail(str(error)) from error
    finally:
        backend.close()


@app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list the migrations that would run.")] = False,
) -> None:
    """Apply the migrations in infra/clickhouse/migrations that the database has not recorded yet, in order."""
    settings = state(ctx).settings
    database = settings.clickhouse.database
    with _backend(settings) as backend:
        try:
            report = migrate(backend, database, dry_run=dry_run)
        except (MigrationError, ValueError) as error:
            raise fail(str(error)) from error
    already = len(report.already_applied)
    if dry_run:
        if not report.pending:
            console.print(f"database {database}: all {already} migration(s) applied, nothing to do")
        for migration in report.pending:
            console.print(f"[yellow]would apply[/] {migration.path.name}")
        return
    for migration in report.applied:
        console.print(f"[green]applied[/] {migration.path.name}")
    if report.applied:
        console.print(f"database {database}: {len(report.applied)} migration(s) applied, {already} were applied before")
    else:
        console.print(f"database {database}: all {already} migration(s) already applied, nothing to do")


@app.command("panels")
def panels_command() -> None:
    """List the dashboard panels `suuupra query` can show."""
    table = Table("panel", "title", "description")
    for panel in load_panels().values():
        table.add_row(panel.name, panel.title, panel.description)
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def query(
    ctx: typer.Context,
    panel: Annotated[str, typer.Argument(help="Panel name; `suuupra clickhouse panels` lists them.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many rows.")] = 50,
    hours: Annotated[
        int, typer.Option("--hours", min=0, help="Only the last N hours of data (counted from the newest row); 0: all.")
    ] = 0,
) -> None:
    """Show a dashboard panel (times in UTC)."""
    settings = state(ctx).settings
    try:
        chosen = get_panel(panel)
    except PanelError as error:
        raise fail(str(error)) from error
    with _backend(settings.clickhouse.as_reader()) as backend:
        try:
            columns, rows = run_panel(backend, chosen.name, settings.clickhouse.database, hours=hours, limit=limit)
        except ValueError as error:
            raise fail(str(error)) from error
        except ClickHouseError as error:
            if error.retryable:
                raise
            raise fail(
                f"{error}. Are the tables there? Run `suuupra clickhouse migrate` first "
                f"(database {settings.clickhouse.database})."
            ) from error
    scope = f"last {hours} h of data" if hours else "all data"
    table = Table(*columns, title=f"{chosen.title} ({scope}, UTC)", caption=f"{len(rows)} row(s), limit {limit}")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    console.print(table)
