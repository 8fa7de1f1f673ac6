"""A malformed record lands in the dead-letter topic with its reason, byte for byte; nothing else is lost."""

from __future__ import annotations

import random

from confluent_kafka import Consumer, TopicPartition

from connectors.kafka.dead_letter import parse_dead_letter_headers
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import Settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.simulate.runner import MALFORMED_KINDS, malformed_record


def _read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, str]]]:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "dlq-test", "enable.auto.commit": "false"})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    consumer.assign(partitions)
    records = []
    while len(records) < sum(ends.values()):
        message = consumer.poll(10)
        assert message is not None, "dead-letter topic ended before its end offsets"
        assert message.error() is None
        records.append((message.key(), message.value(), parse_dead_letter_headers(message.headers())))
    consumer.close()
    return records


def test_malformed_records_go_to_dead_letter_with_reason_and_good_ones_all_arrive(isolated: Settings) -> None:
    publisher = EventPublisher(isolated)
    user_topic = isolated.topics.user
    events = [e for e in generate(SimulationProfile(seed=3), 3000) if publisher.topic_of(e.event_type) == user_topic]
    rng = random.Random(1)
    bad: list[bytes] = []
    for index, event in enumerate(events):
        publisher.publish(event.value)
        if index % 10 == 0:
            kind = MALFORMED_KINDS[len(bad) % len(MALFORMED_KINDS)]
            schema = publisher.catalog.schema_for(event.event_type).schema
            valid = publisher.producer.serializer.serialize(user_topic, schema, event.value)
            bad.append(malformed_record(kind, valid, rng))
            publisher.producer.produce_raw(user_topic, b"user-key", bad[-1])
    publisher.flush()

    with event_consumer(isolated, [user_topic]) as consumer:
        good = [record.value["event_id"] for record in consumer.read_to_end()]
        assert consumer.dead_lettered == len(bad)

    assert sorted(map(str, good)) == sorted(e.value["event_id"] for e in events)
    dead = _read_all(isolated, isolated.topics.dead_letter)
    assert sorted(value or b"" for _key, value, _headers in dead) == sorted(bad)
    reasons = {headers["reason.code"] for _key, _value, headers in dead}
    assert reasons == {"malformed_record", "unknown_schema"}
    for key, _value, headers in dead:
        assert key == b"user-key"
        assert headers["original.topic"] == user_topic
        assert int(headers["original.offset"]) >= 0
        assert headers["reason"], "the reason must say what is wrong"
