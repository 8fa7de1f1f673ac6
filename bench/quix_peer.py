"""The Quix Streams peer of the analytics benchmark: raw_events and content_minute, in a plain quixstreams 3.28.1 app.

Runs in its own venv (`bench/quix_venv.py`: quixstreams 3.28.1 needs confluent-kafka < 2.13 and pydantic < 2.14),
so it imports only the standard library, quixstreams and clickhouse_driver, and takes everything on the command line:

    venv-quix/bin/python bench/quix_peer.py --bootstrap 127.0.0.1:19092 \
        --registry-url http://127.0.0.1:18081/apis/ccompat/v7 --topics a,b,c,d \
        --clickhouse-host 127.0.0.1 --clickhouse-port 19000 --clickhouse-user default --clickhouse-password '' \
        --database quixprobe --group-id quix-peer-1 --expected-events 196443 --timeout-s 600 \
        [--views-topics a]   # only the topic(s) with content_viewed get a window pipeline (default: every topic)

What it does, from the earliest offset with a fresh consumer group:
- values are decoded by Quix's own Confluent-registry Avro deserializer; a record it cannot decode (not Avro,
  unknown schema id, truncated body) reaches `on_consumer_error` (quixstreams wraps the deserializer's failure in
  `SerializationError`; any other exception raised while decoding lands there too) and is counted and skipped.
- every decoded event -> `{database}.raw_events_quix` (event_id, event_type, event_time, user_id, payload JSON).
- `clickstream.content_viewed` events -> `group_by("content_id")` (a repartition topic) -> 1-minute tumbling window
  with Quix's default grace (0 ms) and closing strategy ("key") -> `.final()` -> `{database}.content_minute_quix`.
  Event time is the Kafka record timestamp (Quix's default extraction; our producers set it to event_time).
- both sinks are `BatchingSink`s writing with clickhouse-driver on each checkpoint (every 5 s by default).
- it stops once it has consumed `--expected-events` records of the given topics (decoded + failed) AND the
  windowing step has taken in every view it forwarded through the repartition topic, or at `--timeout-s`; the final
  checkpoint flushes the sinks. Its own internal topics (repartition__/changelog__<group>--*) and its consumer group
  are deleted at the end unless `--keep-internal`.

It prints ONE JSON object on stdout (logs go to stderr):
events, decode_failures, seconds (first record consumed -> last sink flush done), events_per_s, content_minute_rows,
views_consumed, views_in_windows (SUM(views) FINAL), views_dropped_late (= views_consumed - views_in_windows), and
the split of that difference: views_late (refused by a closed window, counted by the window's on_late callback) and
views_in_unclosed_windows (in windows no later view of the same content closed: `.final()` never emits them);
plus peak_rss_mb, raw_rows, processing_errors, kafka_errors, timed_out, startup_s (main() start -> first record:
topic creation, about 1 s per internal topic, and the consumer group join).

On a backlog, Quix's default window settings drop most views: a key's window closes as soon as ANY record of that key
is newer than window end + grace (0 ms), and nothing aligns the source partitions (each fetch batch of one partition
spans hours of event time), so views from the other partitions arrive "late" by hours. That is Quix's default
behaviour, measured here on purpose, not a bug of this script.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from clickhouse_driver import Client
from quixstreams import Application
from quixstreams.dataframe.windows import Count, First, Sum
from quixstreams.dataframe.windows.aggregations import Aggregator
from quixstreams.models import Row
from quixstreams.models.serializers.avro import AvroDeserializer
from quixstreams.models.serializers.schema_registry import SchemaRegistryClientConfig
from quixstreams.models.topics.admin import TopicAdmin
from quixstreams.sinks import BatchingSink, SinkBatch

VIEW_EVENT_TYPE = "clickstream.content_viewed"
WINDOW = timedelta(minutes=1)

log = logging.getLogger("quix_peer")

RAW_TABLE_COLUMNS = ("event_id", "event_type", "event_time", "user_id", "payload")
MINUTE_TABLE_COLUMNS = (
    "window_start",
    "content_id",
    "course_id",
    "views",
    "unique_viewers",
    "watch_seconds",
    "completed_views",
)


def table_ddl(database: str) -> list[str]:
    """Drop and re-create both tables (ClickHouse 18.16: no DateTime64, Map or JSON types)."""
    return [
        f"CREATE DATABASE IF NOT EXISTS {database}",
        f"DROP TABLE IF EXISTS {database}.raw_events_quix",
        f"DROP TABLE IF EXISTS {database}.content_minute_quix",
        f"""CREATE TABLE {database}.raw_events_quix (
                event_id String, event_type String, event_time DateTime('UTC'), user_id String, payload String
            ) ENGINE = MergeTree PARTITION BY toYYYYMM(event_time) ORDER BY (event_type, event_time)""",
        f"""CREATE TABLE {database}.content_minute_quix (
                window_start DateTime('UTC'), content_id String, course_id String, views UInt64,
                unique_viewers UInt64, watch_seconds UInt64, completed_views UInt64
            ) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(window_start) ORDER BY (window_start, content_id)""",
    ]


@dataclass
class Stats:
    """Counters shared by the callbacks, sinks and the stop condition (all run on the app's one thread)."""

    expected: int
    decoded: int = 0
    decode_failures: int = 0
    processing_errors: int = 0
    kafka_errors: int = 0
    views_consumed: int = 0  # content_viewed events decoded and forwarded to the repartition topic
    views_windowed: int = 0  # ... and read back from it by the windowing step
    views_late: int = 0  # refused by an already closed window (on_late)
    first_record_at: float | None = None
    last_flush_at: float | None = None
    raw_rows_written: int = 0
    minute_rows_written: int = 0

    @property
    def consumed(self) -> int:
        return self.decoded + self.decode_failures

    def mark_consumed(self) -> None:
        if self.first_record_at is None:
            self.first_record_at = time.monotonic()

    def done(self) -> bool:
        return self.consumed >= self.expected and self.views_windowed >= self.views_consumed


def json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def epoch_seconds(value: object) -> int:
    """An Avro timestamp-millis value (a datetime once decoded, or raw epoch milliseconds) as epoch seconds."""
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, int):
        return value // 1000
    raise TypeError(f"event_time {value!r} is neither a datetime nor epoch milliseconds")


