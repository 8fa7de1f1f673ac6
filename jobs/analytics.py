"""Real-time analytics: domain events from Kafka into the ClickHouse tables behind the dashboards.

    suuupra jobs run analytics                         # local mini-cluster
    suuupra jobs submit analytics --jobmanager H:P     # a Flink session cluster
    flink run -py jobs/analytics.py                    # plain Flink CLI (settings from SUUUPRA_* / --config)

Python only declares the job; every record is handled by Flink's own operators and the project's JVM functions
(connectors/jvm): each Kafka record is decoded once in the task that read it (SequencedEvents), SQL aggregates,
`UserSessions` sessionizes, and the project's ClickHouse sink writes in batches.

Counting every event exactly once, whatever the interleaving, idleness, back-pressure, parallelism or restore:
- The late rule: an event older than the newest event already seen in its Kafka partition by more than the
  allowed out-of-orderness goes to `late_events` with that reason. The newest-seen time is checkpointed state (an
  OVER aggregate per partition, in offset order), so the rule decides identically on every run.
- Everything else is counted. There is no watermark: aggregates are updated as events come (folded per
  mini-batch, upserted by key into ReplacingMergeTrees), so no window closes before a straggler can reach it, an
  idle partition stalls nothing, and the current minute shows on the dashboards within seconds.
- A record that cannot be decoded, or cannot be a true event (an unknown type, another type's schema, an impossible
  value: connectors/flink/events.py), goes to the dead-letter topic with its bytes and the reason.
"""

from __future__ import annotations

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink.events import EventsView, dead_letter_select, declare_dead_letter_sink, register_events_view
from connectors.flink.tables import (
    ClickHouseSinkOptions,
    DecodedField,
    UserSessionsView,
    register_jvm_functions,
    register_user_sessions,
    sql_string,
    with_clause,
)
from jobs.decoding import topic_event_types
from suuupra.settings import Settings

JOB_NAME = "analytics"
SESSION_GAP_MS = 30 * 60_000

DECODED_FIELDS = [
    DecodedField("event_id", "STRING"),
    DecodedField("event_type", "STRING"),
    DecodedField("event_time", "BIGINT"),
    DecodedField("user_id", "STRING"),
    DecodedField("correlation_id", "STRING"),
    DecodedField("producer", "STRING"),
    DecodedField("content_id", "STRING"),
    DecodedField("course_id", "STRING"),
    DecodedField("watch_seconds", "INT"),
    DecodedField("completed", "BOOLEAN"),
    DecodedField("payment_id", "STRING"),
    DecodedField("method", "STRING"),
    DecodedField("total_minor", "BIGINT"),
    DecodedField("currency", "STRING"),
    DecodedField("title", "STRING"),
    DecodedField("course_title", "STRING"),
    DecodedField("revision", "INT"),
]

# ClickHouse tables (infra/clickhouse/migrations): columns with their Flink types, and the upsert key, if any.
# TIMESTAMP_LTZ(3) columns (instants) are DateTime('UTC') (seconds) in ClickHouse; event_time_ms keeps the milliseconds.
SINKS: dict[str, tuple[str, str | None]] = {
    "raw_events": ("event_id STRING, event_type STRING, event_time TIMESTAMP_LTZ(3), event_time_ms BIGINT, "
                   "user_id STRING, correlation_id STRING, producer STRING, topic STRING, partition INT, "
                   "kafka_offset BIGINT, payload STRING", None),
    "late_events": ("event_id STRING, event_type STRING, user_id STRING, event_time TIMESTAMP_LTZ(3), "
                    "watermark TIMESTAMP_LTZ(3), lateness_ms BIGINT, topic STRING, partition INT, kafka_offset BIGINT, "
                    "reason STRING", None),
    "content_minute": ("window_start TIMESTAMP_LTZ(3), content_id STRING, course_id STRING, views BIGINT, "
                       "unique_viewers BIGINT, watch_seconds BIGINT, completed_views BIGINT",
                       "window_start, content_id, course_id"),
    "user_sessions": ("user_id STRING, session_start TIMESTAMP_LTZ(3), session_end TIMESTAMP_LTZ(3), "
                      "duration_seconds INT, events INT, contents_watched INT, version BIGINT, deleted INT",
                      "user_id, session_start"),
    "revenue_minute": ("window_start TIMESTAMP_LTZ(3), course_id STRING, payment_method STRING, currency STRING, "
                       "revenue_minor BIGINT, payments BIGINT", "window_start, course_id, payment_method, currency"),
    "funnel_hour": ("window_start TIMESTAMP_LTZ(3), viewed BIGINT, ordered BIGINT, paid BIGINT, enrolled BIGINT",
                    "window_start"),
    "registrations_minute": ("window_start TIMESTAMP_LTZ(3), registrations BIGINT", "window_start"),
    # Every published revision; ReplacingMergeTree(revision) keeps the newest, whatever order they arrive in.
    "content_dim": ("content_id STRING, course_id STRING, title STRING, course_title STRING, revision INT, "
                    "published_at TIMESTAMP_LTZ(3)", None),
}  # fmt: skip

