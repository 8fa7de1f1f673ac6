"""The enrolment saga's long-running parts, run in the background of `suuupra services up`.

- the fraud stand-in (until the fraud job exists): `payment.initiated` of our payments -> `payment.fraud_decided`;
- the saga: `payment.fraud_decided` -> approve (ledger, order paid) or reject; `order.paid` -> enrol or compensate;
- the sweeper: payments still waiting for a decision after `services.payment_timeout_s` fail, and orders paid that
  long ago but neither fulfilled nor compensated (their step was dead-lettered) are enrolled or compensated.

Consumers are at-least-once (offsets stored only after a record's step committed) and every step applies only from
the state it expects, so a redelivered event changes nothing. PostgreSQL unreachable: the worker starts over from
its committed offsets. A step that fails otherwise is tried again a few times (a failover, a migration in progress),
then its record goes to the dead-letter topic with the reason, so one bad record never stalls the saga.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg

from connectors.kafka.config import ClientConfig
from connectors.kafka.consumer import AvroConsumer, ConsumedRecord
from services.commerce.saga import (
    StepResult,
    apply_decision,
    enroll,
    expire_payments,
    fraud_decision,
    stuck_paid_orders,
)
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0
POLL_S = 0.5
STEP_ATTEMPTS = 3
STEP_BACKOFF_S = 0.5
# Below the stop timeout, so a stopping worker is never cut off inside a flush.
FLUSH_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 20.0


class _StoppingError(Exception):
    """Raised out of a step interrupted by `stop`, so its record's offset is not stored."""


class SagaCounters:
    """What the workers did since they started, by name (read by tests and benchmarks); safe across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class SagaWorkers:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = SagaCounters()
        self._stop = threading.Event()
        loops: list[tuple[str, Callable[[], None]]] = [("saga", self._saga), ("saga-sweeper", self._sweeper)]
        if settings.services.fraud_standin:
            loops.append(("fraud-standin", self._fraud_standin))
        self._threads = [threading.Thread(target=self._guarded, args=(name, loop), name=name, daemon=True)
                         for name, loop in loops]  # fmt: skip

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if alive := [thread.name for thread in self._threads if thread.is_alive()]:
            log.warning("saga workers still busy after %.0f s: %s (their records will be read again)",
                        STOP_TIMEOUT_S, ", ".join(alive))  # fmt: skip

    def __enter__(self) -> SagaWorkers:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def _liveness(self) -> ClientConfig:
        session_ms = int(self.settings.services.consumer_session_timeout_s * 1000)
        return {"session.timeout.ms": session_ms, "heartbeat.interval.ms": session_ms // 3}

    def _group(self, name: str) -> str:
        return f"{self.settings.services.consumer_group_prefix}.{name}"

    def _guarded(self, name: str, loop: Callable[[], None]) -> None:
        """A worker whose consumer or connection broke starts over (from its committed offsets) until stopped."""
        while not self._stop.is_set():
            try:
                loop()
            except _StoppingError:
                return
            except Exception:
                log.exception("saga worker %s failed; restarting in %.0f s", name, RESTART_PAUSE_S)
                self.counters.add("restarts")
                self._stop.wait(RESTART_PAUSE_S)

    def _fraud_standin(self) -> None:
        topic, ours = self.settings.topics.payment, self.settings.services.producer
        publisher = EventPublisher(self.settings)
        with event_consumer(
            self.settings, [topic], group_id=self._group("fraud-standin"), overrides=self._liveness
        ) as consumer:
            while not self._stop.is_set():
                record = consumer.poll(POLL_S)
                if record is None:
                    continue
                payment = record.value
                # Only our services' payments: the simulator's journeys carry their own decisions.
                if payment["event_type"] != "payment.initiated" or payment["producer"] != ours:
                    continue
                publisher.publish(fraud_decision(payment))
                publisher.flush(FLUSH_TIMEOUT_S)  # before the next poll stores this record's offset
                self.counters.add("decisions published")

    def _saga(self) -> None:
        topics = [self.settings.topics.payment, self.settings.topics.commerce]
        with (
            event_consumer(self.settings, topics, group_id=self._group("saga"), overrides=self._liveness) as consumer,
            psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as connection,
        ):
            while not self._stop.is_set():
                record = consumer.poll(POLL_S)
                if record is not None:
                    self._step(consumer, connection, record)

    def _apply(self, connection: psycopg.Connection[Any], event: dict[str, Any]) -> StepResult | None:
        if event["event_type"] == "payment.fraud_decided":
            return apply_decision(connection, self.settings, event)
        if event["event_type"] == "order.paid":
            return enroll(connection, self.settings, str(event["order_id"]))
        return None

    def _step(self, consumer: AvroConsumer, connection: psycopg.Connection[Any], record: ConsumedRecord) -> None:
        event = record.value
        for attempt in range(1, STEP_ATTEMPTS + 1):
            try:
                result = self._apply(connection, event)
                break
            except psycopg.OperationalError:
                raise  # PostgreSQL is unreachable: the worker starts over and reads this record again
            except Exception as error:
                if attempt == STEP_ATTEMPTS:
                    log.exception("saga step for %s %s failed %d times; dead-lettered",
                                  event["event_type"], event["event_id"], attempt)  # fmt: skip
                    consumer.dead_letter_last(f"saga step failed: {type(error).__name__}: {error}", "SAGA_STEP_FAILED")
                    self.counters.add("dead-lettered")
                    return
                log.warning("saga step for %s %s failed (attempt %d): %s; retrying",
                            event["event_type"], event["event_id"], attempt, error)  # fmt: skip
                if self._stop.wait(STEP_BACKOFF_S * 2 ** (attempt - 1)):
                    raise _StoppingError from error  # neither done nor dead-lettered: read again after a restart
        if result is not None and result.applied:
            self.counters.add("steps applied")
            self.counters.add(result.outcome)

    def _sweeper(self) -> None:
        services = self.settings.services
        with psycopg.connect(self.settings.postgres.dsn(), autocommit=True) as connection:
            while not self._stop.is_set():
                expired = expire_payments(connection, self.settings, services.payment_timeout_s)
                self.counters.add("payments expired", expired)
                for order_id in stuck_paid_orders(connection, services.payment_timeout_s):
                    try:
                        self.counters.add(f"swept: {enroll(connection, self.settings, order_id).outcome}")
                    except psycopg.OperationalError:
                        raise
                    except Exception:
                        log.exception("paid order %s could not be enrolled or compensated; tried again next round",
                                      order_id)  # fmt: skip
                self._stop.wait(services.payment_timeout_check_s)
