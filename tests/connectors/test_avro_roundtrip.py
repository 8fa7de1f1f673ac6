"""Every schema round-trips through the registry and Kafka, and bad bytes become precise errors."""

from __future__ import annotations

import json
import struct

import pytest

from connectors.avro.errors import MalformedRecordError, UnknownSchemaError
from connectors.avro.schema import AvroSchema
from connectors.avro.serde import AvroDeserializer, AvroSerializer
from schemas import default_catalog
from suuupra.events import EventPublisher, event_consumer, make_registry
from suuupra.settings import Settings
from tests.support import one_event_per_type, wire_value


def test_every_event_type_round_trips_through_registry_and_kafka(isolated: Settings) -> None:
    samples = one_event_per_type()
    catalog = default_catalog()
    assert set(samples) == set(catalog.events), "the simulator must exercise every schema"

    publisher = EventPublisher(isolated)
    for event in samples.values():
        publisher.publish(event.value)
    publisher.flush()

    topics = sorted({publisher.topic_of(t) for t in samples})
    with event_consumer(isolated, topics) as consumer:
        received = {record.value["event_type"]: record for record in consumer.read_to_end()}

    assert set(received) == set(samples)
    for event_type, record in received.items():
        assert wire_value(record.value) == samples[event_type].value
        assert record.record_name == catalog.schema_for(event_type).record_name
        assert record.key == samples[event_type].value["user_id"]


def test_deserializer_names_what_is_wrong(isolated: Settings) -> None:
    registry = make_registry(isolated)
    event = next(iter(one_event_per_type().values()))
    schema = default_catalog().schema_for(event.event_type).schema
    topic = EventPublisher(isolated).topic_of(event.event_type)
    valid = AvroSerializer(registry).serialize(topic, schema, event.value)
    deserializer = AvroDeserializer(registry)

    with pytest.raises(MalformedRecordError, match="shorter than the 5-byte"):
        deserializer.deserialize(b"\x00\x01")
    with pytest.raises(MalformedRecordError, match="not the Confluent Avro magic byte"):
        deserializer.deserialize(b'{"json": true}')
    with pytest.raises(UnknownSchemaError, match="schema id 2000000000 is not in the registry"):
        deserializer.deserialize(struct.pack(">bI", 0, 2_000_000_000) + valid[5:])
    with pytest.raises(MalformedRecordError, match="does not decode"):
        deserializer.deserialize(valid[: len(valid) // 2])
    with pytest.raises(MalformedRecordError, match="left over"):
        deserializer.deserialize(valid + b"\x00\x00")
    assert wire_value(deserializer.deserialize(valid).value) == event.value


def test_newer_writer_is_read_through_the_consumers_reader_schema(isolated: Settings) -> None:
    """A producer upgraded with an optional field: a consumer on the catalogue's schema still reads its events."""
    event = one_event_per_type()["payment.initiated"]
    current = default_catalog().schema_for("payment.initiated").schema
    document = json.loads(current.text)
    document["fields"].append({"name": "merchant_note", "type": ["null", "string"], "default": None, "doc": "x"})
    newer = AvroSchema.from_text(json.dumps(document))
    registry = make_registry(isolated)
    topic = isolated.topics.payment
    data = AvroSerializer(registry, auto_register=True).serialize(topic, newer, {**event.value, "merchant_note": "hi"})

    decoded = AvroDeserializer(registry, {current.fullname: current}).deserialize(data)
    assert wire_value(decoded.value) == event.value
    assert "merchant_note" in AvroDeserializer(registry).deserialize(data).value
