"""Real-time analytics: domain events from Kafka into the ClickHouse tables behind the dashboards.

    suuupra jobs run analytics                         # local mini-cluster
    suuupra jobs submit analytics --jobmanager H:P     # a Flink session cluster
    flink run -py jobs/analytics.py                    # plain Flink CLI (settings from SUUUPRA_* / --config)

Python only declares the job; every record is handled by Flink's own operators and the project's JVM functions
(connectors/jvm): each Kafka record is decoded once by the source that read it, SQL windows and joins aggregate,
`UserSessions` sessionizes, and the project's ClickHouse sink writes in batches.

Counting every event exactly once, whatever the interleaving, idleness, back-pressure, parallelism or restore:
- The late rule: an event older than the newest event already seen in its Kafka partition by more than the
  allowed out-of-orderness goes to `late_events` with that reason. The newest-seen time is checkpointed state of the
  operator chained to the source, which sees each partition in offset order, so the rule decides identically on
  every run.
- The watermark follows the rule: per partition, its newest event minus the bound, so an event the rule lets through
  is never behind it and no window closes before it. Windows fire early (every mini-batch interval, upserted by
  key), so the current minute shows within seconds; the watermark only decides when a window's state is dropped.
  A partition the source read nothing of while it read `partition_idle_after_records` records of its others stops
  holding the watermark; an event behind it when it arrives is recorded in `late_events` with that reason.
- A record that cannot be decoded, or cannot be a true event (an unknown type, another type's schema, an impossible
  value: connectors/flink/events.py), goes to the dead-letter topic with its bytes and the reason.
"""

from __future__ import annotations

from collections.abc import Collection

from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.flink.events import EventsView, dead_letter_select, declare_dead_letter_sink, register_events_view
from connectors.flink.tables import (
    ClickHouseSinkOptions,
    DecodedField,
    UserSessionsView,
    column_definitions,
    register_jvm_functions,
    register_user_sessions,
    sql_string,
    with_clause,
)
from jobs.decoding import topic_event_types
from suuupra.settings import Settings

JOB_NAME = "analytics"
SESSION_GAP_MS = 30 * 60_000
CONTENT_VIEWED = "clickstream.content_viewed"  # the event that watches a content, in a session too

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

# raw_events takes the decoded rows as they are: its sink has the `events` view's columns and writes these into the
# ClickHouse columns (`name` or `name=view_column`). Its query only filters, so the planner hands the source's binary
# rows on; a query that selected the columns copied every string of every event first (in a profile, the job's
# string copies fell from 5.9 % to 2.1 % of its CPU samples without it).
RAW_EVENTS_COLUMNS = (
    "event_id, event_type, event_time=rowtime, event_time_ms=event_time, user_id, correlation_id, "
    "producer, topic=kafka_topic, partition=kafka_partition, kafka_offset, payload=payload_json"
)

LATE_REASON = "older than its partition's newest event by more than the allowed out-of-orderness"
WATERMARK_REASON = "behind the watermark when it arrived (its partition had been idle)"


def _at(epoch_ms: str) -> str:
    """Epoch milliseconds as an instant (TIMESTAMP_LTZ), which the sink writes as it is: no time-zone arithmetic."""
    return f"TO_TIMESTAMP_LTZ({epoch_ms}, 3)"


# Windows are event-time tumbling windows over `rowtime`, closed by the watermark, which follows the late rule: an
# event the rule lets through is never behind it. `table.exec.emit.early-fire.*` (set in build) emits each window's
# current value every mini-batch interval while it is open, upserted by key; the final value replaces it when the
# watermark closes the window, and the window's state is gone.
MINUTE = "TUMBLE(rowtime, INTERVAL '1' MINUTE)"
HOUR = "TUMBLE(rowtime, INTERVAL '1' HOUR)"

