"""`suuupra payments history`: a payment rebuilt from its events, as it was at any moment."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from enum import StrEnum
from typing import Annotated, Any

import psycopg
import typer
from confluent_kafka import KafkaException
from rich.table import Table

from services.commerce.payment_events import (
    PaymentState,
    PaymentTransitionError,
    event_moment,
    history,
    payment_id_of,
    recorded_events,
)
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
    with (
        console.status(f"reading {', '.join(topics)} to the end"),
        event_consumer(settings, topics, read_only=True) as consumer,
    ):
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


def _state_json(state_: PaymentState | None) -> dict[str, Any] | None:
    return None if state_ is None else {**asdict(state_), "as_of": state_.as_of.isoformat() if state_.as_of else None}


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
    # 'now' means after every event, whatever clock stamped them (a fraud job's may run a little ahead of ours).
    moment = None if at == "now" else parse_moment(at)
    try:
        if source is Source.database:
            events = events_from_database(settings, payment_id)
        else:
            events = events_from_kafka(settings, payment_id)
        past = history(events, moment, strict=source is Source.database)
    except psycopg.Error as error:
        raise fail(f"PostgreSQL: {error}. Is the platform up (`suuupra platform up`)?") from error
    except (KafkaException, TimeoutError) as error:
        raise fail(f"Kafka: {error}. Is the platform up (`suuupra platform up`)?") from error
    except PaymentTransitionError as error:
        raise fail(f"the stored stream of payment {payment_id} does not fold: {error}") from error
    if not events:
        raise fail(f"no events of payment {payment_id} in the {source.value}; check the id (`GET /orders/{{id}}`)")
    when = "after its last event" if moment is None else moment.isoformat()
    if as_json:
        events_json = [{**event, "event_time": event_moment(event).isoformat()} for event in events]
        ignored_json = [{"event_id": str(event["event_id"]), "why": why} for event, why in past.ignored]
        document = {"at": None if moment is None else moment.isoformat(), "state": _state_json(past.state),
                    "events": events_json, "ignored": ignored_json}  # fmt: skip
        console.print_json(json.dumps(document, default=str))
        return
    ignored_ids = {str(event["event_id"]) for event, _why in past.ignored}
    timeline = Table(title=f"payment {payment_id}: events ({source.value})")
    for column in ("#", "event time (UTC)", "event", "detail", ""):
        timeline.add_column(column)
    for number, event in enumerate(events, start=1):
        stamp = event_moment(event).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        later = number > past.applied
        mark = "not yet" if later else "ignored" if str(event["event_id"]) in ignored_ids else ""
        timeline.add_row(str(number), stamp, event["event_type"], _detail(event), mark, style="dim" if mark else None)
    console.print(timeline)
    for event, why in past.ignored:
        console.print(f"[yellow]ignored[/] {event['event_type']} {event['event_id']}: {why}")
    if past.state is None:
        console.print(f"at {when} payment {payment_id} did not exist yet")
        return
    snapshot = Table(title=f"as of {when}: {past.state.status}", show_header=False)
    for name, value in (_state_json(past.state) or {}).items():
        if name == "event_types":
            continue
        shown = "-" if value is None else ", ".join(value) if isinstance(value, list | tuple) else str(value)
        snapshot.add_row(name, shown)
    console.print(snapshot)
