"""The front half every event job shares: Kafka raw bytes -> `decode_avro` (JVM) once per record -> a `decoded`
view, and the dead-letter sink for the records that cannot be decoded (bytes kept, reason in `dlq.*` headers)."""

from __future__ import annotations

from collections.abc import Sequence

from pyflink.table import Schema, StreamTableEnvironment

from connectors.flink.tables import DecodedField, decode_call, kafka_raw_options, sql_string, with_clause
from suuupra.settings import Settings


def declare_decoded(
    t_env: StreamTableEnvironment,
    settings: Settings,
    job_name: str,
    topics: Sequence[str],
    fields: Sequence[DecodedField],
    bounded: bool,
) -> None:
    """Declares `decoded` (every record: ok, error, error_code, the fields, the Kafka coordinates) and `events`
    (the decoded ones). The consumer group is `<prefix>-<job_name>`; a new group starts from the earliest offsets."""
    group = f"{settings.flink.consumer_group_prefix}-{job_name}"
    options = kafka_raw_options(settings.kafka.client_config(), sorted(set(topics)), group, bounded)
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE {job_name}_source (
            record_key BYTES,
            payload BYTES,
            kafka_topic STRING METADATA FROM 'topic' VIRTUAL,
            kafka_partition INT METADATA FROM 'partition' VIRTUAL,
            kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL
        ) WITH ({with_clause(options)})""")
    decode = decode_call("payload", settings.registry.ccompat_url, fields)
    with_row = t_env.sql_query(
        f"SELECT record_key, payload, kafka_topic, kafka_partition, kafka_offset, {decode} AS d FROM {job_name}_source"
    )
    # Through a (JVM) DataStream and back, so the planner decodes each record once instead of once per branch.
    once = t_env.from_data_stream(t_env.to_data_stream(with_row), Schema.new_builder().build())
    t_env.create_temporary_view(f"{job_name}_decoded_once", once)
    names = ["ok", "error", "error_code", *(field.name for field in fields)]
    columns = ", ".join(f"d.`{name}` AS `{name}`" for name in names)
    t_env.execute_sql(f"""
        CREATE TEMPORARY VIEW decoded AS
        SELECT record_key, payload, kafka_topic, kafka_partition, kafka_offset, {columns}
        FROM {job_name}_decoded_once""")
    t_env.execute_sql("CREATE TEMPORARY VIEW events AS SELECT * FROM decoded WHERE ok")
    dead_letters = kafka_raw_options(settings.kafka.client_config(), [settings.topics.dead_letter], None, False)
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE dead_letter_sink (
            record_key BYTES,
            payload BYTES,
            headers MAP<STRING, BYTES> METADATA
        ) WITH ({with_clause(dead_letters)}, 'sink.delivery-guarantee' = 'at-least-once')""")


def dead_letter_insert(job_name: str) -> str:
    """The INSERT sending every record `decoded` could not read to the dead-letter topic."""
    return f"""
        INSERT INTO dead_letter_sink
        SELECT record_key, payload, MAP[
            'dlq.original.topic', ENCODE(kafka_topic, 'UTF-8'),
            'dlq.original.partition', ENCODE(CAST(kafka_partition AS STRING), 'UTF-8'),
            'dlq.original.offset', ENCODE(CAST(kafka_offset AS STRING), 'UTF-8'),
            'dlq.reason', ENCODE(error, 'UTF-8'),
            'dlq.reason.code', ENCODE(error_code, 'UTF-8'),
            'dlq.failed.by', ENCODE({sql_string(job_name)}, 'UTF-8')]
        FROM decoded WHERE NOT ok"""
