"""Avro producer and consumer throughput through the local broker, with the simulator's event mix.

    .venv/bin/python bench/avro_throughput.py [--events 200000]

Needs the platform (`suuupra platform up`). Uses its own topics (bench-<id>.*), deleted at the end.
Prints events/s and MB/s for: serialization alone, produce (acks=all, idempotent) until acknowledged,
consume + deserialize to the end.
"""

from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka.admin import AdminClient

from connectors.avro.serde import AvroDeserializer, AvroSerializer
from schemas import default_catalog
from suuupra.events import EventPublisher, event_consumer, make_registry, reader_schemas
from suuupra.schema_tools.registry_sync import register_all
from suuupra.settings import TopicNames, load_settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.topics.apply import apply_topics
from suuupra.topics.spec import load_topic_specs


def line(label: str, events: int, size: int, seconds: float) -> None:
    print(f"{label:<34} {events / seconds:>12,.0f} events/s {size / seconds / 1e6:>9.1f} MB/s  ({seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()

    base = load_settings()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(
        update={"topics": TopicNames(**{k: f"{prefix}.{v}" for k, v in TopicNames().model_dump().items()})}
    )
    admin = AdminClient(settings.kafka.client_config())
    apply_topics(admin, load_topic_specs(settings))
    catalog = default_catalog()
    registry = make_registry(settings)
    register_all(settings, catalog, registry)

    began = time.perf_counter()
    events = [event.value for event in generate(SimulationProfile(seed=1, users=5000), args.events)]
    print(f"{args.events:,} simulated events generated in {time.perf_counter() - began:.2f} s (not counted below)")

    publisher = EventPublisher(settings, catalog, registry)
    serializer = AvroSerializer(registry)
    began = time.perf_counter()
    encoded = 0
    for value in events:
        event = catalog.schema_for(value["event_type"])
        encoded += len(serializer.serialize(publisher.topic_of(event.event_type), event.schema, value))
    line("serialize only (fastavro)", len(events), encoded, time.perf_counter() - began)

    began = time.perf_counter()
    for value in events:
        publisher.publish(value)
    publisher.flush(timeout=300)
    line("produce, acks=all, to acknowledged", len(events), publisher.producer.bytes_sent, time.perf_counter() - began)

    topics = list(settings.topics.domain().values())
    began = time.perf_counter()
    received = 0
    size = 0
    with event_consumer(settings, topics) as consumer:
        for record in consumer.read_to_end():
            received += 1
            size += record.size_bytes
    line("consume + deserialize to the end", received, size, time.perf_counter() - began)
    assert received == len(events), f"read {received} of {len(events)}"

    deserializer = AvroDeserializer(registry, reader_schemas(catalog))
    sample = [serializer.serialize(publisher.topic_of(v["event_type"]), catalog.schema_for(v["event_type"]).schema, v)
              for v in events[:50_000]]  # fmt: skip
    began = time.perf_counter()
    for data in sample:
        deserializer.deserialize(data)
    line("deserialize only (fastavro)", len(sample), sum(map(len, sample)), time.perf_counter() - began)
    print(f"mean record {encoded / len(events):.0f} bytes; event mix: {len(catalog.events)} event types")

    for future in admin.delete_topics([*settings.topics.model_dump().values()]).values():
        future.result(timeout=60)


if __name__ == "__main__":
    main()
