"""Payments are event sourced: the state is the fold of the payment's events, the `payments` row is its projection,
and `suuupra payments history ID --at TIME` answers what the payment looked like at any moment, from the services'
event store or from what Kafka carries."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from services.commerce.payment_events import PaymentTransitionError, fold, history, recorded_events
from services.commerce.saga import apply_decision, enroll, expire_payments
from services.outbox.relay import OutboxRelay
from suuupra.cli.main import app as cli
from suuupra.events import EventPublisher
from suuupra.settings import Settings, environment_overrides
from tests.services.support import sign_up
from tests.services.test_saga import _decide, _paid_order


def _initiated(**overrides: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": "payment.initiated", "event_time": 1_700_000_000_000,
            "user_id": str(uuid.uuid4()), "payment_id": "p-1", "order_id": "o-1", "attempt": 1, "method": "UPI",
            "amount_minor": 117_882, "currency": "INR", **overrides}  # fmt: skip


def _next(kind: str, at_ms: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "event_type": kind, "event_time": at_ms, "payment_id": "p-1", **fields}


def test_a_payment_stream_refuses_impossible_transitions() -> None:
    started = _initiated()
    rejected = _next("payment.rejected", 1_700_000_001_000, reason="fraud")
    approved = _next("payment.approved", 1_700_000_002_000, psp_reference="psp-1")
    with pytest.raises(PaymentTransitionError, match=r"starts with payment\.initiated"):
        fold([approved])
    with pytest.raises(PaymentTransitionError, match=r"is REJECTED: no payment\.approved"):
        fold([started, rejected, approved])
    with pytest.raises(PaymentTransitionError, match="already initiated"):
        fold([started, started])
    sale = {**_next("ledger.entry_posted", 1_700_000_003_000), "transaction_id": "t-1", "description": "sale",
            "reverses_transaction_id": None}  # fmt: skip
    with pytest.raises(PaymentTransitionError, match="sale posted for payment p-1, which is INITIATED"):
        fold([started, sale])
    state = fold([started, approved, sale])
    assert state is not None
    assert (state.status, state.psp_reference, state.ledger_transactions, state.version) == (
        "APPROVED", "psp-1", ("t-1",), 3,
    )  # fmt: skip


def test_history_at_a_moment_is_the_prefix_of_events_that_had_happened() -> None:
    events = [_initiated(), _next("payment.fraud_decided", 1_700_000_001_000, decision="APPROVE", score=0.1),
              _next("payment.approved", 1_700_000_002_000, psp_reference="psp-1")]  # fmt: skip
    at = dt.datetime.fromtimestamp(1_700_000_001.5, dt.UTC)
    past = history(events, at)
    assert past.state is not None
    assert (past.state.status, past.state.fraud_decision, past.state.version) == ("INITIATED", "APPROVE", 2)
    assert history(events, dt.datetime.fromtimestamp(1_699_999_999, dt.UTC)).state is None
    now = history(events).state
    assert now is not None and now.status == "APPROVED"


def _stream_and_projection(settings: Settings, order_id: str) -> tuple[str, list[dict[str, Any]], str]:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        payment_id, status = connection.execute(
            "SELECT payment_id, status FROM payments WHERE order_id = %s", (order_id,)
        ).fetchone() or (None, None)
        assert payment_id is not None
        return str(payment_id), recorded_events(connection, str(payment_id)), str(status)


def _refunded_payment(client: TestClient, settings: Settings) -> tuple[str, str]:
    """A card-free UPI payment that is approved, posted, then refunded because the learner left before enrolment."""
    buyer, order_id = _paid_order(client, 99_900)
    decision = _decide(settings, order_id)
    with psycopg.connect(settings.postgres.dsn()) as connection:
        assert apply_decision(connection, settings, decision).outcome == "approved"
        assert client.delete("/users/me", headers=buyer).status_code == 204
        assert enroll(connection, settings, order_id).outcome == "compensated"
    return order_id, str(decision["payment_id"])


def test_the_payments_row_is_the_projection_of_the_recorded_events(client: TestClient, isolated: Settings) -> None:
    order_id, _ = _refunded_payment(client, isolated)
    payment_id, events, status = _stream_and_projection(isolated, order_id)
    assert [e["event_type"] for e in events] == [
        "payment.initiated", "payment.upi_vpa_validated", "payment.fraud_decided", "payment.approved",
        "ledger.entry_posted", "ledger.entry_posted",
    ]  # fmt: skip
    state = fold(events)
    assert state is not None
    assert (state.status, status, state.payment_id, state.instrument) == (
        "REFUNDED",
        "REFUNDED",
        payment_id,
        "UPI kiran@okaxis",
    )
    assert len(state.ledger_transactions) == 2
    with psycopg.connect(isolated.postgres.dsn()) as connection, pytest.raises(psycopg.errors.RestrictViolation):
        connection.execute("UPDATE payment_events SET event_type = 'payment.approved' WHERE payment_id = %s",
                           (payment_id,))  # fmt: skip


def test_a_redelivered_decision_is_recorded_once(client: TestClient, isolated: Settings) -> None:
    _buyer, order_id = _paid_order(client, 600_000)  # the stand-in sends it to review
    decision = _decide(isolated, order_id)
    assert decision["decision"] == "REVIEW"
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        assert apply_decision(connection, isolated, decision).outcome == "in review"
        assert apply_decision(connection, isolated, decision).applied is False
    _payment_id, events, status = _stream_and_projection(isolated, order_id)
    assert [e["event_type"] for e in events].count("payment.fraud_decided") == 1
    assert status == "INITIATED"


def _cli(settings: Settings, *args: str) -> Any:
    environment = environment_overrides(settings, "topics", "postgres", "kafka", "registry")
    result = CliRunner().invoke(cli, ["payments", "history", *args], env=environment)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_history_command_answers_at_any_moment_from_the_store_and_from_kafka(
    client: TestClient, isolated: Settings
) -> None:
    order_id, payment_id = _refunded_payment(client, isolated)
    OutboxRelay(isolated.postgres.dsn(), EventPublisher(isolated)).drain()
    _, events, _ = _stream_and_projection(isolated, order_id)
    decided_ms = next(e["event_time"] for e in events if e["event_type"] == "payment.fraud_decided")
    now = _cli(isolated, payment_id, "--json")
    assert now["state"]["status"] == "REFUNDED"
    before_decision = _cli(isolated, payment_id, "--at", str(decided_ms - 1), "--json")
    assert (before_decision["state"]["status"], before_decision["state"]["fraud_decision"]) == ("INITIATED", None)
    decided = _cli(isolated, payment_id, "--at", str(decided_ms), "--json")
    assert decided["state"]["fraud_decision"] == "APPROVE"
    first_ms = events[0]["event_time"]
    assert _cli(isolated, payment_id, "--at", str(first_ms - 1), "--json")["state"] is None
    from_kafka = _cli(isolated, payment_id, "--source", "kafka", "--json")
    assert [e["event_id"] for e in from_kafka["events"]] == [e["event_id"] for e in now["events"]]
    assert from_kafka["state"] == now["state"]
    seconds = CliRunner().invoke(cli, ["payments", "history", payment_id, "--at", str(first_ms // 1000)])
    assert seconds.exit_code == 2
    assert "looks like epoch seconds" in seconds.output
    missing = CliRunner().invoke(cli, ["payments", "history", str(uuid.uuid4())],
                                 env=environment_overrides(isolated, "postgres"))  # fmt: skip
    assert missing.exit_code == 1
    assert "no events of payment" in missing.output


def test_history_command_renders_a_timeline(client: TestClient, isolated: Settings) -> None:
    buyer = sign_up(client)
    assert buyer  # a second user keeps this test independent of the others' data
    _order_id, payment_id = _refunded_payment(client, isolated)
    result = CliRunner().invoke(cli, ["payments", "history", payment_id],
                                env=environment_overrides(isolated, "postgres"))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "payment.fraud_decided" in result.output and "REFUNDED" in result.output


def test_from_kafka_a_decision_the_saga_ignored_is_set_aside(client: TestClient, isolated: Settings) -> None:
    _buyer, order_id = _paid_order(client, 99_900)
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        assert expire_payments(connection, isolated, older_than_s=0) >= 1
        late = _decide(isolated, order_id)  # published to Kafka after the payment had timed out
        assert apply_decision(connection, isolated, late).applied is False
    OutboxRelay(isolated.postgres.dsn(), EventPublisher(isolated)).drain()
    payment_id = str(late["payment_id"])
    stored = _cli(isolated, payment_id, "--json")
    published = _cli(isolated, payment_id, "--source", "kafka", "--json")
    assert stored["state"]["status"] == published["state"]["status"] == "FAILED"
    assert [e["event_type"] for e in stored["events"]] == [
        "payment.initiated", "payment.upi_vpa_validated", "payment.failed"
    ]  # fmt: skip
    [ignored] = published["ignored"]
    assert ignored["event_id"] == str(late["event_id"])
    assert "is FAILED: no payment.fraud_decided" in ignored["why"]
