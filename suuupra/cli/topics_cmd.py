"""`suuupra topics ...`: topics as code."""

from __future__ import annotations

from typing import Annotated

import typer
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.table import Table

from suuupra.cli.context import console, fail, state
from suuupra.topics.apply import apply_topics
from suuupra.topics.spec import TopicSpecError, load_topic_specs

app = typer.Typer(help="Create and check the Kafka topics declared in infra/topics.yaml.", no_args_is_help=True)


@app.command("apply")
def apply_command(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be created.")] = False,
) -> None:
    """Create missing topics and report drift (exit 2 on drift). Never deletes or shrinks anything."""
    settings = state(ctx).settings
    try:
        specs = load_topic_specs(settings)
    except (TopicSpecError, OSError) as error:
        raise fail(str(error)) from error
    admin = AdminClient(dict(settings.kafka.client_config()))
    try:
        plan = apply_topics(admin, specs, dry_run=dry_run)
    except KafkaException as error:
        raise fail(
            f"Kafka at {settings.kafka.bootstrap}: {error}. Is the platform up (`suuupra platform up`)?"
        ) from error
    table = Table("topic", "partitions", "replication", "retention", "state")
    for spec in specs:
        if spec.name in plan.created:
            outcome = "[yellow]would create[/]" if dry_run else "[green]created[/]"
        elif spec.name in plan.drift:
            outcome = "[red]drift: " + "; ".join(plan.drift[spec.name]) + "[/]"
        else:
            outcome = "ok"
        days = spec.retention_ms / 86_400_000
        table.add_row(spec.name, str(spec.partitions), str(spec.replication_factor), f"{days:g}d", outcome)
    console.print(table)
    if plan.unmanaged:
        shown = ", ".join(plan.unmanaged[:5]) + (
            f" and {len(plan.unmanaged) - 5} more" if len(plan.unmanaged) > 5 else ""
        )
        console.print(f"{len(plan.unmanaged)} topic(s) not in {settings.paths.topics_file.name}, left alone: {shown}")
    if plan.has_drift:
        console.print(
            "[red]drift found[/]: the cluster differs from the declaration. Change the file to match, or alter "
            "the topic by hand; `apply` never changes existing topics because that can delete or reorder data."
        )
        raise typer.Exit(2)
