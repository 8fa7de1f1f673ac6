"""Real-time analytics: domain events from Kafka, in event time, aggregated into ClickHouse dashboard tables.

    suuupra jobs run analytics                         # local mini-cluster
    suuupra jobs submit analytics --jobmanager H:P     # a Flink session cluster
    flink run -py jobs/analytics.py                    # plain Flink CLI (settings from SUUUPRA_* / --config)

Event time is the Kafka record timestamp, which every producer sets to the event's `event_time` (envelope
contract), so the watermark is declared on the source itself (bounded out-of-orderness, idle partitions
excluded after a timeout).

Late events: an event more than the allowed out-of-orderness older than the newest event already seen in its
Kafka partition is late. It goes to `late_events` instead of the windows, so every event is counted exactly
once. The rule is kept in checkpointed state (an OVER aggregate per partition), so it classifies every event
the same way whatever the interleaving of partitions and across a restore, where Flink's watermark restarts
from nothing; and the watermark never passes it, so the windows never drop an event the rule calls on time.

A record that cannot be decoded goes to the dead-letter topic with the reason; the job does not fail on it.
"""

from __future__ import annotations

import sys

from pyflink.common import Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import DataTypes, StreamTableEnvironment

from connectors.flink.avro_decode import DecodedField, avro_decode_udf
from connectors.flink.clickhouse_sink import SINK_KEY, ClickHouseSink, ClickHouseTarget, SinkTable
from schemas import default_catalog
from suuupra.settings import Settings, load_settings

JOB_NAME = "analytics"

DECODED_FIELDS = [
    DecodedField("event_id", DataTypes.STRING()),
    DecodedField("event_type", DataTypes.STRING()),
    DecodedField("event_time", DataTypes.BIGINT()),
    DecodedField("user_id", DataTypes.STRING()),
    DecodedField("correlation_id", DataTypes.STRING()),
    DecodedField("producer", DataTypes.STRING()),
    DecodedField("session_id", DataTypes.STRING()),
    DecodedField("content_id", DataTypes.STRING()),
    DecodedField("course_id", DataTypes.STRING()),
    DecodedField("watch_seconds", DataTypes.INT()),
    DecodedField("completed", DataTypes.BOOLEAN()),
    DecodedField("order_id", DataTypes.STRING()),
    DecodedField("payment_id", DataTypes.STRING()),
    DecodedField("method", DataTypes.STRING()),
    DecodedField("total_minor", DataTypes.BIGINT()),
    DecodedField("currency", DataTypes.STRING()),
]

# ClickHouse tables written by this job (infra/clickhouse/migrations), their columns in insert order.
SINK_TABLES = {
    "raw_events": SinkTable(
        ("event_id", "event_type", "event_time", "event_time_ms", "user_id", "correlation_id", "producer", "topic",
         "partition", "kafka_offset", "payload"), datetime_columns=("event_time",)),
    "late_events": SinkTable(
        ("event_id", "event_type", "user_id", "event_time", "watermark", "lateness_ms", "topic", "partition",
         "kafka_offset"), datetime_columns=("event_time", "watermark")),
    "content_minute": SinkTable(
        ("window_start", "content_id", "course_id", "views", "unique_viewers", "watch_seconds", "completed_views"),
        datetime_columns=("window_start",)),
    "user_sessions": SinkTable(
        ("user_id", "session_start", "session_end", "duration_seconds", "events", "contents_watched"),
        datetime_columns=("session_start", "session_end")),
    "revenue_minute": SinkTable(
        ("window_start", "course_id", "payment_method", "currency", "revenue_minor", "payments"),
        datetime_columns=("window_start",)),
    "funnel_hour": SinkTable(
        ("window_start", "viewed", "ordered", "paid", "enrolled"), datetime_columns=("window_start",)),
    "registrations_minute": SinkTable(("window_start", "registrations"), datetime_columns=("window_start",)),
}  # fmt: skip

