"""Flink SQL tables and functions whose per-record work runs in the JVM, for jobs to declare in a few lines.

- Kafka tables of raw key and value bytes (`raw` format), for sinks such as the dead-letter topic. Jobs read their
  events through connectors/flink/events.py instead, which decodes each record once in the JVM and keeps an
  unreadable one as a row with its reason (Flink's `avro-confluent` format would fail the job).
- `DecodedField`: a top-level event field those views decode, by name, from whichever writer schema a record has.
- `register_user_sessions` (`UserSessions`): a view's gap sessions per user as another view, kept current as events
  come (the changes of each short interval emitted together), versioned for a ReplacingMergeTree.
- `sliding_features(input => TABLE t PARTITION BY key, spec => ...)` (`SlidingFeatures`): count / sum / distinct
  over sliding windows ending at each key's newest event, and first-seen times, kept current on every event.
- ClickHouse sinks (`'connector' = 'clickhouse'`, `ClickHouseTableSinkFactory`): batched RowBinary inserts over HTTP
  sent while the task goes on, retries, and with a primary key one row per key and batch (an upsert into a
  ReplacingMergeTree).
- PostgreSQL sinks through Flink's JDBC connector and its PostgreSQL dialect (upserts with ON CONFLICT on the
  primary key).
- Feast online-store sinks (`feast-redis`, `FeastRedisSink`): one feature view's rows in Feast's Redis layout,
  batched, the newest row per entity winning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyflink.table import StreamTableEnvironment

from connectors.kafka.config import ConfigValue

JVM_FUNCTIONS = {
    "sliding_features": "com.suuupra.flink.features.SlidingFeatures",
}


@dataclass(frozen=True)
class DecodedField:
    """A top-level field of the events, read by name from whichever writer schema a record has."""

    name: str
    sql_type: str  # STRING (strings, uuids, enums), BIGINT (longs, timestamp-millis), INT, DOUBLE, BOOLEAN


def register_jvm_functions(t_env: StreamTableEnvironment) -> None:
    for name, java_class in JVM_FUNCTIONS.items():
        t_env.execute_sql(f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS {name} AS '{java_class}' LANGUAGE JAVA")


def register_jvm_instance(t_env: StreamTableEnvironment, name: str, java_class: str, configuration: str) -> None:
    """Registers a temporary system function that is an instance of a JVM function class built from one string (SQL's
    CREATE FUNCTION takes a class only): the instance, configuration included, travels in the job graph, not in the
    plan's text. The class comes from the job's `pipeline.jars`."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import load_java_class

    gateway = get_gateway()
    parameter_types = gateway.new_array(gateway.jvm.Class, 1)
    parameter_types[0] = load_java_class("java.lang.String")
    arguments = gateway.new_array(gateway.jvm.Object, 1)
    arguments[0] = configuration
    instance = load_java_class(java_class).getConstructor(parameter_types).newInstance(arguments)
    t_env._j_tenv.createTemporarySystemFunction(name, instance)  # no public PyFlink API takes an instance


@dataclass(frozen=True)
class UserSessionsView:
    """Gap sessions of `input_view`'s events as `name`. The view has user_id, event_time, high_ms, event_type and
    content_id (other columns are not read) and should only filter: its rows are taken as they are. An event of
    `watched_event_type` watches its content_id."""

    name: str
    input_view: str
    watched_event_type: str
    gap_ms: int
    bound_ms: int  # the late rule's bound: a session this far behind its partition's newest event is settled
    flush_ms: int  # changes are emitted together at this interval, at `bundle_rows`, and before every checkpoint
    bundle_rows: int
    state_ttl_ms: int
    uid: str


def register_user_sessions(t_env: StreamTableEnvironment, view: UserSessionsView) -> None:
    """Declares the sessions view in `t_env`; its operator joins the job of the environment `t_env` was made from."""
    from pyflink.java_gateway import get_gateway

    sessions = get_gateway().jvm.com.suuupra.flink.sessions.UserSessions
    sessions.register(
        t_env._j_tenv, view.input_view, view.name, view.watched_event_type, view.gap_ms, view.bound_ms, view.flush_ms,
        view.bundle_rows, view.state_ttl_ms, view.uid,
    )  # fmt: skip


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def with_clause(options: Mapping[str, str]) -> str:
    return ",\n".join(f"{sql_string(key)} = {sql_string(value)}" for key, value in options.items())


def column_definitions(t_env: StreamTableEnvironment, view: str) -> str:
    """`view`'s columns as a CREATE TABLE's column list, for a sink that takes the view's rows as they are. Each type
    is its Java type's SQL text (PyFlink prints every column's type as "DATA"); a time attribute becomes a plain
    timestamp, which a sink's column is."""
    columns = t_env.from_path(view).get_resolved_schema().get_columns()
    return ", ".join(
        f"`{column.get_name()}` {column._j_column.getDataType().getLogicalType().asSerializableString()}"
        for column in columns
    )


