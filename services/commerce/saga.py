"""The enrolment saga: order created -> payment decided -> ledger posted, order paid -> user enrolled, order fulfilled.

A rejected or failed payment, or no decision in time, cancels the order; a failure after the ledger posting
reverses it with a compensating posting (never a deletion) and cancels the order. Each step is one database
transaction with its events in the outbox, and applies only from the state it expects, so a redelivered decision
event changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

from services.commerce.payment_events import record
from services.ledger.ledger import Line, Posting, open_account, post, reverse
from services.outbox.store import enqueue
from suuupra.events import EventPublisher
from suuupra.settings import Settings

log = logging.getLogger(__name__)

CLEARING = "assets:psp_clearing"
REVENUE = "revenue:course_sales"
GST = "liabilities:gst_output_payable"
# The rule-based stand-in for the fraud job (same event contract): large amounts go to review, huge ones are refused.
REVIEW_ABOVE_MINOR = 500_000
REJECT_ABOVE_MINOR = 2_000_000
DECISION_NAMESPACE = uuid.UUID("5b0f3c52-1d7e-4c51-9a3e-6f1f4b7f2a10")


def _envelope(settings: Settings, user_id: str, correlation_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": int(time.time() * 1000),
        "producer": settings.services.producer,
        "correlation_id": correlation_id,
        "user_id": user_id,
    }


def open_ledger_accounts(connection: psycopg.Connection[Any], currency: str = "INR") -> None:
    open_account(connection, CLEARING, "DEBIT", currency)
    open_account(connection, REVENUE, "CREDIT", currency)
    open_account(connection, GST, "CREDIT", currency)


def fraud_decision(payment: dict[str, Any]) -> dict[str, Any]:
    """The stand-in decision for a `payment.initiated` event, as a `payment.fraud_decided` event."""
    amount = int(payment["amount_minor"])
    decision, score, reasons = "APPROVE", 0.05, []
    if amount > REJECT_ABOVE_MINOR:
        decision, score, reasons = "REJECT", 0.97, [f"amount {amount} above {REJECT_ABOVE_MINOR}"]
    elif amount > REVIEW_ABOVE_MINOR:
        decision, score, reasons = "REVIEW", 0.75, [f"amount {amount} above {REVIEW_ABOVE_MINOR}"]
    return {
        # Derived from the payment's event id, in lowercase as the fraud job reads it: a decision published again (a
        # crash before the offset was stored) has the same id, so the saga recognises the repeat.
        "event_id": str(uuid.uuid5(DECISION_NAMESPACE, str(payment["event_id"]).lower())),
        "event_type": "payment.fraud_decided",
        "event_time": int(time.time() * 1000),
        "producer": "fraud-rules-standin",
        "correlation_id": str(payment["correlation_id"]),
        "user_id": str(payment["user_id"]),
        "payment_id": str(payment["payment_id"]),
        "order_id": str(payment["order_id"]),
        "decision": decision,
        "score": score,
        "model_version": "rules-1",
        "reasons": reasons,
    }


def publish_fraud_decisions(publisher: EventPublisher, initiated: list[dict[str, Any]]) -> None:
    for payment in initiated:
        publisher.publish(fraud_decision(payment))
    publisher.flush()


@dataclass(frozen=True)
class StepResult:
    applied: bool
    outcome: str


def _lock_payment_and_order(connection: psycopg.Connection[Any], payment_id: str, columns: str) -> Any:
    """Locks the payment's order, then the payment: every step takes the two locks in this order (enrolment and
    compensation lock the order first too), so concurrent steps wait for each other instead of deadlocking."""
    order = connection.execute("SELECT order_id FROM payments WHERE payment_id = %s", (payment_id,)).fetchone()
    if order is None:
        return None
    connection.execute("SELECT 1 FROM orders WHERE order_id = %s FOR UPDATE", (order[0],))
    return connection.execute(
        f"SELECT {columns} FROM payments p JOIN orders o USING (order_id) WHERE p.payment_id = %s FOR UPDATE OF p",
        (payment_id,),
    ).fetchone()


def apply_decision(connection: psycopg.Connection[Any], settings: Settings, decision: dict[str, Any]) -> StepResult:
    """APPROVE: payment approved, ledger posted, order paid. REJECT: payment rejected, order cancelled. REVIEW waits.

    The decision joins the payment's event stream whatever it says, so the payment's history shows it.
    """
    payment_id = str(decision["payment_id"])
    with connection.transaction():
        row = _lock_payment_and_order(
            connection, payment_id,
            "p.status, p.method, p.amount_minor, p.currency, p.user_id, o.course_id, o.subtotal_minor, o.tax_minor, "
            "o.status, o.order_id",
        )  # fmt: skip
        seen = connection.execute(
            "SELECT 1 FROM payment_events WHERE event_id = %s", (str(decision["event_id"]),)
        ).fetchone()
        if row is None or row[0] != "INITIATED" or seen is not None:
            return StepResult(False, "nothing to do")
        _status, method, amount, currency, user_id, course_id, subtotal, tax, order_status, order_id = row
        # The payment's own order, whatever the decision says: a decision never moves another order.
        currency, user_id, course_id, order_id = currency.strip(), str(user_id), str(course_id), str(order_id)
        record(connection, decision, publish=False)
        if decision["decision"] == "REVIEW":
            return StepResult(True, "in review")
        envelope = _envelope(settings, user_id, str(decision["correlation_id"]))
        common = {
            "payment_id": payment_id,
            "order_id": order_id,
            "method": method,
            "amount_minor": amount,
            "currency": currency,
        }
        if order_status != "CREATED":
            # Never charge twice: an order paid (or cancelled) meanwhile by another attempt fails this one.
            failed = {"event_type": "payment.failed", "failure_code": "ORDER_NOT_PAYABLE", "retryable": False,
                      "reason": f"order {order_id} is already {order_status}"}  # fmt: skip
            record(connection, {**envelope, **common, **failed})
            return StepResult(True, "failed: order not payable")
        common["reviewed"] = False
        if decision["decision"] == "REJECT":
            reason = "; ".join(decision["reasons"]) or "rejected by fraud check"
            record(connection, {**envelope, "event_type": "payment.rejected", **common, "reason": reason})
            connection.execute("UPDATE orders SET status = 'CANCELLED' WHERE order_id = %s", (order_id,))
            enqueue(
                connection,
                {
                    **_envelope(settings, user_id, envelope["correlation_id"]),
                    "event_type": "order.cancelled",
                    "order_id": order_id,
                    "course_id": course_id,
                    "payment_id": payment_id,
                    "reason": "PAYMENT_REJECTED",
                    "reason_detail": None,
                },
            )
            return StepResult(True, "rejected")
        psp_reference = f"psp-{uuid.uuid4().hex[:12]}"
        record(connection, {**envelope, "event_type": "payment.approved", **common, "psp_reference": psp_reference})
        open_ledger_accounts(connection, currency)
        lines: tuple[Line, ...] = (
            Line(CLEARING, "DEBIT", amount, currency),
            Line(REVENUE, "CREDIT", subtotal, currency),
        )
        lines += (Line(GST, "CREDIT", tax, currency),) if tax else ()
        sale = Posting(payment_id, "PAYMENT", f"course sale, order {order_id}", lines)
        posting_envelope = _envelope(settings, user_id, envelope["correlation_id"])
        transaction_id = post(connection, sale, event_user_id=user_id, event_envelope=posting_envelope, emit=record)
        connection.execute(
            "INSERT INTO order_postings (order_id, transaction_id) VALUES (%s, %s)", (order_id, transaction_id)
        )
        connection.execute("UPDATE orders SET status = 'PAID' WHERE order_id = %s", (order_id,))
        enqueue(
            connection,
            {
                **_envelope(settings, user_id, envelope["correlation_id"]),
                "event_type": "order.paid",
                "order_id": order_id,
                "payment_id": payment_id,
                "course_id": course_id,
                "total_minor": amount,
                "currency": currency,
            },
        )
    return StepResult(True, "approved")


def enroll(connection: psycopg.Connection[Any], settings: Settings, order_id: str) -> StepResult:
    """PAID -> FULFILLED with the enrolment; if the learner can no longer be enrolled, the payment is compensated."""
    with connection.transaction():
        row = connection.execute(
            "SELECT o.user_id, o.course_id, o.status, u.deleted_at IS NULL FROM orders o "
            "LEFT JOIN users u ON u.user_id = o.user_id WHERE o.order_id = %s FOR UPDATE OF o",
            (order_id,),
        ).fetchone()
        if row is None or row[2] != "PAID":
            return StepResult(False, "nothing to do")
        user_id, course_id, live = str(row[0]), str(row[1]), bool(row[3])
        correlation_id = str(uuid.uuid4())
        if not live:
            return _compensate(connection, settings, order_id, user_id, course_id, "the learner's account is gone")
        enrollment_id = str(uuid.uuid4())
        connection.execute(
            "INSERT INTO enrollments (enrollment_id, user_id, course_id, order_id) VALUES (%s, %s, %s, %s)",
            (enrollment_id, user_id, course_id, order_id),
        )
        connection.execute("UPDATE orders SET status = 'FULFILLED' WHERE order_id = %s", (order_id,))
        ids = {"enrollment_id": enrollment_id, "order_id": str(order_id), "course_id": course_id}
        enqueue(connection, {**_envelope(settings, user_id, correlation_id), "event_type": "user.enrolled", **ids})
        enqueue(connection, {**_envelope(settings, user_id, correlation_id), "event_type": "order.fulfilled", **ids})
    return StepResult(True, "enrolled")


def _compensate(
    connection: psycopg.Connection[Any], settings: Settings, order_id: str, user_id: str, course_id: str, why: str
) -> StepResult:
    posting = connection.execute(
        "SELECT transaction_id FROM order_postings WHERE order_id = %s", (order_id,)
    ).fetchone()
    correlation_id = str(uuid.uuid4())
    if posting is not None:
        reverse(
            connection,
            posting[0],
            "REFUND",
            f"refund: {why}",
            event_user_id=user_id,
            event_envelope=_envelope(settings, user_id, correlation_id),
            emit=record,
        )
    connection.execute("UPDATE orders SET status = 'CANCELLED' WHERE order_id = %s", (order_id,))
    enqueue(
        connection,
        {
            **_envelope(settings, user_id, correlation_id),
            "event_type": "order.cancelled",
            "order_id": str(order_id),
            "course_id": course_id,
            "payment_id": None,
            "reason": "OTHER",
            "reason_detail": why,
        },
    )
    return StepResult(True, "compensated")


def expire_payments(connection: psycopg.Connection[Any], settings: Settings, older_than_s: float) -> int:
    """Payments still waiting for a decision after the timeout fail; their orders, if still unpaid, are cancelled.

    Each payment is its own transaction, and one that cannot be expired (logged) does not keep the others waiting.
    """
    expired = 0
    rows = connection.execute(
        "SELECT payment_id FROM payments WHERE status = 'INITIATED' AND created_at < now() - make_interval(secs => %s) "
        "ORDER BY created_at",
        (older_than_s,),
    ).fetchall()
    for (payment_id,) in rows:
        try:
            expired += _expire(connection, settings, str(payment_id), older_than_s)
        except psycopg.OperationalError:
            raise
        except Exception:
            log.exception("payment %s could not be expired; left as it is", payment_id)
    return expired


def _expire(connection: psycopg.Connection[Any], settings: Settings, payment_id: str, older_than_s: float) -> int:
    with connection.transaction():
        row = _lock_payment_and_order(
            connection, payment_id, "p.status, p.method, p.amount_minor, p.currency, p.user_id, p.order_id, "
            "o.course_id, o.status",
        )  # fmt: skip
        if row is None or row[0] != "INITIATED":
            return 0
        _status, method, amount, currency, user_id, order_id, course_id, order_status = row
        user_id, correlation_id = str(user_id), str(uuid.uuid4())
        record(
            connection,
            {
                **_envelope(settings, user_id, correlation_id),
                "event_type": "payment.failed",
                "payment_id": payment_id,
                "order_id": str(order_id),
                "method": method,
                "amount_minor": amount,
                "currency": currency.strip(),
                "failure_code": "TIMEOUT",
                "reason": f"no final fraud decision within {older_than_s:g} s",
                "retryable": True,
            },
        )
        if order_status != "CREATED":
            return 1  # paid by another attempt meanwhile: that order is not this payment's to cancel
        connection.execute("UPDATE orders SET status = 'CANCELLED' WHERE order_id = %s", (order_id,))
        enqueue(
            connection,
            {
                **_envelope(settings, user_id, correlation_id),
                "event_type": "order.cancelled",
                "order_id": str(order_id),
                "course_id": str(course_id),
                "payment_id": payment_id,
                "reason": "PAYMENT_FAILED",
                "reason_detail": "payment timed out",
            },
        )
    return 1


def stuck_paid_orders(connection: psycopg.Connection[Any], older_than_s: float) -> list[str]:
    """Orders paid longer ago than this and still neither fulfilled nor compensated: their `order.paid` was lost
    to a step that failed for good (dead-lettered), so the sweeper enrols (or compensates) them."""
    rows = connection.execute(
        "SELECT o.order_id FROM orders o JOIN payments p ON p.order_id = o.order_id AND p.status = 'APPROVED' "
        "JOIN payment_events e ON e.payment_id = p.payment_id AND e.event_type = 'payment.approved' "
        "WHERE o.status = 'PAID' AND e.recorded_at < now() - make_interval(secs => %s)",
        (older_than_s,),
    ).fetchall()
    return [str(row[0]) for row in rows]