LATE_REASON = "older than its partition's newest event by more than the allowed out-of-orderness"


def _at(epoch_ms: str) -> str:
    """Epoch milliseconds as an instant (TIMESTAMP_LTZ), which the sink writes as it is: no time-zone arithmetic."""
    return f"TO_TIMESTAMP_LTZ({epoch_ms}, 3)"


# Aggregates group by the epoch millisecond that starts the minute (or hour), a BIGINT, and turn only their result
# rows into timestamps.
MINUTE_MS = "event_time / 60000 * 60000"
HOUR_MS = "event_time / 3600000 * 3600000"
MINUTE = _at(MINUTE_MS)
HOUR = _at(HOUR_MS)

# Each query selects exactly the columns of its sink, in order.
QUERIES = {
    "raw_events": f"""
        SELECT event_id, event_type, {_at("event_time")}, event_time, user_id, correlation_id, producer, kafka_topic,
               kafka_partition, kafka_offset, payload_json
        FROM events""",
    "late_events": f"""
        SELECT event_id, event_type, user_id, {_at("event_time")}, {_at("high_ms - {bound_ms}")},
               high_ms - {{bound_ms}} - event_time, kafka_topic, kafka_partition, kafka_offset,
               {sql_string(LATE_REASON)}
        FROM late""",
    # Distinct viewers in two steps: one row per (minute, content, viewer), then a count of those rows. Flink's
    # COUNT(DISTINCT) keeps a map per key, and the state TTL's cleanup copies whole maps on every access.
    "content_minute": f"""
        SELECT {_at("minute_ms")}, content_id, course_id, SUM(viewer_views), COUNT(user_id), SUM(viewer_watch_seconds),
               SUM(viewer_completed_views)
        FROM (
            SELECT {MINUTE_MS} AS minute_ms, content_id, course_id, user_id, COUNT(*) AS viewer_views,
                   SUM(CAST(watch_seconds AS BIGINT)) AS viewer_watch_seconds,
                   SUM(CASE WHEN completed THEN 1 ELSE 0 END) AS viewer_completed_views
            FROM on_time WHERE event_type = 'clickstream.content_viewed'
            GROUP BY {MINUTE_MS}, content_id, course_id, user_id)
        GROUP BY minute_ms, content_id, course_id""",
    "user_sessions": f"""
        SELECT user_id, {_at("session_start")}, {_at("session_end")}, duration_seconds, events, contents_watched,
               version, deleted
        FROM sessions""",
    "revenue_minute": f"""
        SELECT {MINUTE}, course_id, `method`, currency, SUM(total_minor), COUNT(*) FROM (
            SELECT p.event_time, p.course_id, a.`method`, p.currency, p.total_minor
            FROM paid p JOIN approved a ON p.payment_id = a.payment_id
             AND p.event_time BETWEEN a.event_time AND a.event_time + 3600000)
        GROUP BY {MINUTE_MS}, course_id, `method`, currency""",
    # Distinct users per stage in two steps, for the same reason as content_minute's viewers.
    "funnel_hour": f"""
        SELECT {_at("hour_ms")},
               COUNT(CASE WHEN event_type = 'clickstream.content_viewed' THEN 1 END),
               COUNT(CASE WHEN event_type = 'order.created' THEN 1 END),
               COUNT(CASE WHEN event_type = 'order.paid' THEN 1 END),
               COUNT(CASE WHEN event_type = 'user.enrolled' THEN 1 END)
        FROM (
            SELECT {HOUR_MS} AS hour_ms, event_type, user_id FROM on_time
            WHERE event_type IN ('clickstream.content_viewed', 'order.created', 'order.paid', 'user.enrolled')
              AND user_id IS NOT NULL
            GROUP BY {HOUR_MS}, event_type, user_id)
        GROUP BY hour_ms""",
    "registrations_minute": f"""
        SELECT {MINUTE}, COUNT(*) FROM on_time WHERE event_type = 'user.registered' GROUP BY {MINUTE_MS}""",
    "content_dim": f"""
        SELECT content_id, course_id, title, COALESCE(course_title, ''), revision, {_at("event_time")}
        FROM events WHERE event_type = 'content.published'""",
}


