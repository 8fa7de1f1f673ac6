"""Reads the domain and dead-letter topics back from Kafka and counts what is there."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, TopicPartition

from connectors.avro.serde import AvroDeserializer
from connectors.kafka.consumer import AvroConsumer
from connectors.kafka.dead_letter import parse_dead_letter_headers
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
            summary.users.add(str(record.value.get("user_id")))
            summary.bytes_read += record.size_bytes
        summary.unreadable = consumer.skipped
    summary.dead_letters_by_reason = _dead_letter_reasons(settings)
    return summary


def _dead_letter_reasons(settings: Settings) -> Counter[str]:
    reasons: Counter[str] = Counter()
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"suuupra-summary-{uuid.uuid4()}",
                         "enable.auto.commit": "false", "auto.offset.reset": "earliest"})  # fmt: skip
    try:
        topic = settings.topics.dead_letter
        metadata = consumer.list_topics(topic, timeout=10)
        partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.assign(partitions)
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining:
            message = consumer.poll(5)
            if message is None:
                break
            if message.error():
                continue
            reasons[parse_dead_letter_headers(message.headers()).get("reason.code", "?")] += 1
            partition, offset = message.partition() or 0, message.offset() or 0
            if offset + 1 >= ends[partition]:
                remaining.discard(partition)
    finally:
        consumer.close()
    return reasons