def kafka_raw_options(
    client_config: Mapping[str, ConfigValue], topics: Sequence[str], group_id: str | None, bounded: bool
) -> dict[str, str]:
    """A Kafka table of raw key and value bytes; resumes from the group's offsets (earliest for a new group)."""
    options = {
        "connector": "kafka",
        "topic": ";".join(topics),
        "key.format": "raw",
        "key.fields": "record_key",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        **{f"properties.{key}": str(value) for key, value in client_config.items()},
    }
    if group_id is not None:
        options |= {
            "properties.group.id": group_id,
            "scan.startup.mode": "group-offsets",
            "properties.auto.offset.reset": "earliest",
        }
    if bounded:
        options["scan.bounded.mode"] = "latest-offset"
    return options


@dataclass(frozen=True)
class ClickHouseSinkOptions:
    """Where and how a job's ClickHouse sinks write (`'connector' = 'clickhouse'`, connectors/jvm): RowBinary inserts
    over HTTP in batches, sent in the background, retried on transient failures, flushed on every checkpoint."""

    host: str
    http_port: int
    database: str
    user: str
    password: str
    batch_rows: int
    batch_delay_s: float
    max_retries: int
    parallelism: int | None = None
    # The writer in a task of its own: a checkpoint's flush (waiting for ClickHouse) then stalls only the writer, not
    # the operators before it (the fraud job's decisions).
    own_task: bool = False
    # What a batch may grow to after full batches in a row (a backlog's drain), at least batch_rows (the sink refuses
    # less); its delay grows in the same proportion (at most 4 times). None: no growth.
    max_batch_rows: int | None = None

    def options(self, table: str, columns: str | None = None) -> dict[str, str]:
        """`columns`: the ClickHouse columns written, each `name` or `name=table_column`, comma-separated; by default
        every column of the Flink table, into the ClickHouse column of its name."""
        options = {
            "connector": "clickhouse",
            "url": f"http://{self.host}:{self.http_port}",
            "database": self.database,
            "table-name": table,
            "sink.batch.rows": str(self.batch_rows),
            "sink.batch.interval": f"{max(1, round(self.batch_delay_s * 1000))} ms",  # the sink refuses 0 ms
            "sink.max-retries": str(self.max_retries),
        }
        if self.user:
            options["username"] = self.user
        if self.password:
            options["password"] = self.password
        if self.parallelism is not None:
            options["sink.parallelism"] = str(self.parallelism)
        if self.max_batch_rows is not None:
            options["sink.batch.max-rows"] = str(self.max_batch_rows)
        if self.own_task:
            options["sink.own-task"] = "true"
        if columns is not None:
            options["columns"] = columns
        return options


@dataclass(frozen=True)
class PostgresJdbc:
    """Where and how a job's JDBC sinks write to PostgreSQL (the connector's PostgreSQL dialect, pgjdbc)."""

    host: str
    port: int
    database: str
    user: str
    password: str
    batch_rows: int
    batch_delay_s: float
    max_retries: int

    def options(self, table: str) -> dict[str, str]:
        return {
            "connector": "jdbc",
            # One multi-row INSERT per batch instead of a statement per row (pgjdbc rewrites the upserts too).
            "url": f"jdbc:postgresql://{self.host}:{self.port}/{self.database}?reWriteBatchedInserts=true",
            "table-name": table,
            "username": self.user,
            "password": self.password,
            "sink.buffer-flush.max-rows": str(self.batch_rows),
            "sink.buffer-flush.interval": f"{int(self.batch_delay_s * 1000)} ms",
            "sink.max-retries": str(self.max_retries),
        }


@dataclass(frozen=True)
class FeastRedis:
    """Where a job's `feast-redis` sinks write one Feast project's online rows, and how they batch."""

    host: str
    port: int
    password: str | None
    database: int
    project: str
    flush_ms: int
    batch_rows: int
    # Each entity's newest rows also kept by time, for reads as of a moment (0: only the newest row).
    history_rows: int = 0

    def options(
        self, view: str, join_key: str, timestamp_column: str, version_column: str | None = None
    ) -> dict[str, str]:
        options = {
            "connector": "feast-redis",
            "host": self.host,
            "port": str(self.port),
            "database": str(self.database),
            "project": self.project,
            "feature-view": view,
            "join-key": join_key,
            "timestamp-column": timestamp_column,
            "sink.buffer-flush.interval": f"{self.flush_ms} ms",
            "sink.buffer-flush.max-rows": str(self.batch_rows),
        }
        if self.password:
            options["password"] = self.password
        if version_column is not None:
            options["version-column"] = version_column
            options["history.max-rows"] = str(self.history_rows)
        return options
