"""The enrolment saga's long-running parts, run in the background of `suuupra services up`.

- the fraud stand-in (until the fraud job exists): `payment.initiated` of our payments -> `payment.fraud_decided`;
- the saga: `payment.fraud_decided` -> approve (ledger, order paid) or reject; `order.paid` -> enrol or compensate;
- the timeout: payments still waiting for a decision after `services.payment_timeout_s` fail.

Consumers are at-least-once (offsets stored only after a record's step committed) and every step applies only from
the state it expects, so a redelivered event changes nothing. A passing outage (PostgreSQL or Kafka away) retries
the same record; a record whose step fails for any other reason goes to the dead-letter topic with the reason, so
one bad record never stalls the saga.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from connectors.kafka.consumer import AvroConsumer, ConsumedRecord
from services.commerce.saga import apply_decision, enroll, expire_payments, fraud_decision
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings

log = logging.getLogger(__name__)

RETRY_PAUSE_S = 1.0
POLL_S = 0.5


@dataclass
class SagaCounters:
    """What the workers did since they started (read by tests and the CLI's status line)."""

    decisions_published: int = 0
    steps_applied: int = 0
    payments_expired: int = 0
    dead_lettered: int = 0
    retries: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)


class SagaWorkers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = SagaCounters()
        self._stop = threading.Event()
        loops: list[tuple[str, Callable[[], None]]] = [("saga", self._saga), ("payment-timeouts", self._timeouts)]
        if settings.services.fraud_standin:
            loops.append(("fraud-standin", self._fraud_standin))
        self._threads = [threading.Thread(target=self._guarded, args=(name, loop), name=name, daemon=True)
                         for name, loop in loops]  # fmt: skip

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    def __enter__(self) -> SagaWorkers:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _group(self, name: str) -> str:
        return f"{self.settings.services.consumer_group_prefix}.{name}"

    def _guarded(self, name: str, loop: Callable[[], None]) -> None:
        """A worker whose consumer or connection broke starts over (from its committed offsets) until stopped."""
        while not self._stop.is_set():
            try:
                loop()
            except Exception:
                log.exception("saga worker %s failed; restarting in %.0f s", name, RETRY_PAUSE_S)
                self.counters.retries += 1
                self._stop.wait(RETRY_PAUSE_S)

    def _fraud_standin(self) -> None:
        topic, ours = self.settings.topics.payment, self.settings.services.producer
        publisher = EventPublisher(self.settings)
        with event_consumer(self.settings, [topic], group_id=self._group("fraud-standin")) as consumer:
            while not self._stop.is_set():
                record = consumer.poll(POLL_S)
                if record is None:
                    continue
                payment = record.value
                # Only our services' payments: the simulator's journeys carry their own decisions.
                if payment["event_type"] != "payment.initiated" or payment["producer"] != ours:
                    continue
                publisher.publish(fraud_decision(payment))
                publisher.flush()  # before the next poll stores this record's offset
                self.counters.decisions_published += 1

    def _saga(self) -> None:
        topics = [self.settings.topics.payment, self.settings.topics.commerce]
        with (
            event_consumer(self.settings, topics, group_id=self._group("saga")) as consumer,
            psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as connection,
        ):
            while not self._stop.is_set():
                record = consumer.poll(POLL_S)
                if record is not None:
                    self._step(consumer, connection, record)

    def _step(self, consumer: AvroConsumer, connection: psycopg.Connection[Any], record: ConsumedRecord) -> None:
        event = record.value
        try:
            if event["event_type"] == "payment.fraud_decided":
                result = apply_decision(connection, self.settings, event)
            elif event["event_type"] == "order.paid":
                result = enroll(connection, self.settings, str(event["order_id"]))
            else:
                return
        except psycopg.OperationalError:
            raise  # PostgreSQL is away: the worker starts over and reads this record again
        except Exception as error:
            log.exception("saga step failed for %s %s; dead-lettered", event["event_type"], event["event_id"])
            consumer.dead_letter_last(f"saga step failed: {type(error).__name__}: {error}", "SAGA_STEP_FAILED")
            self.counters.dead_lettered += 1
            return
        if result.applied:
            self.counters.steps_applied += 1
            self.counters.by_outcome[result.outcome] = self.counters.by_outcome.get(result.outcome, 0) + 1

    def _timeouts(self) -> None:
        services = self.settings.services
        with psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as connection:
            while not self._stop.is_set():
                self.counters.payments_expired += expire_payments(connection, self.settings, services.payment_timeout_s)
                self._stop.wait(services.payment_timeout_check_s)
