"""Reads the domain and dead-letter topics back from Kafka and counts what is there."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from connectors.avro.serde import AvroDeserializer
from connectors.kafka.consumer import AvroConsumer
from connectors.kafka.dead_letter import read_dead_letters
from schemas import default_catalog
from suuupra.events import make_registry, reader_schemas
from suuupra.settings import Settings


@dataclass
class TopicSummary:
    by_topic: Counter[str] = field(default_factory=Counter)
    by_event_type: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)
    dead_letters_by_reason: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0
    bytes_read: int = 0


def summarize(settings: Settings) -> TopicSummary:
    """Reads every domain topic to its current end (a throw-away consumer group: nothing is committed for others)."""
    registry = make_registry(settings)
    deserializer = AvroDeserializer(registry, reader_schemas(default_catalog()))
    summary = TopicSummary()
    group = f"suuupra-summary-{uuid.uuid4()}"
    # No dead-letter writer: a summary only reads; what it cannot read is counted and left where it is.
    topics = list(settings.topics.domain().values())
    with AvroConsumer(
        settings.kafka.client_config(), group, topics, deserializer, None, skip_unreadable=True,
        overrides={"enable.auto.commit": "false"},
    ) as consumer:  # fmt: skip
        for record in consumer.read_to_end():
            summary.by_topic[record.topic] += 1
            summary.by_event_type[str(record.value.get("event_type"))] += 1
            summary.users.add(str(record.value.get("user_id")).lower())  # a UUID: one user in either case
            summary.bytes_read += record.size_bytes
        summary.unreadable = consumer.skipped
    summary.dead_letters_by_reason = _dead_letter_reasons(settings)
    return summary


def records_in_domain_topics(settings: Settings) -> int:
    """How many records the domain topics hold (their partitions' end offsets minus start offsets), without reading
    them."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"suuupra-count-{uuid.uuid4()}"})
    try:
        total = 0
        for topic in settings.topics.domain().values():
            metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
            for partition in metadata.partitions if metadata is not None else {}:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
                total += max(0, high - low)
        return total
    finally:
        consumer.close()


def _dead_letter_reasons(settings: Settings) -> Counter[str]:
    letters = read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter)
    return Counter(letter.headers.get("reason.code", "?") for letter in letters)