# Each query selects exactly the columns of its table, in order; times as epoch milliseconds (BIGINT).
QUERIES = {
    "raw_events": """
        SELECT event_id, event_type, event_time, event_time, user_id, correlation_id, producer, kafka_topic,
               kafka_partition, kafka_offset, payload_json
        FROM events""",
    "late_events": """
        SELECT event_id, event_type, user_id, event_time, watermark_ms, watermark_ms - event_time, kafka_topic,
               kafka_partition, kafka_offset
        FROM late""",
    "content_minute": """
        SELECT {ms(window_start)}, content_id, course_id, COUNT(*), COUNT(DISTINCT user_id),
               SUM(CAST(watch_seconds AS BIGINT)), SUM(CASE WHEN completed THEN 1 ELSE 0 END)
        FROM TABLE(TUMBLE(TABLE content_views, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
        GROUP BY window_start, window_end, content_id, course_id""",
    "user_sessions": """
        SELECT user_id, MIN(event_time), MAX(event_time), CAST((MAX(event_time) - MIN(event_time)) / 1000 AS INT),
               CAST(COUNT(*) AS INT),
               CAST(COUNT(DISTINCT CASE WHEN event_type = 'clickstream.content_viewed' THEN content_id END) AS INT)
        FROM TABLE(SESSION(TABLE clicks PARTITION BY user_id, DESCRIPTOR(event_ts), INTERVAL '30' MINUTES))
        GROUP BY user_id, window_start, window_end""",
    "revenue_minute": """
        SELECT {ms(window_start)}, course_id, `method`, currency, SUM(total_minor), COUNT(*)
        FROM TABLE(TUMBLE(TABLE paid_with_method, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
        GROUP BY window_start, window_end, course_id, `method`, currency""",
    "funnel_hour": """
        SELECT {ms(window_start)},
               COUNT(DISTINCT CASE WHEN event_type = 'clickstream.content_viewed' THEN user_id END),
               COUNT(DISTINCT CASE WHEN event_type = 'order.created' THEN user_id END),
               COUNT(DISTINCT CASE WHEN event_type = 'order.paid' THEN user_id END),
               COUNT(DISTINCT CASE WHEN event_type = 'user.enrolled' THEN user_id END)
        FROM TABLE(TUMBLE(TABLE on_time, DESCRIPTOR(event_ts), INTERVAL '1' HOUR))
        GROUP BY window_start, window_end""",
    "registrations_minute": """
        SELECT {ms(window_start)}, COUNT(*)
        FROM TABLE(TUMBLE(TABLE registrations, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
        GROUP BY window_start, window_end""",
}


def _ms(column: str) -> str:
    # Window bounds are TIMESTAMP(3) in the session time zone (UTC).
    return f"UNIX_TIMESTAMP(CAST({column} AS STRING)) * 1000"


def _kafka_options(settings: Settings, topics: list[str], group_id: str, bounded: bool) -> str:
    options = {
        "connector": "kafka",
        "topic": ";".join(topics),
        "properties.group.id": group_id,
        "scan.startup.mode": "group-offsets",
        "properties.auto.offset.reset": "earliest",
        "key.format": "raw",
        "key.fields": "record_key",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        **{f"properties.{key}": str(value) for key, value in settings.kafka.client_config().items()},
    }
    if bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return ",\n".join(f"'{key}' = '{value}'" for key, value in options.items())