# Each query selects exactly the columns of its sink, in order. A readable event's `rowtime` is its event time as an
# instant, made once by the source: TO_TIMESTAMP_LTZ(event_time) again in each query cost 3.5 % of the job's CPU.
QUERIES = {
    "raw_events": "SELECT * FROM events",
    "late_events": f"""
        SELECT event_id, event_type, user_id, rowtime,
               {_at("COALESCE(watermark_ms, high_ms - {bound_ms})")},
               COALESCE(watermark_ms, high_ms - {{bound_ms}}) - event_time, kafka_topic, kafka_partition, kafka_offset,
               CASE WHEN watermark_ms IS NULL THEN {sql_string(LATE_REASON)} ELSE {sql_string(WATERMARK_REASON)} END
        FROM late""",
    "content_minute": f"""
        SELECT TUMBLE_START(rowtime, INTERVAL '1' MINUTE), content_id, course_id, COUNT(*), COUNT(DISTINCT user_id),
               SUM(CAST(watch_seconds AS BIGINT)), SUM(CASE WHEN completed THEN 1 ELSE 0 END)
        FROM on_time WHERE event_type = 'clickstream.content_viewed'
        GROUP BY {MINUTE}, content_id, course_id""",
    "user_sessions": f"""
        SELECT user_id, {_at("session_start")}, {_at("session_end")}, duration_seconds, events, contents_watched,
               version, deleted
        FROM sessions""",
    # An interval join: each side is kept until the watermark is past the last time it can still match.
    "revenue_minute": """
        SELECT TUMBLE_START(rowtime, INTERVAL '1' MINUTE), course_id, `method`, currency, SUM(total_minor), COUNT(*)
        FROM (
            SELECT p.rowtime, p.course_id, a.`method`, p.currency, p.total_minor
            FROM paid p JOIN approved a ON p.payment_id = a.payment_id
             AND p.rowtime BETWEEN a.rowtime AND a.rowtime + INTERVAL '1' HOUR)
        GROUP BY TUMBLE(rowtime, INTERVAL '1' MINUTE), course_id, `method`, currency""",
    "funnel_hour": f"""
        SELECT TUMBLE_START(rowtime, INTERVAL '1' HOUR),
               COUNT(DISTINCT CASE WHEN event_type = 'clickstream.content_viewed' THEN user_id END),
               COUNT(DISTINCT CASE WHEN event_type = 'order.created' THEN user_id END),
               COUNT(DISTINCT CASE WHEN event_type = 'order.paid' THEN user_id END),
               COUNT(DISTINCT CASE WHEN event_type = 'user.enrolled' THEN user_id END)
        FROM on_time
        WHERE event_type IN ('clickstream.content_viewed', 'order.created', 'order.paid', 'user.enrolled')
        GROUP BY {HOUR}""",
    "registrations_minute": f"""
        SELECT TUMBLE_START(rowtime, INTERVAL '1' MINUTE), COUNT(*) FROM on_time
        WHERE event_type = 'user.registered' GROUP BY {MINUTE}""",
    "content_dim": """
        SELECT content_id, course_id, title, COALESCE(course_title, ''), revision, rowtime
        FROM events WHERE event_type = 'content.published'""",
}


def source_topics(settings: Settings) -> list[str]:
    topics = settings.topics
    # A test may point several logical topics at one Kafka topic.
    return sorted({topics.clickstream, topics.commerce, topics.payment, topics.user, topics.content})


def _declare_sources(
    env: StreamExecutionEnvironment, t_env: StreamTableEnvironment, settings: Settings, bounded: bool, sessions: bool
) -> None:
    flink = settings.flink
    register_events_view(env, t_env, EventsView(
        name="sequenced", kafka=settings.kafka.client_config(), topics=source_topics(settings),
        group_id=f"{flink.consumer_group_prefix}-{JOB_NAME}", bounded=bounded,
        registry_url=settings.registry.ccompat_url, fields=DECODED_FIELDS, event_time_field="event_time",
        event_time_range_ms=flink.event_time_range_ms, late_bound_ms=flink.max_out_of_orderness_s * 1000,
        payload_json=True, event_types=topic_event_types(settings, source_topics(settings)),
        max_string_bytes=flink.max_string_bytes, decode_in_own_task=flink.decode_in_own_task, watermark=True,
        partition_idle_after_records=flink.partition_idle_after_records,
        partition_fetch_bytes=flink.source_partition_fetch_bytes,
    ))  # fmt: skip
    views = {
        "events": "SELECT * FROM sequenced WHERE ok",
        # Late: by the late rule, or (only after a partition was idle) behind the watermark the windows close by.
        "on_time": "SELECT * FROM sequenced WHERE ok AND NOT is_late",
        "late": "SELECT * FROM sequenced WHERE ok AND is_late",
        # Only filters: the sessions operator takes the rows as they are (connectors/jvm UserSessions).
        "clicks": "SELECT * FROM on_time WHERE event_type LIKE 'clickstream.%'",
        "paid": "SELECT * FROM on_time WHERE event_type = 'order.paid'",
        "approved": "SELECT * FROM on_time WHERE event_type = 'payment.approved'",
    }
    for name, query in views.items():
        t_env.execute_sql(f"CREATE TEMPORARY VIEW {name} AS {query}")
    if not sessions:
        return  # the sessions operator joins the job when it is declared, whether or not anything reads it
    register_user_sessions(t_env, UserSessionsView(
        name="sessions", input_view="clicks", watched_event_type=CONTENT_VIEWED, gap_ms=SESSION_GAP_MS,
        bound_ms=flink.max_out_of_orderness_s * 1000, flush_ms=flink.mini_batch_latency_ms,
        bundle_rows=flink.mini_batch_rows, state_ttl_ms=flink.state_ttl_h * 3_600_000, uid="analytics-user-sessions",
    ))  # fmt: skip