class DistinctCount(Aggregator):
    """Number of distinct values of a column in the window (the state is a JSON-able dict used as a set)."""

    def initialize(self) -> dict[str, int]:
        return {}

    def agg(self, old: dict[str, int], new: Any, timestamp: int) -> dict[str, int]:
        item = new.get(self.column) if self.column is not None else new
        if item is not None:
            old[str(item)] = 1
        return old

    def result(self, value: dict[str, int]) -> int:
        return len(value)


class ClickHouseSink(BatchingSink):
    """Writes each checkpoint's batch (one per topic-partition) with one INSERT; rows are already tuples."""

    def __init__(self, client_kwargs: dict[str, Any], table: str, columns: tuple[str, ...], stats: Stats) -> None:
        super().__init__()
        self._client_kwargs = client_kwargs
        self._insert = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        self._stats = stats
        self._client: Client | None = None
        self.rows_written = 0

    def setup(self) -> None:
        self._client = Client(**self._client_kwargs)
        self._client.execute("SELECT 1")

    def write(self, batch: SinkBatch) -> None:
        if self._client is None:
            self.setup()
        assert self._client is not None
        rows = [item.value for item in batch]
        if rows:
            # Rows always as the second argument: literal VALUES hang on the 18.16 server.
            self._client.execute(self._insert, rows)
            self.rows_written += len(rows)
        self._stats.last_flush_at = time.monotonic()

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()