def _declare_sources(t_env: StreamTableEnvironment, settings: Settings, bounded: bool) -> None:
    catalog = default_catalog()
    decode = avro_decode_udf(
        settings.registry.ccompat_url,
        DECODED_FIELDS,
        {event.record_name: event.schema.text for event in catalog.events.values()},
        catalog.envelope_fields,
    )
    t_env.create_temporary_system_function("decode_event", decode)
    topics = settings.topics
    # A test may point several logical topics at one Kafka topic.
    source_topics = sorted({topics.clickstream, topics.commerce, topics.payment, topics.user})
    bound = settings.flink.max_out_of_orderness_s
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE domain_events (
            record_key BYTES,
            payload BYTES,
            kafka_topic STRING METADATA FROM 'topic' VIRTUAL,
            kafka_partition INT METADATA FROM 'partition' VIRTUAL,
            kafka_offset BIGINT METADATA FROM 'offset' VIRTUAL,
            event_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
            arrival AS PROCTIME(),
            WATERMARK FOR event_ts AS event_ts - INTERVAL '{bound}' SECOND
        ) WITH ({_kafka_options(settings, source_topics,
                                f"{settings.flink.consumer_group_prefix}-{JOB_NAME}", bounded)})""")  # fmt: skip
    # Quoted: some field names (`method`) are reserved words in Flink SQL.
    names = ["ok", "error", "error_code", "payload_json", *(field.name for field in DECODED_FIELDS)]
    fields = ", ".join(f"d.`{name}` AS `{name}`" for name in names)
    t_env.execute_sql(f"""
        CREATE TEMPORARY VIEW decoded AS
        SELECT record_key, payload, kafka_topic, kafka_partition, kafka_offset, event_ts, arrival, {fields}
        FROM (SELECT *, decode_event(payload) AS d FROM domain_events)""")
    t_env.execute_sql("CREATE TEMPORARY VIEW events AS SELECT * FROM decoded WHERE ok")
    t_env.execute_sql(f"""
        CREATE TEMPORARY VIEW sequenced AS
        SELECT *, event_time < partition_high_ms - {bound * 1000} AS is_late FROM (
            SELECT *, MAX(event_time) OVER (
                PARTITION BY kafka_topic, kafka_partition ORDER BY arrival
                ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS partition_high_ms
            FROM events)""")
    t_env.execute_sql("CREATE TEMPORARY VIEW on_time AS SELECT * FROM sequenced WHERE NOT is_late")
    t_env.execute_sql(f"""
        CREATE TEMPORARY VIEW late AS
        SELECT *, partition_high_ms - {bound * 1000} AS watermark_ms FROM sequenced WHERE is_late""")
    views = {
        "content_views": "SELECT * FROM on_time WHERE event_type = 'clickstream.content_viewed'",
        "clicks": "SELECT * FROM on_time WHERE event_type LIKE 'clickstream.%'",
        "registrations": "SELECT * FROM on_time WHERE event_type = 'user.registered'",
        "paid": "SELECT * FROM on_time WHERE event_type = 'order.paid'",
        "approved": "SELECT * FROM on_time WHERE event_type = 'payment.approved'",
        # order.paid carries course and amount, payment.approved the method: joined within the hour after approval.
        "paid_with_method": """
            SELECT p.course_id, a.`method`, p.total_minor, p.currency, p.event_ts
            FROM paid p JOIN approved a ON p.payment_id = a.payment_id
             AND p.event_ts BETWEEN a.event_ts AND a.event_ts + INTERVAL '1' HOUR""",
    }
    for name, query in views.items():
        t_env.execute_sql(f"CREATE TEMPORARY VIEW {name} AS {query}")


def _declare_dead_letters(t_env: StreamTableEnvironment, settings: Settings) -> None:
    options = _kafka_options(settings, [settings.topics.dead_letter], "unused", bounded=False)
    options = options.replace("'scan.startup.mode' = 'group-offsets',\n", "")
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE dead_letter_sink (
            record_key BYTES,
            payload BYTES,
            headers MAP<STRING, BYTES> METADATA
        ) WITH ({options}, 'sink.delivery-guarantee' = 'at-least-once')""")


def _to_sink_rows(t_env: StreamTableEnvironment, table: str) -> DataStream:
    query = QUERIES[table].replace("{ms(window_start)}", _ms("window_start"))
    stream = t_env.to_data_stream(t_env.sql_query(query))
    return stream.map(
        lambda row, name=table: (name, list(row)), output_type=Types.TUPLE([Types.STRING(), Types.PICKLED_BYTE_ARRAY()])
    )


def build(env: StreamExecutionEnvironment, settings: Settings, bounded: bool = False) -> None:
    """Wires sources, transformations and sinks; `env.execute()` runs them as one job."""
    t_env = StreamTableEnvironment.create(env)
    _declare_sources(t_env, settings, bounded)
    _declare_dead_letters(t_env, settings)

    statements = t_env.create_statement_set()
    statements.add_insert_sql("""
        INSERT INTO dead_letter_sink
        SELECT record_key, payload, MAP[
            'dlq.original.topic', ENCODE(kafka_topic, 'UTF-8'),
            'dlq.original.partition', ENCODE(CAST(kafka_partition AS STRING), 'UTF-8'),
            'dlq.original.offset', ENCODE(CAST(kafka_offset AS STRING), 'UTF-8'),
            'dlq.reason', ENCODE(error, 'UTF-8'),
            'dlq.reason.code', ENCODE(error_code, 'UTF-8'),
            'dlq.failed.by', ENCODE('analytics', 'UTF-8')]
        FROM decoded WHERE NOT ok""")
    statements.attach_as_datastream()

    streams = [_to_sink_rows(t_env, table) for table in SINK_TABLES]
    merged = streams[0].union(*streams[1:])
    clickhouse = settings.clickhouse
    target = ClickHouseTarget(
        clickhouse.host, clickhouse.port, clickhouse.database, clickhouse.user,
        clickhouse.password.get_secret_value(), clickhouse.secure,
    )  # fmt: skip
    sink = ClickHouseSink(target, SINK_TABLES, settings.flink.sink_batch_rows, settings.flink.sink_batch_delay_s)
    merged.key_by(lambda _element: SINK_KEY, key_type=Types.STRING()).process(sink).name("clickhouse")


def main(argv: list[str] | None = None) -> None:
    from jobs.runtime import execution_environment

    args = argv if argv is not None else sys.argv[1:]
    settings = load_settings()
    env = execution_environment(settings, JOB_NAME)
    build(env, settings, bounded="--bounded" in args)
    env.execute(JOB_NAME)


if __name__ == "__main__":
    main()
