"""Domain events in and out of Kafka: the catalogue's schemas, the settings' topics, keyed by `user_id`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.avro.schema import AvroSchema
from connectors.avro.serde import AvroDeserializer, AvroSerializer
from connectors.avro.subject import topic_record_name
from connectors.kafka.config import ClientConfig
from connectors.kafka.consumer import AvroConsumer
from connectors.kafka.dead_letter import DeadLetterWriter
from connectors.kafka.producer import AvroProducer
from connectors.registry import registry_client
from schemas import Catalog, EventSchema, default_catalog
from suuupra.settings import Settings

EVENT_TYPE_HEADER = "event_type"


def event_time_ms(value: Mapping[str, Any]) -> int:
    moment = value["event_time"]
    return int(moment.timestamp() * 1000) if isinstance(moment, datetime) else int(moment)


def make_registry(settings: Settings) -> SchemaRegistryClient:
    auth = settings.registry.basic_auth_user_info
    return registry_client(settings.registry.ccompat_url, auth.get_secret_value() if auth else None)


def subject_for(settings: Settings, event: EventSchema) -> str:
    """Several event types share a domain topic, so each (topic, record) pair is its own subject."""
    return topic_record_name(settings.topics.resolve(event.topic), event.record_name)


class EventPublisher:
    """Publishes catalogue events: picks the schema and topic from the event type, keys by `user_id`."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog | None = None,
        registry: SchemaRegistryClient | None = None,
        producer_overrides: ClientConfig | None = None,
    ) -> None:
        self.settings = settings
        self.catalog = catalog or default_catalog()
        serializer = AvroSerializer(registry or make_registry(settings), topic_record_name)
        self.producer = AvroProducer(settings.kafka.client_config(), serializer, producer_overrides)

    def topic_of(self, event_type: str) -> str:
        return self.settings.topics.resolve(self.catalog.schema_for(event_type).topic)

    def publish(self, value: Mapping[str, Any]) -> str:
        """Sends one event; returns its topic. Delivery is confirmed by `flush`.

        The record's Kafka timestamp is the event's `event_time`: stream processors take event time and
        watermarks from it without decoding the record first (part of the envelope contract).
        """
        event = self.catalog.schema_for(str(value["event_type"]))
        topic = self.settings.topics.resolve(event.topic)
        headers = [(EVENT_TYPE_HEADER, event.event_type.encode())]
        self.producer.produce(
            topic, str(value["user_id"]), event.schema, value, headers, timestamp_ms=event_time_ms(value)
        )
        return topic

    def flush(self, timeout: float = 30.0) -> None:
        self.producer.flush(timeout)


def reader_schemas(catalog: Catalog) -> dict[str, AvroSchema]:
    return {event.record_name: event.schema for event in catalog.events.values()}


def event_consumer(
    settings: Settings,
    topics: Sequence[str],
    group_id: str | None = None,
    catalog: Catalog | None = None,
    registry: SchemaRegistryClient | None = None,
    *,
    read_only: bool = False,
    overrides: ClientConfig | None = None,
    as_written: bool = False,
    uuids_as_text: bool = False,
) -> AvroConsumer:
    """A consumer of domain events (a fresh group unless one is given) that dead-letters what it cannot read; a
    `read_only` one (inspection tools) counts such records in `skipped` and writes nothing anywhere. Each event is read
    onto the catalogue's schema of its type (an older or newer writer's fields resolved to it), or `as_written`: with
    its writer's own fields, as the JVM jobs read it. A uuid field is a `uuid.UUID`, or `uuids_as_text` the text that
    was written (connectors/avro/serde.py AvroDeserializer)."""
    registry = registry or make_registry(settings)
    dead_letter = None
    if not read_only:
        dead_letter_producer = AvroProducer(settings.kafka.client_config(), AvroSerializer(registry))
        dead_letter = DeadLetterWriter(dead_letter_producer, settings.topics.dead_letter)
    return AvroConsumer(
        settings.kafka.client_config(),
        group_id or f"suuupra-reader-{uuid.uuid4()}",
        topics,
        AvroDeserializer(
            registry, None if as_written else reader_schemas(catalog or default_catalog()), uuids_as_text=uuids_as_text
        ),
        dead_letter,
        skip_unreadable=read_only,
        overrides=overrides,
    )
