"""The `suuupra` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from suuupra.cli import (
    clickhouse_cmd,
    dashboard_cmd,
    features_cmd,
    fraud_cmd,
    jobs_cmd,
    payments_cmd,
    platform_cmd,
    schemas_cmd,
    search_cmd,
    services_cmd,
    simulate_cmd,
    status_cmd,
    topics_cmd,
    verify_cmd,
)
from suuupra.cli.context import state

app = typer.Typer(
    name="suuupra",
    help="Suuupra Streams: the local platform, topics, schemas and simulated traffic of the learning platform.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(platform_cmd.app, name="platform")
app.add_typer(topics_cmd.app, name="topics")
app.add_typer(schemas_cmd.app, name="schemas")
app.command("simulate")(simulate_cmd.simulate)
app.command("summary")(simulate_cmd.summary)
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(clickhouse_cmd.app, name="clickhouse")
app.command("query")(clickhouse_cmd.query)
app.command("dashboard")(dashboard_cmd.dashboard)
app.add_typer(services_cmd.app, name="services")
app.add_typer(payments_cmd.app, name="payments")
app.add_typer(jobs_cmd.cluster_app, name="flink")
app.add_typer(verify_cmd.app, name="verify")
app.add_typer(features_cmd.app, name="features")
app.add_typer(fraud_cmd.app, name="fraud")
app.add_typer(search_cmd.app, name="index")
app.command("search")(search_cmd.search)
app.command("similar")(search_cmd.similar)
app.command("also-watched")(search_cmd.also_watched)
app.command("status")(status_cmd.status)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Settings file (TOML or YAML); also SUUUPRA_CONFIG.")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option("--profile", "-p", help="Settings profile: local or production; also SUUUPRA_PROFILE."),
    ] = None,
) -> None:
    cli = state(ctx)
    cli.config_file = config
    cli.profile = profile
