"""Sends simulated journeys to Kafka at a chosen rate, with optional malformed records, and sums up what it sent."""

from __future__ import annotations

import random
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from suuupra.events import EVENT_TYPE_HEADER, EventPublisher, event_time_ms
from suuupra.simulate.journeys import SimulatedEvent, SimulationProfile, generate

MALFORMED_KINDS = ("not_avro", "unknown_schema_id", "truncated_body")
# A schema id the registry will not have handed out: ids start at 1 and grow by one per new schema.
UNKNOWN_SCHEMA_ID = 2_000_000_000

Progress = Callable[[int], None]


@dataclass
class SimulationSummary:
    by_event_type: Counter[str] = field(default_factory=Counter)
    by_topic: Counter[str] = field(default_factory=Counter)
    tags: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    bytes_sent: int = 0

    @property
    def events(self) -> int:
        return sum(self.by_event_type.values())

    @property
    def records(self) -> int:
        return self.events + sum(self.malformed.values())


def malformed_record(kind: str, valid: bytes, rng: random.Random) -> bytes:
    """Bytes a careless producer could write: they must end in the dead-letter topic, not crash a consumer."""
    if kind == "not_avro":
        return b'{"event_type": "content.viewed", "watch_seconds": "lots"}'
    if kind == "unknown_schema_id":
        return struct.pack(">bI", 0, UNKNOWN_SCHEMA_ID) + valid[5:]
    # Cut inside the body: the header is fine, the record is not.
    return valid[: max(6, rng.randrange(6, max(7, len(valid) // 2)))]


class Simulation:
    def __init__(
        self,
        publisher: EventPublisher,
        profile: SimulationProfile,
        malformed_share: float = 0.0,
    ) -> None:
        self.publisher = publisher
        self.profile = profile
        self.malformed_share = malformed_share
        self._rng = random.Random(profile.seed ^ 0x5EED)

    def run(self, count: int, rate: float | None = None, progress: Progress | None = None) -> SimulationSummary:
        """Sends `count` events; `rate` events/s paces them, None sends as fast as Kafka takes them."""
        summary = SimulationSummary()
        began = time.monotonic()
        producer = self.publisher.producer
        for index, event in enumerate(generate(self.profile, count)):
            if rate:
                # Pace on the schedule, not per event, so a slow moment is caught up instead of drifting.
                delay = began + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            topic = self.publisher.publish(event.value)
            self._count(summary, event, topic)
            if self.malformed_share and self._rng.random() < self.malformed_share:
                self._send_malformed(event, topic, summary)
            if progress and index % 500 == 0:
                progress(index)
        self.publisher.flush(timeout=120)
        if progress:
            progress(count)
        summary.elapsed_s = time.monotonic() - began
        summary.bytes_sent = producer.bytes_sent
        return summary

    @staticmethod
    def _count(summary: SimulationSummary, event: SimulatedEvent, topic: str) -> None:
        summary.by_event_type[event.event_type] += 1
        summary.by_topic[topic] += 1
        summary.tags.update(event.tags)

    def _send_malformed(self, event: SimulatedEvent, topic: str, summary: SimulationSummary) -> None:
        kind = self._rng.choice(MALFORMED_KINDS)
        schema = self.publisher.catalog.schema_for(event.event_type).schema
        valid = self.publisher.producer.serializer.serialize(topic, schema, event.value)
        value = malformed_record(kind, valid, self._rng)
        headers = [(EVENT_TYPE_HEADER, event.event_type.encode()), ("simulator.malformed", kind.encode())]
        key = str(event.value["user_id"]).encode()
        self.publisher.producer.produce_raw(topic, key, value, headers, event_time_ms(event.value))
        summary.malformed[kind] += 1
        summary.by_topic[topic] += 1
