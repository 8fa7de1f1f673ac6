"""`suuupra payments history`: a payment rebuilt from its events, as it was at any moment."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import psycopg
import typer
from rich.table import Table

from services.commerce.payment_events import PaymentHistory, event_moment, history, payment_id_of, recorded_events
from suuupra.cli.context import console, fail, parse_moment, state
from suuupra.events import event_consumer
from suuupra.settings import Settings

app = typer.Typer(help="Payments, rebuilt from their events (event sourcing).", no_args_is_help=True)

# Ties in event time between the payment and ledger topics are broken by where an event sits in a payment's life.
LIFECYCLE_RANK = {"payment.initiated": 0, "payment.upi_vpa_validated": 1, "payment.card_tokenized": 1,
                  "payment.fraud_decided": 2, "payment.approved": 3, "payment.rejected": 3, "payment.failed": 3,
                  "ledger.entry_posted": 4}  # fmt: skip


class Source(StrEnum):
    database = "database"
    kafka = "kafka"


def events_from_database(settings: Settings, payment_id: str) -> list[dict[str, Any]]:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        return recorded_events(connection, payment_id)


def events_from_kafka(settings: Settings, payment_id: str) -> list[dict[str, Any]]:
    """The payment's events as published: both topics read to their end, redeliveries dropped by event id."""
    topics = [settings.topics.payment, settings.topics.ledger]
    found: dict[str, dict[str, Any]] = {}
    with console.status(f"reading {', '.join(topics)} to the end"), event_consumer(settings, topics) as consumer:
        for record in consumer.read_to_end():
            if payment_id_of(record.value) == payment_id:
                found.setdefault(str(record.value["event_id"]), record.value)
    reversal_last = {True: 1, False: 0}
    return sorted(
        found.values(),
        key=lambda e: (event_moment(e), LIFECYCLE_RANK[e["event_type"]],
                       reversal_last[e.get("reverses_transaction_id") is not None]),
    )  # fmt: skip


def _detail(event: dict[str, Any]) -> str:
    kind = event["event_type"]
    if kind == "payment.initiated":
        return f"{event['method']} {event['amount_minor']} {event['currency']} (attempt {event['attempt']})"
    if kind == "payment.fraud_decided":
        return f"{event['decision']} score {float(event['score']):.2f} {', '.join(event['reasons'])}".rstrip()
    if kind == "ledger.entry_posted":
        what = "reversal" if event.get("reverses_transaction_id") else "sale"
        return f"{what} {event['transaction_id']}: {event['description']}"
    return str(event.get("reason") or event.get("psp_reference") or event.get("vpa") or event.get("last4") or "")


def _state_rows(past: PaymentHistory) -> list[tuple[str, str]]:
    state_ = past.state
    if state_ is None:
        return []
    return [(name, str(value)) for name, value in vars(state_).items() if name != "event_types"]


@app.command("history")
def history_command(
    ctx: typer.Context,
    payment_id: Annotated[str, typer.Argument(help="The payment's id (a UUID).")],
    at: Annotated[
        str, typer.Option(help="The moment to rebuild the payment at: 'now', ISO-8601 (UTC default) or epoch ms.")
    ] = "now",
    source: Annotated[
        Source, typer.Option(help="Rebuild from the services' event store, or from the events published to Kafka.")
    ] = Source.database,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state and the events as JSON.")] = False,
) -> None:
    """Rebuild a payment from its events as it was at --at, and list the events before and after that moment."""
    try:
        payment_id = str(uuid.UUID(payment_id))
    except ValueError:
        raise typer.BadParameter(f"'{payment_id}' is not a payment id (a UUID)", param_hint="PAYMENT_ID") from None
    settings = state(ctx).settings
    moment: datetime = parse_moment(at)
    try:
        events = (events_from_database if source is Source.database else events_from_kafka)(settings, payment_id)
    except psycopg.Error as error:
        raise fail(f"PostgreSQL: {error}. Is the platform up (`suuupra platform up`)?") from error
    if not events:
        raise fail(f"no events of payment {payment_id} in the {source.value}; check the id (`GET /orders/{{id}}`)")
    past = history(events, moment)
    applied = past.state.version if past.state else 0
    if as_json:
        state_json = dict(_state_rows(past)) if past.state else None
        events_json = [{**event, "event_time": event_moment(event).isoformat()} for event in events]
        console.print_json(json.dumps({"at": moment.isoformat(), "state": state_json, "events": events_json},
                                      default=str))  # fmt: skip
        return
    timeline = Table(title=f"payment {payment_id}: events ({source.value})")
    for column in ("#", "event time (UTC)", "event", "detail", ""):
        timeline.add_column(column)
    for number, event in enumerate(events, start=1):
        when = event_moment(event).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        style = None if number <= applied else "dim"
        mark = "" if number <= applied else "not yet"
        timeline.add_row(str(number), when, event["event_type"], _detail(event), mark, style=style)
    console.print(timeline)
    if past.state is None:
        console.print(f"at {moment.isoformat()} payment {payment_id} did not exist yet")
        return
    snapshot = Table(title=f"as of {moment.isoformat()}: {past.state.status}", show_header=False)
    for name, value in _state_rows(past):
        snapshot.add_row(name, value)
    console.print(snapshot)
