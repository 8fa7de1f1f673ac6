"""`suuupra status` reads the real platform: what a group has not consumed, what went to the dead-letter topic and
which payments wait on a fraud decision are counted as they are, and a component that is down is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from confluent_kafka import Consumer, Producer, TopicPartition

from services.app import ensure_schema
from suuupra.settings import Settings, environment_overrides
from suuupra.status import platform_report

RECORDS = 10
COMMITTED = 4


def _produce(
    settings: Settings, topic: str, partition: int, count: int, headers: list[tuple[str, str | bytes | None]]
) -> None:
    producer = Producer(settings.kafka.client_config())
    for index in range(count):
        producer.produce(topic, value=f"record {index}".encode(), partition=partition, headers=headers)
    assert producer.flush(30) == 0


def _commit(settings: Settings, group: str, topic: str, partition: int, offset: int) -> None:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, partition, offset)], asynchronous=False)
    finally:
        consumer.close()


def _payments(settings: Settings, waiting: int, decided: int) -> None:
    ensure_schema(settings)
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        for index in range(waiting + decided):
            order, payment, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            connection.execute(
                "INSERT INTO orders (order_id, user_id, course_id, unit_price_minor, subtotal_minor, tax_minor, "
                "total_minor, currency, status) VALUES (%s, %s, %s, 100, 100, 0, 100, 'INR', 'CREATED')",
                (order, user, uuid.uuid4()),
            )
            connection.execute(
                "INSERT INTO payments (payment_id, order_id, user_id, attempt, method, amount_minor, currency, status) "
                "VALUES (%s, %s, %s, 1, 'UPI', 100, 'INR', 'INITIATED')",
                (payment, order, user),
            )
            if index >= waiting:
                connection.execute(
                    "INSERT INTO payment_events (payment_id, sequence, event_id, event_type, event_time, payload) "
                    "VALUES (%s, 1, %s, 'payment.fraud_decided', now(), '{}')",
                    (payment, uuid.uuid4()),
                )


def test_the_report_counts_lag_dead_letters_and_waiting_payments(isolated: Settings) -> None:
    topic = isolated.topics.clickstream
    group = f"{isolated.services.consumer_group_prefix}.status-test"
    _produce(isolated, topic, 0, RECORDS, [])
    _commit(isolated, group, topic, 0, COMMITTED)
    dead: list[tuple[str, str | bytes | None]] = [
        ("dlq.failed.by", b"analytics"),
        ("dlq.reason.code", b"malformed_record"),
    ]
    _produce(isolated, isolated.topics.dead_letter, 0, 3, dead)
    _produce(isolated, isolated.topics.dead_letter, 1, 2, [("dlq.failed.by", b"fraud"), ("dlq.reason.code", b"x")])
    _payments(isolated, waiting=2, decided=3)

    report = platform_report(isolated)

    lags = {(entry.topic, entry.partition): entry.lag for entry in report.lag if entry.group == group}
    assert lags == {(topic, 0): RECORDS - COMMITTED}
    assert report.dead_letters == {("analytics", "malformed_record"): 3, ("fraud", "x"): 2}
    assert report.pending_payments is not None and report.pending_payments.count == 2
    assert report.pending_payments.oldest_age_s is not None and report.pending_payments.oldest_age_s >= 0
    assert {status.name for status in report.components if status.health.ok} >= {"kafka", "postgres", "clickhouse"}


def test_the_command_prints_json_and_fails_when_a_component_is_unreachable(isolated: Settings) -> None:
    environment = {**os.environ, **environment_overrides(isolated, "topics", "postgres", "services")}
    command = [str(Path(sys.executable).parent / "suuupra"), "status", "--json"]
    healthy = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)
    report = json.loads(healthy.stdout)
    assert {"components", "jobs", "lag", "dead_letters", "pending_payments", "problems"} <= set(report)
    assert report["pending_payments"] == {"count": 0, "oldest_age_s": None}

    unreachable = {**environment, "SUUUPRA_POSTGRES__PORT": "1"}
    broken = subprocess.run(command, env=unreachable, capture_output=True, text=True, timeout=120, check=False)
    assert broken.returncode == 1
    problems = json.loads(broken.stdout)["problems"]
    assert any(problem.startswith("postgresql:") for problem in problems), problems
