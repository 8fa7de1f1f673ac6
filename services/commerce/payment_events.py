"""Payments are event sourced: a payment's state is the fold of its events, in the order they were recorded.

Every payment event (its own `payment.*` events, the fraud decision that reached it, and the ledger postings that
reference it) is appended to `payment_events` in the transaction that makes it true. The `payments` row is a
projection of that stream, updated in the same transaction, so it can never disagree with the events; `history`
rebuilds the payment as it was at any moment from the events alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from connectors.avro.values import to_wire
from services.outbox.store import enqueue

# The ledger's postings belong to the payment they reference (a sale, or the refund that reverses it).
LEDGER_POSTED = "ledger.entry_posted"
FINAL = frozenset({"REJECTED", "FAILED", "REFUNDED"})


class PaymentTransitionError(ValueError):
    """An event that cannot happen to the payment in its current state; the message says why."""


@dataclass(frozen=True)
class PaymentState:
    payment_id: str
    order_id: str
    user_id: str
    attempt: int
    method: str
    amount_minor: int
    currency: str
    status: str  # INITIATED, APPROVED, REJECTED, FAILED or REFUNDED: the projection's `payments.status`
    instrument: str = ""
    fraud_decision: str | None = None
    fraud_score: float | None = None
    psp_reference: str | None = None
    reason: str | None = None
    ledger_transactions: tuple[str, ...] = ()
    version: int = 0
    as_of: dt.datetime | None = None
    event_types: tuple[str, ...] = field(default=())


def event_moment(event: Mapping[str, Any]) -> dt.datetime:
    moment = event["event_time"]
    if isinstance(moment, dt.datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return dt.datetime.fromtimestamp(int(moment) / 1000, dt.UTC)


def payment_id_of(event: Mapping[str, Any]) -> str | None:
    """The payment an event belongs to, or None if it is not part of any payment's stream."""
    if str(event["event_type"]).startswith("payment."):
        return str(event["payment_id"])
    if event["event_type"] == LEDGER_POSTED and event["reference_type"] in ("PAYMENT", "REFUND"):
        return str(event["reference"])
    return None


def apply(state: PaymentState | None, event: Mapping[str, Any]) -> PaymentState:
    """The payment after one more event; refuses events that cannot follow the payment's current state."""
    kind = str(event["event_type"])
    if state is None:
        if kind != "payment.initiated":
            raise PaymentTransitionError(f"a payment's stream starts with payment.initiated, not {kind}")
        state = PaymentState(
            payment_id=str(event["payment_id"]), order_id=str(event["order_id"]), user_id=str(event["user_id"]),
            attempt=int(event["attempt"]), method=str(event["method"]), amount_minor=int(event["amount_minor"]),
            currency=str(event["currency"]), status="INITIATED",
        )  # fmt: skip
        return _advanced(state, event)
    if kind == "payment.initiated":
        raise PaymentTransitionError(f"payment {state.payment_id} was already initiated")
    if state.status in FINAL:
        raise PaymentTransitionError(f"payment {state.payment_id} is {state.status}: no {kind} after that")
    if kind in ("payment.upi_vpa_validated", "payment.card_tokenized", "payment.fraud_decided"):
        if state.status != "INITIATED":
            raise PaymentTransitionError(f"{kind} for payment {state.payment_id}, which is already {state.status}")
        if kind == "payment.upi_vpa_validated":
            return _advanced(replace(state, instrument=f"UPI {event['vpa']}"), event)
        if kind == "payment.card_tokenized":
            return _advanced(replace(state, instrument=f"CARD {event['network']} ****{event['last4']}"), event)
        decision = str(event["decision"])
        return _advanced(replace(state, fraud_decision=decision, fraud_score=float(event["score"])), event)
    if kind in ("payment.approved", "payment.rejected", "payment.failed"):
        if state.status != "INITIATED":
            raise PaymentTransitionError(f"{kind} for payment {state.payment_id}, which is already {state.status}")
        status = {"payment.approved": "APPROVED", "payment.rejected": "REJECTED", "payment.failed": "FAILED"}[kind]
        return _advanced(
            replace(state, status=status, psp_reference=event.get("psp_reference"), reason=event.get("reason")),
            event,
        )
    if kind == LEDGER_POSTED:
        transactions = (*state.ledger_transactions, str(event["transaction_id"]))
        if event.get("reverses_transaction_id") is None:
            if state.status != "APPROVED":
                raise PaymentTransitionError(f"a sale posted for payment {state.payment_id}, which is {state.status}")
            return _advanced(replace(state, ledger_transactions=transactions), event)
        if str(event["reverses_transaction_id"]) not in state.ledger_transactions:
            raise PaymentTransitionError(f"a reversal of a posting payment {state.payment_id} never had")
        return _advanced(
            replace(state, status="REFUNDED", ledger_transactions=transactions, reason=str(event["description"])),
            event,
        )
    raise PaymentTransitionError(f"{kind} is not a payment event")