def _declare_sinks(t_env: StreamTableEnvironment, settings: Settings) -> None:
    clickhouse, flink = settings.clickhouse, settings.flink
    sink = ClickHouseSinkOptions(
        clickhouse.host, clickhouse.http_port, clickhouse.database, clickhouse.user,
        clickhouse.password.get_secret_value(), flink.sink_batch_rows, flink.sink_batch_delay_s,
        flink.sink_max_retries, flink.sink_parallelism, max_batch_rows=flink.sink_batch_max_rows,
    )  # fmt: skip
    for table, (columns, key) in SINKS.items():
        # Quoted: views, partition, watermark ... are reserved words in Flink SQL.
        quoted = ", ".join(f"`{name}` {sql_type}" for name, sql_type in (c.split() for c in columns.split(", ")))
        primary_key = f", PRIMARY KEY ({key}) NOT ENFORCED" if key else ""
        t_env.execute_sql(f"""
            CREATE TEMPORARY TABLE sink_{table} ({quoted}{primary_key})
            WITH ({with_clause(sink.options(table))})""")
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE sink_raw_events ({column_definitions(t_env, "events")})
        WITH ({with_clause(sink.options("raw_events", RAW_EVENTS_COLUMNS))})""")


def build(
    env: StreamExecutionEnvironment, settings: Settings, bounded: bool = False, tables: Collection[str] = tuple(QUERIES)
) -> None:
    """Wires sources, transformations and sinks; `env.execute()` runs them as one job. `tables` (of QUERIES) are the
    tables it writes, all by default; the dead letters always go out (bench/analytics_e2e.py measures the job that
    writes only raw_events against the whole job)."""
    unknown = sorted(set(tables) - set(QUERIES))
    if unknown:
        raise ValueError(f"no such analytics table: {', '.join(unknown)}; the tables are {', '.join(QUERIES)}")
    t_env = StreamTableEnvironment.create(env)
    emit = t_env.get_config()
    emit.set("table.exec.emit.early-fire.enabled", "true")
    emit.set("table.exec.emit.early-fire.delay", f"{settings.flink.mini_batch_latency_ms} ms")
    # Unset, a window's allowed lateness is the state TTL: its state would stay a week after the watermark closed it.
    emit.set("table.exec.emit.allow-lateness", "0 ms")
    register_jvm_functions(t_env)
    _declare_sources(env, t_env, settings, bounded, sessions="user_sessions" in tables)
    declare_dead_letter_sink(t_env, settings.kafka.client_config(), settings.topics.dead_letter)
    _declare_sinks(t_env, settings)

    statements = t_env.create_statement_set()
    statements.add_insert_sql(f"INSERT INTO dead_letter_sink {dead_letter_select('sequenced', JOB_NAME)}")
    bound_ms = str(settings.flink.max_out_of_orderness_s * 1000)
    for table, query in QUERIES.items():
        if table not in tables:
            continue
        statements.add_insert_sql(f"INSERT INTO sink_{table} {query.replace('{bound_ms}', bound_ms)}")
    statements.attach_as_datastream()


# A backlog's drain is this job's hardest moment: its local JVM's C2 waits for ten times HotSpot's default calls, so it
# stops compiling the planner's and code generator's warm methods through the drain (flink.local_c2_threshold_scale).
C2_THRESHOLD_SCALE = 10


def main(argv: list[str] | None = None) -> None:
    from jobs.runtime import run_job

    run_job(JOB_NAME, build, argv, c2_threshold_scale=C2_THRESHOLD_SCALE)


if __name__ == "__main__":
    main()
