"""Every schema round-trips through the registry and Kafka, and bad bytes become precise errors."""

from __future__ import annotations

import io
import json
import struct
import uuid
from typing import Any

import fastavro
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from connectors.avro.errors import DeserializationError, MalformedRecordError, UnknownSchemaError
from connectors.avro.schema import AvroSchema
from connectors.avro.serde import SCHEMA_NOT_FOUND, UNKNOWN_SCHEMA_RECHECK_S, AvroDeserializer, AvroSerializer
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


def _payment_schemas() -> tuple[dict[str, Any], AvroSchema, AvroSchema]:
    """A payment.initiated event, the catalogue's schema of it, and a newer one: a producer upgraded with an optional
    field."""
    current = default_catalog().schema_for("payment.initiated").schema
    document = json.loads(current.text)
    document["fields"].append({"name": "merchant_note", "type": ["null", "string"], "default": None, "doc": "x"})
    return one_event_per_type()["payment.initiated"].value, current, AvroSchema.from_text(json.dumps(document))


def test_newer_writer_is_read_through_the_consumers_reader_schema(isolated: Settings) -> None:
    """A producer upgraded with an optional field: a consumer on the catalogue's schema still reads its events."""
    value, current, newer = _payment_schemas()
    registry = make_registry(isolated)
    topic = isolated.topics.payment
    data = AvroSerializer(registry, auto_register=True).serialize(topic, newer, {**value, "merchant_note": "hi"})

    decoded = AvroDeserializer(registry, {current.fullname: current}).deserialize(data)
    assert wire_value(decoded.value) == value
    assert "merchant_note" in AvroDeserializer(registry).deserialize(data).value


def test_uuids_as_text_keep_the_form_they_were_written_in(isolated: Settings) -> None:
    """Python's UUID reads `urn:uuid:...` as a UUID; the jobs' decoder refuses it, so a tool that decides as the jobs
    do reads a uuid field's text: with the writer's own schema, and resolved onto a reader schema alike."""
    value, current, newer = _payment_schemas()
    registry = make_registry(isolated)
    urn = uuid.UUID(value["user_id"]).urn
    data = AvroSerializer(registry, auto_register=True).serialize(
        isolated.topics.payment, newer, {**value, "user_id": urn}
    )

    assert AvroDeserializer(registry).deserialize(data).value["user_id"] == uuid.UUID(value["user_id"])
    as_written = AvroDeserializer(registry, uuids_as_text=True).deserialize(data).value
    assert wire_value(as_written) == {**value, "user_id": urn, "merchant_note": None}
    resolved = AvroDeserializer(registry, {current.fullname: current}, uuids_as_text=True).deserialize(data).value
    assert wire_value(resolved) == {**value, "user_id": urn}


class _RegistryWithout:
    """A registry that has no schema at all, counting how often it is asked."""

    def __init__(self) -> None:
        self.asked = 0

    def get_schema(self, schema_id: int) -> None:
        self.asked += 1
        raise SchemaRegistryError(404, SCHEMA_NOT_FOUND, f"schema {schema_id} not found")


def test_an_unknown_schema_id_is_not_asked_again_for_every_record() -> None:
    registry = _RegistryWithout()
    now = [1000.0]
    deserializer = AvroDeserializer(registry, clock=lambda: now[0])  # type: ignore[arg-type]
    record = struct.pack(">bI", 0, 77) + b"\x02x"
    for _ in range(50):
        with pytest.raises(UnknownSchemaError, match="schema id 77 is not in the registry"):
            deserializer.deserialize(record)
    assert registry.asked == 1
    with pytest.raises(UnknownSchemaError):
        deserializer.deserialize(struct.pack(">bI", 0, 78) + b"\x02x")
    assert registry.asked == 2  # another id is asked about
    now[0] += UNKNOWN_SCHEMA_RECHECK_S
    with pytest.raises(UnknownSchemaError):
        deserializer.deserialize(record)
    assert registry.asked == 3  # and the same one again, once a while has passed: it may have been registered since


class _RegistryWith:
    """A registry that has one schema, under every id, counting how often it is asked."""

    def __init__(self, schema: Any, schema_type: str = "AVRO") -> None:
        self.schema_str = json.dumps(schema)
        self.schema_type = schema_type
        self.asked = 0

    def get_schema(self, schema_id: int) -> _RegistryWith:
        self.asked += 1
        return self


