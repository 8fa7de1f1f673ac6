"""Domain events from Kafka as one SQL view, decoded and sequenced in the JVM (connectors/jvm, `SequencedEvents`).

Each record is decoded once, in the task that read it, into a binary row: Confluent-framed Avro by its writer's
schema, the asked-for top-level fields by name, the rest of the payload as JSON (UUIDs in lowercase in both); and the
late rule marks an event more than `late_bound_ms` older than the newest event already seen in its Kafka partition
(checkpointed state, fed in offset order). Every branch of a job reads that view, so nothing is decoded twice and no
row is converted to Java or Python objects on the way.

Columns: `record_key`, `payload` (the bytes, only where `ok` is false), `kafka_topic`, `kafka_partition`,
`kafka_offset`, `ok`, `error`, `error_code`, `payload_json` (NULL unless asked for), the decoded fields, `high_ms`
(the newest event time of the partition so far, this event included; NULL without a late rule), `is_late` and,
with `watermark`, `watermark_ms` (for an event late only because the watermark had passed it when it arrived, that
watermark; NULL otherwise) and `rowtime` (the event time as a time attribute, with the late rule's watermark; a
column of the row, not metadata; the Kafka timestamp for a record that cannot be read). A record that cannot be
read, or cannot be a true event of its topic, has `ok` false and the reason code: `malformed_record`,
`unknown_schema`, `incompatible_schema` (unreadable); `invalid_event_time` (outside `event_time_range_ms`);
`unknown_event_type` (a type not in `event_types`, or not of this topic); `schema_mismatch` (written with another
type's schema, or an `event_type` header naming another type); `invalid_value` (a negative count, amount or duration,
an id that is empty, null-ish or not a UUID where the schema says uuid or it is one of the envelope's ids, a string
over `max_string_bytes`). `dead_letter_insert` sends such records, byte for byte, to the dead-letter topic with the
`dlq.*` headers of connectors/kafka/dead_letter.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.table import StreamTableEnvironment

from connectors.flink.tables import DecodedField, kafka_raw_options, sql_string, with_clause
from connectors.kafka.config import ConfigValue

EVENTS_CLASS = "com.suuupra.flink.events.SequencedEvents"


@dataclass(frozen=True)
class EventsView:
    """What the view reads (topics, from the group's committed offsets) and decodes."""

    name: str
    kafka: Mapping[str, ConfigValue]
    topics: Sequence[str]
    group_id: str | None
    bounded: bool
    registry_url: str
    fields: Sequence[DecodedField]
    event_time_field: str
    event_time_range_ms: tuple[int, int]
    late_bound_ms: int | None = None  # None: no late rule (every readable event is on time)
    payload_json: bool = False  # the payload's other fields as JSON text (one encoding per record)
    # The event types the topics carry: type -> (writer schema's full name, Kafka topic). Empty: no check.
    event_types: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    max_string_bytes: int | None = None  # None: no limit on a string field's length
    # The view's readers (the SQL operators) in a task of their own, fed by the reading and decoding task: two
    # threads per subtask; each row is serialized and copied once between them.
    decode_in_own_task: bool = False
    # A `rowtime` column (the event time) with a watermark that follows the late rule: each partition's newest event
    # minus the bound, the minimum over the partitions that are not idle. Needs `late_bound_ms`.
    watermark: bool = False
    # A partition the source read nothing of while it read this many records of its other partitions is idle until
    # its next record. None: a partition never counts as idle.
    partition_idle_after_records: int | None = None
    # The source's `max.partition.fetch.bytes` unless `kafka` sets it: how much of one partition a fetch hands over,
    # so how many records of the others can come between two of a partition's (what the idleness counts).
    partition_fetch_bytes: int | None = None

    def config_json(self) -> str:
        kafka = {key: str(value) for key, value in self.kafka.items()}
        if self.partition_fetch_bytes is not None:
            kafka.setdefault("max.partition.fetch.bytes", str(self.partition_fetch_bytes))
        return json.dumps({
            "name": self.name,
            "bootstrap_servers": kafka.get("bootstrap.servers"),
            "kafka_properties": kafka,
            "topics": list(self.topics),
            "group_id": self.group_id,
            "bounded": self.bounded,
            "registry_url": self.registry_url,
            "fields": [[field.name, field.sql_type] for field in self.fields],
            "event_time_field": self.event_time_field,
            "late_bound_ms": self.late_bound_ms,
            "payload_json": self.payload_json,
            "event_time_min_ms": self.event_time_range_ms[0],
            "event_time_max_ms": self.event_time_range_ms[1],
            "event_types": {name: {"schema": schema, "topic": topic}
                            for name, (schema, topic) in self.event_types.items()},
            "max_string_bytes": self.max_string_bytes,
            "decode_in_own_task": self.decode_in_own_task,
            "watermark": self.watermark,
            "partition_idle_after_records": self.partition_idle_after_records,
        })  # fmt: skip


def register_events_view(env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, view: EventsView) -> None:
    """Declares the view in `t_env`; its source and decoding operator join the job `env` runs."""
    events = get_gateway().jvm
    for part in EVENTS_CLASS.split("."):
        events = getattr(events, part)
    events.register(t_env._j_tenv, env._j_stream_execution_environment, view.config_json())


def declare_dead_letter_sink(
    t_env: StreamTableEnvironment, client_config: Mapping[str, ConfigValue], topic: str, table: str = "dead_letter_sink"
) -> None:
    """A Kafka table writing raw key and value bytes with headers, at least once: where unreadable records go."""
    options = kafka_raw_options(client_config, [topic], None, bounded=False)
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE {table} (
            record_key BYTES,
            payload BYTES,
            headers MAP<STRING, BYTES> METADATA
        ) WITH ({with_clause(options)}, 'sink.delivery-guarantee' = 'at-least-once')""")


def dead_letter_select(view: str, failed_by: str) -> str:
    """The query of every record of an events view that could not be read, as the dead-letter sink's rows."""
    return f"""
        SELECT record_key, payload, MAP[
            'dlq.original.topic', ENCODE(kafka_topic, 'UTF-8'),
            'dlq.original.partition', ENCODE(CAST(kafka_partition AS STRING), 'UTF-8'),
            'dlq.original.offset', ENCODE(CAST(kafka_offset AS STRING), 'UTF-8'),
            'dlq.reason', ENCODE(error, 'UTF-8'),
            'dlq.reason.code', ENCODE(error_code, 'UTF-8'),
            'dlq.failed.by', ENCODE({sql_string(failed_by)}, 'UTF-8')]
        FROM {view} WHERE NOT ok"""
