"""The enrolment saga end to end through Kafka: the rule-based stand-in reads `payment.initiated` and publishes
`payment.fraud_decided`; the saga applies it. Approved: ledger posted, order paid, learner enrolled. Rejected, timed
out or not enrollable: order cancelled, nothing enrolled, the ledger balanced (a refund is a compensating posting)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from services.commerce.saga import CLEARING, apply_decision, enroll, expire_payments, publish_fraud_decisions
from services.ledger.ledger import balance
from services.outbox.relay import OutboxRelay
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings
from tests.services.support import sign_up


def _ordered(client: TestClient, price_minor: int) -> tuple[dict[str, str], str]:
    """A buyer's order of a freshly published course; returns the buyer's headers and the order id."""
    instructor, buyer = sign_up(client), sign_up(client)
    course_id = str(uuid.uuid4())
    draft = {"course_id": course_id, "title": "Saga patterns", "description": "", "category": "architecture",
             "language": "en", "duration_seconds": 600, "lesson_number": 1, "price_minor": price_minor,
             "currency": "INR"}  # fmt: skip
    content_id = client.post("/contents", json=draft, headers=instructor).json()["content_id"]
    client.post(f"/contents/{content_id}/publish", headers=instructor)
    return buyer, client.post("/orders", json={"course_id": course_id}, headers=buyer).json()["order_id"]


def _pay(client: TestClient, buyer: dict[str, str], order_id: str) -> None:
    payment = {"order_id": order_id, "method": "UPI", "vpa": "kiran@okaxis", "device_id": "web-1"}
    started = client.post("/payments", json=payment, headers=buyer | {"Idempotency-Key": f"k-{uuid.uuid4().hex}"})
    assert started.status_code == 201, started.text


def _paid_order(client: TestClient, price_minor: int) -> tuple[dict[str, str], str]:
    buyer, order_id = _ordered(client, price_minor)
    _pay(client, buyer, order_id)
    return buyer, order_id


def _events(settings: Settings, topic: str, order_id: str) -> list[dict[str, Any]]:
    OutboxRelay(settings.postgres.dsn(), EventPublisher(settings)).drain()
    with event_consumer(settings, [topic]) as consumer:
        return [r.value for r in consumer.read_to_end() if str(r.value.get("order_id")) == order_id]


def _decide(settings: Settings, order_id: str) -> dict[str, Any]:
    """The stand-in decides on what Kafka carries, and the decision is read back from Kafka."""
    initiated = [
        e for e in _events(settings, settings.topics.payment, order_id) if e["event_type"] == "payment.initiated"
    ]
    publish_fraud_decisions(EventPublisher(settings), initiated)
    [decision] = [e for e in _events(settings, settings.topics.payment, order_id)
                  if e["event_type"] == "payment.fraud_decided"]  # fmt: skip
    return {**decision, "correlation_id": str(decision["correlation_id"])}


def _order_status(settings: Settings, order_id: str) -> str:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        row = connection.execute("SELECT status FROM orders WHERE order_id = %s", (order_id,)).fetchone()
    assert row is not None
    return str(row[0])


def _enrolled(settings: Settings, order_id: str) -> bool:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        return connection.execute("SELECT 1 FROM enrollments WHERE order_id = %s", (order_id,)).fetchone() is not None


def test_approved_payment_posts_the_ledger_and_enrols(client: TestClient, isolated: Settings) -> None:
    _buyer, order_id = _paid_order(client, 99_900)
    decision = _decide(isolated, order_id)
    assert decision["decision"] == "APPROVE"
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        before = balance(connection, CLEARING)
        assert apply_decision(connection, isolated, decision).outcome == "approved"
        assert apply_decision(connection, isolated, decision).applied is False, "a redelivered decision changes nothing"
        assert enroll(connection, isolated, order_id).outcome == "enrolled"
        assert balance(connection, CLEARING) - before == 117_882
    assert (_order_status(isolated, order_id), _enrolled(isolated, order_id)) == ("FULFILLED", True)
    commerce = [e["event_type"] for e in _events(isolated, isolated.topics.commerce, order_id)]
    assert commerce == ["order.created", "order.paid", "user.enrolled", "order.fulfilled"]
    payment = [e["event_type"] for e in _events(isolated, isolated.topics.payment, order_id)]
    assert payment == ["payment.initiated", "payment.upi_vpa_validated", "payment.fraud_decided", "payment.approved"]


def test_rejected_payment_cancels_the_order_without_enrolment_or_posting(
    client: TestClient, isolated: Settings
) -> None:
    _buyer, order_id = _paid_order(client, 2_500_000)  # above the stand-in's rejection threshold with GST
    decision = _decide(isolated, order_id)
    assert decision["decision"] == "REJECT"
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        assert apply_decision(connection, isolated, decision).outcome == "rejected"
        assert enroll(connection, isolated, order_id).applied is False
        assert connection.execute("SELECT 1 FROM order_postings WHERE order_id = %s", (order_id,)).fetchone() is None
    assert (_order_status(isolated, order_id), _enrolled(isolated, order_id)) == ("CANCELLED", False)
    cancelled = [
        e for e in _events(isolated, isolated.topics.commerce, order_id) if e["event_type"] == "order.cancelled"
    ]
    assert [e["reason"] for e in cancelled] == ["PAYMENT_REJECTED"]


def test_a_payment_without_a_decision_times_out_and_a_late_decision_changes_nothing(
    client: TestClient, isolated: Settings
) -> None:
    _buyer, order_id = _paid_order(client, 99_900)
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        assert expire_payments(connection, isolated, older_than_s=0) >= 1
        late = _decide(isolated, order_id)
        assert apply_decision(connection, isolated, late).applied is False
    assert (_order_status(isolated, order_id), _enrolled(isolated, order_id)) == ("CANCELLED", False)
    failed = [e for e in _events(isolated, isolated.topics.payment, order_id) if e["event_type"] == "payment.failed"]
    assert [e["failure_code"] for e in failed] == ["TIMEOUT"]


def test_a_learner_who_cannot_be_enrolled_is_refunded_by_a_compensating_posting(
    client: TestClient, isolated: Settings
) -> None:
    buyer, order_id = _paid_order(client, 99_900)
    decision = _decide(isolated, order_id)
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        before = balance(connection, CLEARING)
        apply_decision(connection, isolated, decision)
        assert client.delete("/users/me", headers=buyer).status_code == 204
        assert enroll(connection, isolated, order_id).outcome == "compensated"
        assert balance(connection, CLEARING) == before, "the refund reverses the sale's posting"
        [(posting,)] = connection.execute("SELECT transaction_id FROM order_postings WHERE order_id = %s", (order_id,))
        reversal = connection.execute(
            "SELECT count(*) FROM ledger_transactions WHERE reverses_transaction_id = %s", (posting,)
        ).fetchone()
        assert reversal == (1,)
    assert (_order_status(isolated, order_id), _enrolled(isolated, order_id)) == ("CANCELLED", False)


def test_an_order_is_paid_by_one_payment_only(client: TestClient, isolated: Settings) -> None:
    buyer, order_id = _paid_order(client, 99_900)
    second = {"order_id": order_id, "method": "UPI", "vpa": "kiran@okaxis", "device_id": "web-2"}
    refused = client.post("/payments", json=second, headers=buyer | {"Idempotency-Key": f"k-{uuid.uuid4().hex}"})
    assert refused.status_code == 409
    assert "still waiting for its outcome" in refused.json()["detail"]
    decision = _decide(isolated, order_id)
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        # However it happened (an operator, an older version), an order no longer payable is never charged.
        connection.execute("UPDATE orders SET status = 'CANCELLED' WHERE order_id = %s", (order_id,))
        connection.commit()
        assert apply_decision(connection, isolated, decision).outcome == "failed: order not payable"
        assert connection.execute("SELECT 1 FROM order_postings WHERE order_id = %s", (order_id,)).fetchone() is None
        status = connection.execute("SELECT status FROM payments WHERE order_id = %s", (order_id,)).fetchone()
    assert status == ("FAILED",)


def test_a_timed_out_payment_leaves_an_order_paid_meanwhile_alone(client: TestClient, isolated: Settings) -> None:
    _buyer, order_id = _paid_order(client, 99_900)
    with psycopg.connect(isolated.postgres.dsn()) as connection:
        connection.execute("UPDATE orders SET status = 'PAID' WHERE order_id = %s", (order_id,))  # another attempt
        connection.commit()
        assert expire_payments(connection, isolated, older_than_s=0) == 1
        payment = connection.execute("SELECT status FROM payments WHERE order_id = %s", (order_id,)).fetchone()
    assert (payment, _order_status(isolated, order_id)) == (("FAILED",), "PAID")
    commerce = _events(isolated, isolated.topics.commerce, order_id)
    assert [e["event_type"] for e in commerce] == ["order.created"], "no order.cancelled for a paid order"
