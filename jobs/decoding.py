"""The front half the features and fraud jobs share: their topics as the `decoded` view (each record decoded once, in
the JVM: connectors/flink/events.py), `events` (the readable ones), and the dead-letter sink for the others."""

from __future__ import annotations

from collections.abc import Sequence

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink.events import EventsView, dead_letter_select, declare_dead_letter_sink, register_events_view
from connectors.flink.tables import DecodedField
from schemas import default_catalog
from suuupra.settings import Settings


def topic_event_types(settings: Settings, topics: Sequence[str]) -> dict[str, tuple[str, str]]:
    """The catalogue's event types published to these Kafka topics: type -> (schema full name, topic). A job's
    decoder dead-letters any other type it meets there, and a type written with another type's schema."""
    catalog = default_catalog()
    resolved = {name: settings.topics.resolve(event.topic) for name, event in catalog.events.items()}
    return {name: (catalog.events[name].record_name, topic) for name, topic in resolved.items() if topic in topics}


def declare_decoded(
    env: StreamExecutionEnvironment,
    t_env: StreamTableEnvironment,
    settings: Settings,
    job_name: str,
    topics: Sequence[str],
    fields: Sequence[DecodedField],
    bounded: bool,
) -> None:
    """Declares `decoded` (every record: ok, error, error_code, the fields, the Kafka coordinates) and `events`
    (the readable ones). The consumer group is `<prefix>-<job_name>`; a new group starts from the earliest offsets.
    These jobs fold every event in whenever it comes, so they need no late rule."""
    register_events_view(env, t_env, EventsView(
        name="decoded", kafka=settings.kafka.client_config(), topics=sorted(set(topics)),
        group_id=f"{settings.flink.consumer_group_prefix}-{job_name}", bounded=bounded,
        registry_url=settings.registry.ccompat_url, fields=fields, event_time_field="event_time",
        event_time_range_ms=settings.flink.event_time_range_ms, event_types=topic_event_types(settings, topics),
        max_string_bytes=settings.flink.max_string_bytes,
    ))  # fmt: skip
    t_env.execute_sql("CREATE TEMPORARY VIEW events AS SELECT * FROM decoded WHERE ok")
    declare_dead_letter_sink(t_env, settings.kafka.client_config(), settings.topics.dead_letter)


def dead_letter_insert(job_name: str) -> str:
    """The INSERT sending every record `decoded` could not read to the dead-letter topic."""
    return f"INSERT INTO dead_letter_sink {dead_letter_select('decoded', job_name)}"