def source_topics(settings: Settings) -> list[str]:
    topics = settings.topics
    # A test may point several logical topics at one Kafka topic.
    return sorted({topics.clickstream, topics.commerce, topics.payment, topics.user, topics.content})


def _declare_sources(
    env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, settings: Settings, bounded: bool
) -> None:
    flink = settings.flink
    register_events_view(env, t_env, EventsView(
        name="sequenced", kafka=settings.kafka.client_config(), topics=source_topics(settings),
        group_id=f"{flink.consumer_group_prefix}-{JOB_NAME}", bounded=bounded,
        registry_url=settings.registry.ccompat_url, fields=DECODED_FIELDS, event_time_field="event_time",
        event_time_range_ms=flink.event_time_range_ms, late_bound_ms=flink.max_out_of_orderness_s * 1000,
        payload_json=True, event_types=topic_event_types(settings, source_topics(settings)),
        max_string_bytes=flink.max_string_bytes, decode_in_own_task=flink.decode_in_own_task,
    ))  # fmt: skip
    views = {
        "events": "SELECT * FROM sequenced WHERE ok",
        "on_time": "SELECT * FROM sequenced WHERE ok AND NOT is_late",
        "late": "SELECT * FROM sequenced WHERE ok AND is_late",
        "clicks": """
            SELECT user_id, event_time, high_ms,
                   CASE WHEN event_type = 'clickstream.content_viewed' THEN content_id END AS content_id
            FROM on_time WHERE event_type LIKE 'clickstream.%'""",
        "paid": "SELECT * FROM on_time WHERE event_type = 'order.paid'",
        "approved": "SELECT * FROM on_time WHERE event_type = 'payment.approved'",
    }
    for name, query in views.items():
        t_env.execute_sql(f"CREATE TEMPORARY VIEW {name} AS {query}")
    register_user_sessions(t_env, UserSessionsView(
        name="sessions", input_view="clicks", gap_ms=SESSION_GAP_MS, bound_ms=flink.max_out_of_orderness_s * 1000,
        flush_ms=flink.mini_batch_latency_ms, bundle_rows=flink.mini_batch_rows,
        state_ttl_ms=flink.state_ttl_h * 3_600_000, uid="analytics-user-sessions",
    ))  # fmt: skip


def _declare_sinks(t_env: StreamTableEnvironment, settings: Settings) -> None:
    clickhouse, flink = settings.clickhouse, settings.flink
    sink = ClickHouseSinkOptions(
        clickhouse.host, clickhouse.http_port, clickhouse.database, clickhouse.user,
        clickhouse.password.get_secret_value(), flink.sink_batch_rows, flink.sink_batch_delay_s,
        flink.sink_max_retries, flink.sink_parallelism,
    )  # fmt: skip
    for table, (columns, key) in SINKS.items():
        # Quoted: views, partition, watermark ... are reserved words in Flink SQL.
        quoted = ", ".join(f"`{name}` {sql_type}" for name, sql_type in (c.split() for c in columns.split(", ")))
        primary_key = f", PRIMARY KEY ({key}) NOT ENFORCED" if key else ""
        t_env.execute_sql(f"""
            CREATE TEMPORARY TABLE sink_{table} ({quoted}{primary_key})
            WITH ({with_clause(sink.options(table))})""")


def build(env: StreamExecutionEnvironment, settings: Settings, bounded: bool = False) -> None:
    """Wires sources, transformations and sinks; `env.execute()` runs them as one job."""
    t_env = StreamTableEnvironment.create(env)
    register_jvm_functions(t_env)
    _declare_sources(env, t_env, settings, bounded)
    declare_dead_letter_sink(t_env, settings.kafka.client_config(), settings.topics.dead_letter)
    _declare_sinks(t_env, settings)

    statements = t_env.create_statement_set()
    statements.add_insert_sql(f"INSERT INTO dead_letter_sink {dead_letter_select('sequenced', JOB_NAME)}")
    bound_ms = str(settings.flink.max_out_of_orderness_s * 1000)
    for table, query in QUERIES.items():
        statements.add_insert_sql(f"INSERT INTO sink_{table} {query.replace('{bound_ms}', bound_ms)}")
    statements.attach_as_datastream()


def main(argv: list[str] | None = None) -> None:
    from jobs.runtime import run_job

    run_job(JOB_NAME, build, argv)


if __name__ == "__main__":
    main()
