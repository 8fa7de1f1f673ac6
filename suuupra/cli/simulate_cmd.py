"""`suuupra simulate` and `suuupra summary`: traffic in, and a read-back of what Kafka holds."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from suuupra.cli.context import console, fail, state
from suuupra.events import EventPublisher
from suuupra.simulate.journeys import SimulationProfile
from suuupra.simulate.runner import Simulation, SimulationSummary
from suuupra.summary import summarize


def _parse_start(text: str) -> int:
    if text == "now":
        return int(datetime.now(UTC).timestamp() * 1000)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise typer.BadParameter(f"'{text}' is not 'now' or an ISO time like 2026-01-01T00:00:00Z") from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def simulate(
    ctx: typer.Context,
    seed: Annotated[int, typer.Option(help="Same seed and start time, same events.")] = 42,
    rate: Annotated[float, typer.Option(help="Events per second; 0 sends as fast as Kafka takes them.")] = 500.0,
    duration: Annotated[float, typer.Option(help="Seconds of traffic at --rate.")] = 10.0,
    count: Annotated[int | None, typer.Option(help="Number of events (instead of rate x duration).")] = None,
    start_time: Annotated[str, typer.Option(help="Event time of the first event: 'now' or ISO-8601.")] = "now",
    users: Annotated[int, typer.Option(help="Size of the simulated user population.")] = 200,
    out_of_order: Annotated[float, typer.Option(help="Share of events sent after later ones.")] = 0.05,
    late: Annotated[float, typer.Option(help="Share of events sent long after their event time.")] = 0.01,
    fraud: Annotated[float, typer.Option(help="Share of payment journeys with a fraud-like pattern.")] = 0.05,
    malformed: Annotated[
        float, typer.Option(help="Share of extra malformed records (they must be dead-lettered).")
    ] = 0.0,
) -> None:
    """Send realistic user journeys (register, browse, search, watch, order, pay by UPI or card, enrol) to Kafka."""
    settings = state(ctx).settings
    total = count if count is not None else int(rate * duration)
    if total <= 0:
        raise fail("nothing to send: give --count, or a positive --rate and --duration")
    for name, share in (("out-of-order", out_of_order), ("late", late), ("fraud", fraud), ("malformed", malformed)):
        if not 0.0 <= share <= 1.0:
            raise fail(f"--{name} must be a share between 0 and 1, got {share}")
    profile = SimulationProfile(
        seed=seed, start_time_ms=_parse_start(start_time), users=users, out_of_order_share=out_of_order,
        late_share=late, fraud_share=fraud,
    )  # fmt: skip
    simulation = Simulation(EventPublisher(settings), profile, malformed_share=malformed)
    columns = (TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("events", total=total)
            summary = simulation.run(total, rate or None, lambda done: progress.update(task, completed=done))
    except Exception as error:
        raise fail(f"{error}\nIs the platform up and are topics and schemas in place? Run `suuupra platform up`, "
                   "`suuupra topics apply` and `suuupra schemas register`.") from error  # fmt: skip
    _print_simulation(summary)


def _print_simulation(summary: SimulationSummary) -> None:
    table = Table("event type", "sent", title="sent to Kafka")
    for event_type, sent in sorted(summary.by_event_type.items()):
        table.add_row(event_type, str(sent))
    console.print(table)
    rate = summary.records / summary.elapsed_s if summary.elapsed_s else 0.0
    console.print(
        f"{summary.events} events + {sum(summary.malformed.values())} malformed records to "
        f"{len(summary.by_topic)} topics in {summary.elapsed_s:.1f} s ({rate:,.0f} records/s, "
        f"{summary.bytes_sent / 1e6:.1f} MB)"
    )
    patterns = {tag: n for tag, n in summary.tags.items()}
    console.print(f"patterns: {dict(sorted(patterns.items()))}")
    if summary.malformed:
        console.print(f"malformed: {dict(summary.malformed)}")


def summary(ctx: typer.Context) -> None:
    """Read every domain topic back from Kafka and count events per topic and type, and dead letters."""
    settings = state(ctx).settings
    try:
        result = summarize(settings)
    except Exception as error:
        raise fail(f"{error}\nIs the platform up (`suuupra platform up`)?") from error
    table = Table("topic", "records", title="in Kafka now")
    for topic, records in sorted(result.by_topic.items()):
        table.add_row(topic, str(records))
    console.print(table)
    types = Table("event type", "records")
    for event_type, records in sorted(result.by_event_type.items()):
        types.add_row(event_type, str(records))
    console.print(types)
    console.print(
        f"{sum(result.by_topic.values())} readable events from {len(result.users)} users "
        f"({result.bytes_read / 1e6:.1f} MB); {result.unreadable} unreadable records still in domain topics; "
        f"dead-letter topic: {dict(result.dead_letters_by_reason) or 'empty'}"
    )