def _advanced(state: PaymentState, event: Mapping[str, Any]) -> PaymentState:
    return replace(state, version=state.version + 1, as_of=event_moment(event),
                   event_types=(*state.event_types, str(event["event_type"])))  # fmt: skip


def fold(events: Iterable[Mapping[str, Any]]) -> PaymentState | None:
    state: PaymentState | None = None
    for event in events:
        state = apply(state, event)
    return state


def recorded_events(connection: psycopg.Connection[Any], payment_id: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        "SELECT payload FROM payment_events WHERE payment_id = %s ORDER BY sequence", (payment_id,)
    ).fetchall()
    return [row[0] for row in rows]


def record(connection: psycopg.Connection[Any], event: Mapping[str, Any], *, publish: bool = True) -> PaymentState:
    """Appends the event to its payment's stream and updates the `payments` projection, in the caller's transaction;
    also puts it in the outbox unless it is already on Kafka (`publish=False`: a decision another service made).

    Callers hold the lock of the payment's order (the saga's steps) or have just created the payment, so appends
    to one stream are serial; the (payment_id, sequence) key still refuses a concurrent append that slipped past.
    """
    payment_id = payment_id_of(event)
    if payment_id is None:
        raise PaymentTransitionError(f"{event['event_type']} does not belong to a payment")
    state = apply(fold(recorded_events(connection, payment_id)), event)
    if publish:
        enqueue(connection, event)
    wire = to_wire(dict(event))
    connection.execute(
        "INSERT INTO payment_events (payment_id, sequence, event_id, event_type, event_time, payload) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (payment_id, state.version, wire["event_id"], wire["event_type"], event_moment(event), json.dumps(wire)),
    )
    connection.execute("UPDATE payments SET status = %s WHERE payment_id = %s", (state.status, payment_id))
    return state


@dataclass(frozen=True)
class PaymentHistory:
    events: list[dict[str, Any]]  # every event of the stream, oldest first
    state: PaymentState | None  # as of the moment asked for; None if the payment did not exist yet
    applied: int  # how many of `events` had happened by then
    ignored: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (event, why) that could not apply


def history(
    events: Iterable[Mapping[str, Any]], at: dt.datetime | None = None, *, strict: bool = True
) -> PaymentHistory:
    """The payment as it was at `at` (default: after its last event): the fold of the stream's events up to the
    first one that happened later than `at`.

    A stream is in recording order, and a fold needs a prefix of it; an event stamped by another service's clock
    slightly before the event it answers does not reorder the history. With `strict=False` (a stream read back from
    Kafka, which also carries events the services ignored: a decision after the timeout, say), an event that cannot
    follow is set aside in `ignored` instead of failing the fold.
    """
    ordered = [dict(event) for event in events]
    happened = (
        len(ordered)
        if at is None
        else next((index for index, event in enumerate(ordered) if event_moment(event) > at), len(ordered))
    )
    state: PaymentState | None = None
    ignored: list[tuple[dict[str, Any], str]] = []
    for event in ordered[:happened]:
        try:
            state = apply(state, event)
        except PaymentTransitionError as error:
            if strict:
                raise
            ignored.append((event, str(error)))
    return PaymentHistory(ordered, state, happened, ignored)