def split_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT")
    parser.add_argument("--registry-url", required=True, help="Confluent-compatible registry URL (Apicurio ccompat)")
    parser.add_argument("--topics", required=True, help="comma-separated source topics")
    parser.add_argument("--clickhouse-host", default="127.0.0.1")
    parser.add_argument("--clickhouse-port", type=int, default=9000, help="native protocol port")
    parser.add_argument("--clickhouse-user", default="default")
    parser.add_argument("--clickhouse-password", default="")
    parser.add_argument("--database", required=True)
    parser.add_argument("--group-id", required=True, help="a fresh consumer group (its offsets start at earliest)")
    parser.add_argument("--expected-events", type=int, required=True, help="records to consume (decoded + failed)")
    parser.add_argument("--timeout-s", type=float, required=True, help="stop after this long whatever was consumed")
    parser.add_argument(
        "--views-topics",
        default=None,
        help="comma-separated subset of --topics that carry content_viewed events (default: all of them); each "
        "gets its own repartition and changelog topic, so naming only the clickstream topic saves start-up time",
    )
    parser.add_argument("--state-dir", type=Path, default=None, help="RocksDB state (default: a temporary folder)")
    parser.add_argument("--keep-internal", action="store_true", help="keep the repartition/changelog topics")
    parser.add_argument("--loglevel", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser.parse_args(argv)


def build_app(
    options: argparse.Namespace, stats: Stats, state_dir: Path, client_kwargs: dict[str, Any]
) -> tuple[Application, list[ClickHouseSink]]:
    def on_consumer_error(exc: Exception, message: Any, logger: logging.Logger) -> bool:
        if message is None:
            # A Kafka-level error (no record attached): librdkafka retries transient ones itself.
            stats.kafka_errors += 1
            logger.warning("Kafka error while polling: %s", exc)
        else:
            stats.mark_consumed()
            stats.decode_failures += 1
            if stats.decode_failures <= 5:
                logger.warning(
                    "undecodable record %s[%s]@%s: %s: %s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    type(exc).__name__,
                    exc,
                )
            if stats.done():
                app.stop()
        return True

    def on_processing_error(exc: Exception, row: Row | None, logger: logging.Logger) -> bool:
        stats.processing_errors += 1
        if stats.processing_errors <= 5:
            where = f"{row.topic}[{row.partition}]@{row.offset}" if row is not None else "?"
            logger.warning("processing failed for %s: %s: %s", where, type(exc).__name__, exc)
        return True

    def on_late(
        value: Any,
        key: Any,
        timestamp_ms: int,
        late_by_ms: int,
        start: int,
        end: int,
        store_name: str,
        topic: str,
        partition: int,
        offset: int,
    ) -> bool:
        stats.views_late += 1
        return stats.views_late <= 5  # log only the first few (Quix logs a warning per late record otherwise)

    def count_decoded(value: dict[str, Any]) -> None:
        stats.mark_consumed()
        stats.decoded += 1
        if value.get("event_type") == VIEW_EVENT_TYPE:
            stats.views_consumed += 1
        if stats.done():
            app.stop()

    def count_windowed(value: dict[str, Any]) -> None:
        stats.views_windowed += 1
        if stats.done():
            app.stop()

    def raw_row(value: dict[str, Any]) -> tuple[str, str, int, str, str]:
        return (
            str(value["event_id"]),
            str(value["event_type"]),
            epoch_seconds(value["event_time"]),
            str(value["user_id"]),
            json.dumps(value, default=json_default, separators=(",", ":")),
        )

    def view_fields(value: dict[str, Any]) -> dict[str, Any]:
        return {
            "content_id": str(value["content_id"]),
            "course_id": str(value["course_id"]),
            "user_id": str(value["user_id"]),
            "watch_seconds": int(value["watch_seconds"]),
            "completed": 1 if value["completed"] else 0,
        }

    def minute_row(result: dict[str, Any], key: Any) -> tuple[int, str, str, int, int, int, int]:
        return (
            int(result["start"]) // 1000,
            str(key),
            str(result["course_id"]),
            int(result["views"]),
            int(result["unique_viewers"]),
            int(result["watch_seconds"]),
            int(result["completed_views"]),
        )

    app = Application(
        broker_address=options.bootstrap,
        consumer_group=options.group_id,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        on_consumer_error=on_consumer_error,
        on_processing_error=on_processing_error,
        loglevel=options.loglevel,
    )
    registry = SchemaRegistryClientConfig(url=options.registry_url)
    raw_sink = ClickHouseSink(client_kwargs, f"{options.database}.raw_events_quix", RAW_TABLE_COLUMNS, stats)
    minute_sink = ClickHouseSink(client_kwargs, f"{options.database}.content_minute_quix", MINUTE_TABLE_COLUMNS, stats)

    names = split_names(options.topics)
    views_topics = set(split_names(options.views_topics)) if options.views_topics else set(names)
    if unknown := views_topics - set(names):
        raise SystemExit(f"--views-topics names topics not in --topics: {sorted(unknown)}")
    for name in names:
        topic = app.topic(
            name,
            value_deserializer=AvroDeserializer(schema_registry_client_config=registry),
            key_deserializer="bytes",
        )
        sdf = app.dataframe(topic)
        sdf = sdf.update(count_decoded)
        sdf.apply(raw_row).sink(raw_sink)
        if name not in views_topics:
            continue

        # One window pipeline per views topic. Not one over a concat() of the topics: concat of different topics
        # switches on time-aligned (buffered) polling for the whole app, which a plain app does not have.
        views = sdf.filter(lambda value: value.get("event_type") == VIEW_EVENT_TYPE).apply(view_fields)
        views = views.group_by("content_id")
        views = views.update(count_windowed)
        windows = (
            views.tumbling_window(WINDOW, on_late=on_late)
            .agg(
                course_id=First("course_id"),
                views=Count(),
                unique_viewers=DistinctCount("user_id"),
                watch_seconds=Sum("watch_seconds"),
                completed_views=Sum("completed"),
            )
            .final()
        )
        windows = windows.apply(lambda result, key, timestamp, headers: minute_row(result, key), metadata=True)
        windows.sink(minute_sink)
    return app, [raw_sink, minute_sink]


def delete_internal_topics(bootstrap: str, group_id: str) -> list[str]:
    """Delete this app's repartition/changelog topics and its consumer group (named after the group: ours)."""
    admin = TopicAdmin(broker_address=bootstrap).admin_client
    prefixes = (f"repartition__{group_id}--", f"changelog__{group_id}--")
    names = [name for name in admin.list_topics(timeout=15).topics if name.startswith(prefixes)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result(timeout=60)
            except Exception as exc:  # cleanup is best effort
                log.warning("could not delete an internal topic: %s", exc)
    try:
        admin.delete_consumer_groups([group_id])[group_id].result(timeout=30)
    except Exception as exc:
        log.warning("could not delete consumer group %s: %s", group_id, exc)
    return names


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    options = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=options.loglevel, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry request otherwise
    client_kwargs: dict[str, Any] = {
        "host": options.clickhouse_host,
        "port": options.clickhouse_port,
        "user": options.clickhouse_user,
        "password": options.clickhouse_password,
        "send_receive_timeout": 120,
    }
    client = Client(**client_kwargs)
    for statement in table_ddl(options.database):
        client.execute(statement)

    stats = Stats(expected=options.expected_events)
    own_state_dir = options.state_dir is None
    state_dir = Path(tempfile.mkdtemp(prefix="quix-peer-state-")) if own_state_dir else options.state_dir
    app, sinks = build_app(options, stats, state_dir, client_kwargs)

    finished = threading.Event()
    timed_out = threading.Event()

    def stop_at_timeout() -> None:
        if finished.wait(options.timeout_s):
            return
        timed_out.set()
        log.warning("timeout of %.0f s: %d of %d records consumed", options.timeout_s, stats.consumed, stats.expected)
        # Repeat: a stop() that lands while run() is still starting up is undone by run()'s own reset.
        while not finished.wait(0):
            app.stop()
            finished.wait(1.0)

    watchdog = threading.Thread(target=stop_at_timeout, name="timeout", daemon=True)
    watchdog.start()
    try:
        app.run()
    finally:
        finished.set()
        for sink in sinks:
            sink.close()
        if own_state_dir:
            shutil.rmtree(state_dir, ignore_errors=True)
        if not options.keep_internal:
            deleted = delete_internal_topics(options.bootstrap, options.group_id)
            log.info("deleted %d internal topics and the consumer group", len(deleted))

    database = options.database
    content_minute_rows = int(client.execute(f"SELECT count() FROM {database}.content_minute_quix FINAL")[0][0])
    views_in_windows = int(client.execute(f"SELECT sum(views) FROM {database}.content_minute_quix FINAL")[0][0] or 0)
    raw_rows = int(client.execute(f"SELECT count() FROM {database}.raw_events_quix")[0][0])
    client.disconnect()

    first = stats.first_record_at
    last = stats.last_flush_at
    seconds = (last - first) if first is not None and last is not None else 0.0
    dropped = stats.views_consumed - views_in_windows
    result: dict[str, object] = {
        "events": stats.consumed,
        "decode_failures": stats.decode_failures,
        "seconds": round(seconds, 3),
        "events_per_s": round(stats.consumed / seconds, 1) if seconds > 0 else 0.0,
        "content_minute_rows": content_minute_rows,
        "views_consumed": stats.views_consumed,
        "views_in_windows": views_in_windows,
        "views_dropped_late": dropped,
        "views_late": stats.views_late,
        "views_in_unclosed_windows": dropped - stats.views_late,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "raw_rows": raw_rows,
        "processing_errors": stats.processing_errors,
        "kafka_errors": stats.kafka_errors,
        "timed_out": timed_out.is_set(),
        "startup_s": round(first - started, 3) if first is not None else None,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
