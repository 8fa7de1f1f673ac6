"""The saga's workers as `suuupra services up` runs them: orders move from payment to enrolment or cancellation
through Kafka alone (outbox relay, fraud stand-in, decision and enrolment consumers, timeouts), and a record the saga
cannot process goes to the dead-letter topic instead of stalling it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from confluent_kafka import Producer
from fastapi.testclient import TestClient

import services.saga_workers
from connectors.kafka.dead_letter import read_dead_letters
from services.commerce.saga import CLEARING, GST, REVENUE
from services.relay_loop import BackgroundRelay
from services.saga_workers import SagaWorkers
from suuupra.settings import Settings
from tests.services.test_saga import _enrolled, _order_status, _ordered, _paid_order, _pay

SETTLE_S = 60.0


def _with_services(isolated: Settings, **services: Any) -> Settings:
    """The test's settings (own topics, schema and consumer-group prefix) with other saga timings."""
    return isolated.model_copy(update={"services": isolated.services.model_copy(update=services)})


@pytest.fixture
def running(isolated: Settings) -> Iterator[tuple[Settings, SagaWorkers]]:
    settings = _with_services(isolated, payment_timeout_check_s=0.5)
    relay, workers = BackgroundRelay(settings, interval_s=0.1), SagaWorkers(settings)
    relay.start()
    workers.start()
    yield settings, workers
    workers.stop()
    relay.stop()


def _settled(settings: Settings, order_id: str, timeout_s: float = SETTLE_S) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := _order_status(settings, order_id)) not in ("FULFILLED", "CANCELLED"):
        assert time.monotonic() < deadline, f"order {order_id} still {status} after {timeout_s:.0f} s"
        time.sleep(0.2)
    return status


def _ledger_balanced(settings: Settings) -> None:
    with psycopg.connect(settings.postgres.dsn()) as connection:
        unbalanced = connection.execute(
            "SELECT transaction_id FROM ledger_lines GROUP BY transaction_id, currency "
            "HAVING sum(CASE WHEN direction = 'DEBIT' THEN amount_minor ELSE -amount_minor END) <> 0"
        ).fetchall()
    assert unbalanced == []


def test_approved_and_rejected_payments_settle_through_kafka(
    client: TestClient, running: tuple[Settings, SagaWorkers]
) -> None:
    settings, workers = running
    garbage = Producer(settings.kafka.client_config())
    garbage.produce(settings.topics.payment, key=b"x", value=b"not avro at all")  # must not stall the saga
    garbage.flush(10)
    _buyer, approved = _paid_order(client, 99_900)
    _buyer, rejected = _paid_order(client, 2_500_000)
    assert (_settled(settings, approved), _enrolled(settings, approved)) == ("FULFILLED", True)
    assert (_settled(settings, rejected), _enrolled(settings, rejected)) == ("CANCELLED", False)
    with psycopg.connect(settings.postgres.dsn()) as connection:
        statuses = dict(connection.execute(
            "SELECT order_id::text, status FROM payments WHERE order_id::text = ANY(%s)", ([approved, rejected],)
        ).fetchall())  # fmt: skip
        sale = connection.execute(
            "SELECT account, amount_minor FROM ledger_lines l JOIN order_postings p USING (transaction_id) "
            "WHERE p.order_id = %s ORDER BY account",
            (approved,),
        ).fetchall()
    assert statuses == {approved: "APPROVED", rejected: "REJECTED"}
    assert sale == [(CLEARING, 117_882), (GST, 17_982), (REVENUE, 99_900)]
    assert workers.counters["decisions published"] >= 2
    _ledger_balanced(settings)


def test_a_payment_nobody_decides_on_times_out(client: TestClient, isolated: Settings) -> None:
    settings = _with_services(isolated, fraud_standin=False, payment_timeout_s=1.0, payment_timeout_check_s=0.3)
    with BackgroundRelay(settings, interval_s=0.1), SagaWorkers(settings):
        _buyer, order_id = _paid_order(client, 99_900)
        assert (_settled(settings, order_id, timeout_s=20), _enrolled(settings, order_id)) == ("CANCELLED", False)
    with psycopg.connect(settings.postgres.dsn()) as connection:
        status = connection.execute("SELECT status FROM payments WHERE order_id = %s", (order_id,)).fetchone()
    assert status == ("FAILED",)


def test_a_step_that_fails_goes_to_the_dead_letter_topic_and_the_saga_goes_on(
    client: TestClient, isolated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _with_services(isolated)
    real_apply = services.saga_workers.apply_decision
    buyer, first = _ordered(client, 99_900)
    poisoned: list[str] = []

    def failing_for_first(connection: psycopg.Connection[Any], settings_: Settings, decision: dict[str, Any]) -> Any:
        if str(decision["order_id"]) == first:  # a defect that this one decision hits
            poisoned.append(first)
            raise RuntimeError("simulated defect in a saga step")
        return real_apply(connection, settings_, decision)

    monkeypatch.setattr(services.saga_workers, "apply_decision", failing_for_first)
    with BackgroundRelay(settings, interval_s=0.1) as _relay, SagaWorkers(settings) as workers:
        _pay(client, buyer, first)
        deadline = time.monotonic() + SETTLE_S
        while not poisoned and time.monotonic() < deadline:
            time.sleep(0.2)
        _buyer, second = _paid_order(client, 99_900)
        assert _settled(settings, second) == "FULFILLED"
        assert workers.counters["dead-lettered"] == 1
    assert poisoned == [first] * 3, "tried three times, then dead-lettered"
    assert _order_status(settings, first) == "CREATED", "the failed step changed nothing"
    [letter] = read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter)
    assert letter.headers["reason.code"] == "SAGA_STEP_FAILED"
    assert "simulated defect" in letter.headers["reason"]
    assert letter.headers["original.topic"] == settings.topics.payment


def test_the_sweeper_enrols_a_paid_order_whose_enrolment_step_was_dead_lettered(
    client: TestClient, isolated: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _with_services(isolated, payment_timeout_s=2.0, payment_timeout_check_s=0.5)
    real_enroll = services.saga_workers.enroll
    failures: list[str] = []

    def failing_three_times(connection: psycopg.Connection[Any], settings_: Settings, order_id: str) -> Any:
        if len(failures) < 3:  # every attempt of the consumer fails; the sweeper's later call succeeds
            failures.append(order_id)
            raise RuntimeError("enrolment service hiccup")
        return real_enroll(connection, settings_, order_id)

    monkeypatch.setattr(services.saga_workers, "enroll", failing_three_times)
    with BackgroundRelay(settings, interval_s=0.1), SagaWorkers(settings) as workers:
        _buyer, order_id = _paid_order(client, 99_900)
        assert (_settled(settings, order_id), _enrolled(settings, order_id)) == ("FULFILLED", True)
        assert workers.counters["dead-lettered"] == 1
        assert workers.counters["swept: enrolled"] == 1
    assert failures == [order_id] * 3
