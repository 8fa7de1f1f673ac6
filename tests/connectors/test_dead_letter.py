"""A malformed record lands in the dead-letter topic with its reason, byte for byte; nothing else is lost."""

from __future__ import annotations

import random
import socket

import pytest

from connectors.avro.errors import RegistryUnavailableError
from connectors.kafka.dead_letter import read_dead_letters
from suuupra.events import EventPublisher, event_consumer
from suuupra.settings import RegistrySettings, Settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.simulate.runner import MALFORMED_KINDS, malformed_record


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
    dead = read_dead_letters(isolated.kafka.client_config(), isolated.topics.dead_letter)
    assert sorted(letter.value or b"" for letter in dead) == sorted(bad)
    assert {letter.headers["reason.code"] for letter in dead} == {"malformed_record", "unknown_schema"}
    for letter in dead:
        assert letter.key == b"user-key"
        assert letter.headers["original.topic"] == user_topic
        assert int(letter.headers["original.offset"]) >= 0
        assert letter.headers["reason"], "the reason must say what is wrong"


def test_a_record_whose_processing_failed_is_read_again_by_the_group(isolated: Settings) -> None:
    publisher = EventPublisher(isolated)
    events = [
        e for e in generate(SimulationProfile(seed=4), 400) if publisher.topic_of(e.event_type) == isolated.topics.user
    ]
    for event in events:
        publisher.publish(event.value)
    publisher.flush()
    group = f"retry-{isolated.topics.user}"

    handed_out = []
    with (  # noqa: PT012 - the failure has to happen inside the consumer's block
        pytest.raises(RuntimeError, match="processing failed"),
        event_consumer(isolated, [isolated.topics.user], group) as consumer,
    ):
        for record in consumer.read_to_end():
            handed_out.append(str(record.value["event_id"]))
            if len(handed_out) == 3:
                raise RuntimeError("processing failed")

    with event_consumer(isolated, [isolated.topics.user], group) as consumer:
        again = [str(record.value["event_id"]) for record in consumer.read_to_end()]
    assert handed_out[2] in again, "the record whose processing raised must come back"
    assert not set(handed_out[:2]) & set(again), "records processed before the failure are not read again"
    assert set(again) | set(handed_out) == {e.value["event_id"] for e in events}


def test_a_registry_outage_dead_letters_nothing(isolated: Settings) -> None:
    publisher = EventPublisher(isolated)
    event = next(
        e for e in generate(SimulationProfile(seed=5), 500) if publisher.topic_of(e.event_type) == isolated.topics.user
    )
    publisher.publish(event.value)
    publisher.flush()

    unreachable = isolated.model_copy(update={"registry": RegistrySettings(port=free_port())})
    with pytest.raises(RegistryUnavailableError), event_consumer(unreachable, [isolated.topics.user]) as consumer:
        list(consumer.read_to_end())
    assert read_dead_letters(isolated.kafka.client_config(), isolated.topics.dead_letter) == []