@pytest.mark.parametrize(
    ("schema", "schema_type", "refusal"),
    [
        ("string", "AVRO", "schema id 5 is not an Avro record schema"),
        ({"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "Nowhere"}]}, "AVRO",
         "schema id 5 does not parse as Avro"),
        ({"type": "record", "name": "BadDefault", "fields": [{"name": "x", "type": "int", "default": "many"}]}, "AVRO",
         "schema id 5 does not parse as Avro"),
        ({"type": "object"}, "JSON", "schema id 5 is JSON, not Avro"),
    ],
)  # fmt: skip
def test_an_id_whose_schema_cannot_be_read_is_refused_without_asking_again(
    schema: Any, schema_type: str, refusal: str
) -> None:
    """A registered id's schema never changes: once it is found unreadable, every later record naming it is refused
    for the same reason without a registry request, for good (no recheck, unlike an id the registry lacks)."""
    registry = _RegistryWith(schema, schema_type)
    now = [1000.0]
    deserializer = AvroDeserializer(registry, clock=lambda: now[0])  # type: ignore[arg-type]
    record = struct.pack(">bI", 0, 5) + b"\x02x"
    errors = []
    for _ in range(20):
        with pytest.raises(DeserializationError, match=refusal) as caught:
            deserializer.deserialize(record)
        errors.append(caught.value)
        now[0] += UNKNOWN_SCHEMA_RECHECK_S
    assert registry.asked == 1
    assert {(type(error), str(error)) for error in errors} == {(type(errors[0]), str(errors[0]))}
    assert len({id(error) for error in errors}) == len(errors)  # a fresh error each time: no traceback piles up


def test_an_answer_without_schema_text_is_asked_about_again() -> None:
    """Not the schema's fault but the answer's (a proxy's, say): not remembered, the next record asks again."""
    registry = _RegistryWith(None)
    registry.schema_str = ""
    deserializer = AvroDeserializer(registry)  # type: ignore[arg-type]
    for _ in range(3):
        with pytest.raises(UnknownSchemaError, match="schema id 5 has no schema text in the registry"):
            deserializer.deserialize(struct.pack(">bI", 0, 5) + b"\x02x")
    assert registry.asked == 3


def test_uuids_as_text_hold_in_a_named_type_used_twice() -> None:
    """fastavro's parsed schema keeps its own copy of each named type, which a reference by name reads with: the uuid
    type must be gone from that copy too."""
    uuid_field = {"name": "id", "type": {"type": "string", "logicalType": "uuid"}}
    party = {"type": "record", "name": "Party", "fields": [uuid_field]}
    schema = {"type": "record", "name": "Transfer", "namespace": "test",
              "fields": [{"name": "payer", "type": party}, {"name": "payee", "type": "Party"},
                         {"name": "others", "type": {"type": "array", "items": "Party"}}]}  # fmt: skip
    value = {"payer": {"id": "URN:UUID:0B7D6F2E-9C1A-4C1E-8A57-3F4D2E1B0A99"}, "payee": {"id": "not-a-uuid"},
             "others": [{"id": "{0b7d6f2e-9c1a-4c1e-8a57-3f4d2e1b0a99}"}]}  # fmt: skip
    body = io.BytesIO()
    fastavro.schemaless_writer(
        body,
        fastavro.parse_schema(
            {
                **schema,
                "fields": [
                    {"name": "payer", "type": {**party, "fields": [{"name": "id", "type": "string"}]}},
                    {"name": "payee", "type": "Party"},
                    {"name": "others", "type": {"type": "array", "items": "Party"}},
                ],
            }
        ),
        value,
    )
    data = struct.pack(">bI", 0, 1) + body.getvalue()

    read = AvroDeserializer(_RegistryWith(schema), uuids_as_text=True).deserialize(data)  # type: ignore[arg-type]
    assert read.value == value
    with pytest.raises(MalformedRecordError, match="badly formed hexadecimal UUID"):
        AvroDeserializer(_RegistryWith(schema)).deserialize(data)  # type: ignore[arg-type]
