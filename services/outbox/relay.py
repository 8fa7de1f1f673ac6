"""Publishes committed outbox rows to Kafka with the idempotent producer, then marks them published.

Guarantee: at-least-once with a stable event id. A crash after Kafka acknowledged a batch but before the rows were
marked publishes that batch again on restart, with the same `event_id`s; consumers deduplicate on `event_id`. A crash
anywhere else loses nothing: rows stay unpublished until a relay marks them. Rows are published in `id` order by
one relay at a time per outbox (a transaction-scoped advisory lock keyed by the outbox table), so one user's events
keep their commit order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from suuupra.events import EventPublisher

# One lock per outbox table: its OID (the table the search path resolves) keys the advisory lock, so relays of one
# outbox take turns while relays of outboxes in other schemas of the same database never wait for each other.
RELAY_LOCK_KEY = "SELECT pg_try_advisory_xact_lock('outbox'::regclass::oid::bigint)"


@dataclass(frozen=True)
class RelayReport:
    published: int
    batches: int


class OutboxRelay:
    def __init__(self, dsn: str, publisher: EventPublisher, batch_size: int = 500) -> None:
        self._dsn = dsn
        self._publisher = publisher
        self._batch_size = batch_size

    def publish_batch(self, connection: psycopg.Connection[Any]) -> int:
        """One batch: returns how many events were published and marked (0 when nothing waits)."""
        with connection.transaction():
            locked = connection.execute(RELAY_LOCK_KEY).fetchone()
            if not locked or not locked[0]:
                return 0
            rows = connection.execute(
                "SELECT id, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT %s",
                (self._batch_size,),
            ).fetchall()
            if not rows:
                return 0
            for _row_id, payload in rows:
                self._publisher.publish(payload)
            # Only acknowledged events are marked; a failed flush raises and the transaction rolls back.
            self._publisher.flush()
            connection.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY(%s)", ([row_id for row_id, _ in rows],)
            )
        return len(rows)

    def drain(self) -> RelayReport:
        """Publishes until nothing waits."""
        published = batches = 0
        with psycopg.connect(self._dsn) as connection:
            while count := self.publish_batch(connection):
                published += count
                batches += 1
        return RelayReport(published, batches)
