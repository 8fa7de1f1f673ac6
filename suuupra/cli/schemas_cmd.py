"""`suuupra schemas ...`: register the catalogue, check compatibility."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from schemas import CatalogError, default_catalog
from suuupra.cli.context import console, fail, state
from suuupra.events import make_registry
from suuupra.schema_tools.registry_sync import (
    Finding,
    check_against_git,
    check_against_registry,
    git_has_revision,
    register_all,
)

app = typer.Typer(help="The Avro schemas in schemas/: register them, check their evolution.", no_args_is_help=True)


@app.command()
def register(ctx: typer.Context) -> None:
    """Register every schema under `<topic>-<record name>` subjects and set their compatibility level."""
    settings = state(ctx).settings
    try:
        catalog = default_catalog()
        registrations = register_all(settings, catalog, make_registry(settings))
    except CatalogError as error:
        raise fail(str(error)) from error
    except Exception as error:  # registry errors come as several exception types
        raise fail(f"registry at {settings.registry.ccompat_url}: {error}. Is the platform up?") from error
    table = Table("event type", "subject", "id", "version")
    for registration in registrations:
        table.add_row(
            registration.event_type, registration.subject, str(registration.schema_id), str(registration.version)
        )
    console.print(table)
    console.print(f"{len(registrations)} schemas registered, compatibility {settings.registry.compatibility}")


@app.command("check")
def check_command(
    ctx: typer.Context,
    registry: Annotated[bool, typer.Option("--registry/--no-registry", help="Check against the registry.")] = True,
    git_rev: Annotated[
        str | None,
        typer.Option(
            "--git-rev", help="Also check against the schemas committed at this revision (e.g. HEAD, HEAD~1)."
        ),
    ] = "HEAD",
) -> None:
    """Fail (exit 1) on any change that breaks the configured compatibility (FULL by default: BACKWARD and FORWARD)."""
    settings = state(ctx).settings
    try:
        catalog = default_catalog()
    except CatalogError as error:
        raise fail(str(error)) from error
    findings: list[Finding] = []
    if git_rev:
        if git_has_revision(git_rev):
            findings += check_against_git(settings, catalog, git_rev)
        else:
            console.print(f"git revision {git_rev} does not exist: nothing committed to compare with")
    if registry:
        try:
            findings += check_against_registry(settings, catalog, make_registry(settings))
        except Exception as error:
            raise fail(f"registry at {settings.registry.ccompat_url}: {error}. Use --no-registry offline.") from error
    broken = [finding for finding in findings if not finding.compatible]
    for finding in broken:
        for message in finding.messages or ("incompatible",):
            console.print(f"[red]✗[/] {finding.event_type} against {finding.against}: {message}")
    checked = len({f.event_type for f in findings})
    if broken:
        raise fail(f"{len(broken)} incompatible change(s) under {settings.registry.compatibility}")
    console.print(f"[green]✓[/] {checked} schemas compatible ({settings.registry.compatibility})")
