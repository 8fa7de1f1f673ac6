"""The transactional outbox against real PostgreSQL and Kafka: an event exists in Kafka if and only if its
transaction committed; a crash of the writer or of the relay loses nothing and duplicates only with the same id."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import psycopg
import pytest

from services.outbox.relay import OutboxRelay
from services.outbox.store import enqueue
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings
from suuupra.simulate.journeys import SimulationProfile, generate


def _user_events(count: int) -> list[dict[str, Any]]:
    return [e.value for e in generate(SimulationProfile(seed=8), 2000) if e.event_type.startswith("user.")][:count]


def _published(settings: Settings) -> list[str]:
    with event_consumer(settings, [settings.topics.user]) as consumer:
        return [str(record.value["event_id"]) for record in consumer.read_to_end()]


def test_only_committed_events_are_published_in_commit_order(isolated: Settings, private_dsn: str) -> None:
    committed, rolled_back = _user_events(6)[:4], _user_events(6)[4:]
    with psycopg.connect(private_dsn) as connection:
        for event in committed:
            with connection.transaction():
                enqueue(connection, event)
        with pytest.raises(RuntimeError, match="business rule failed"), connection.transaction():  # noqa: PT012
            for event in rolled_back:
                enqueue(connection, event)
            raise RuntimeError("business rule failed")

    relay = OutboxRelay(private_dsn, EventPublisher(isolated))
    assert relay.drain().published == len(committed)
    assert relay.drain().published == 0, "published rows are marked"
    published = _published(isolated)
    assert sorted(published) == sorted(e["event_id"] for e in committed)
    for user in {e["user_id"] for e in committed}:
        mine = [e["event_id"] for e in committed if e["user_id"] == user]
        assert [p for p in published if p in mine] == mine, "one user's events keep their commit order"


def test_an_event_committed_by_a_writer_killed_before_publishing_is_published_later(
    isolated: Settings, private_dsn: str
) -> None:
    event = _user_events(1)[0]
    writer = (
        "import os, signal, psycopg, json; from services.outbox.store import enqueue\n"
        f"event = json.loads({__import__('json').dumps(__import__('json').dumps(event))})\n"
        f"with psycopg.connect({private_dsn!r}) as c:\n"
        "    with c.transaction():\n        enqueue(c, event)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", writer], capture_output=True, text=True, check=False)
    assert killed.returncode == -9, killed.stderr

    assert OutboxRelay(private_dsn, EventPublisher(isolated)).drain().published == 1
    assert _published(isolated) == [event["event_id"]]


class _AcknowledgedThenCrash(EventPublisher):
    """Kafka has the batch, then the relay dies before marking it."""

    def flush(self, timeout: float = 30.0) -> None:
        super().flush(timeout)
        raise ConnectionError("relay killed after the acknowledgement")


def test_a_relay_crash_after_kafka_acknowledged_republishes_with_the_same_ids(
    isolated: Settings, private_dsn: str
) -> None:
    events = _user_events(3)
    with psycopg.connect(private_dsn) as connection, connection.transaction():
        for event in events:
            enqueue(connection, event)

    with pytest.raises(ConnectionError):
        OutboxRelay(private_dsn, _AcknowledgedThenCrash(isolated)).drain()
    assert OutboxRelay(private_dsn, EventPublisher(isolated)).drain().published == len(events)

    published = _published(isolated)
    assert len(published) == 2 * len(events), "at-least-once: the unmarked batch went out again"
    assert set(published) == {e["event_id"] for e in events}, "duplicates carry the same event id"


def test_an_event_that_breaks_its_schema_fails_the_business_transaction(isolated: Settings, private_dsn: str) -> None:
    broken = {**_user_events(1)[0], "email": None}
    with psycopg.connect(private_dsn) as connection:
        with pytest.raises(ValueError, match="email"), connection.transaction():
            enqueue(connection, broken)
        assert connection.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
