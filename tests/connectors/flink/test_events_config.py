"""What the events view hands the JVM source: its Kafka properties, with the fetch size the idleness relies on."""

from __future__ import annotations

import json

from connectors.flink.events import EventsView


def _view(kafka: dict[str, str], fetch_bytes: int | None) -> EventsView:
    return EventsView(
        name="sequenced", kafka=kafka, topics=["t"], group_id="g", bounded=False, registry_url="http://127.0.0.1:1",
        fields=[], event_time_field="event_time", event_time_range_ms=(0, 1), late_bound_ms=30_000, watermark=True,
        partition_idle_after_records=200_000, partition_fetch_bytes=fetch_bytes,
    )  # fmt: skip


def test_the_source_fetches_the_configured_bytes_per_partition() -> None:
    config = json.loads(_view({"bootstrap.servers": "127.0.0.1:9092"}, 131_072).config_json())
    assert config["kafka_properties"]["max.partition.fetch.bytes"] == "131072"
    assert config["partition_idle_after_records"] == 200_000


def test_a_client_override_of_the_fetch_size_wins() -> None:
    kafka = {"bootstrap.servers": "127.0.0.1:9092", "max.partition.fetch.bytes": "2048"}
    config = json.loads(_view(kafka, 131_072).config_json())
    assert config["kafka_properties"]["max.partition.fetch.bytes"] == "2048"


def test_without_a_fetch_size_kafka_keeps_its_default() -> None:
    config = json.loads(_view({"bootstrap.servers": "127.0.0.1:9092"}, None).config_json())
    assert "max.partition.fetch.bytes" not in config["kafka_properties"]
