"""What the Python decoding costs inside PyFlink: pure SQL against the analytics job's pandas UDF (and a plain UDF).

    .venv/bin/python bench/udf_vs_sql.py [--events 200000] [--parallelism 1] [--no-plain-udf] [--verify]
    .venv/bin/python bench/udf_vs_sql.py --events 20000 --verify              # a quick run while developing

Needs the platform (`suuupra platform up`). `--events` simulator events (the usual mix of all event types, Confluent
Avro, record timestamp = event time) are produced into one topic of its own (bench-<id>.events, `--partitions`
partitions; an empty topic next to it), deleted at the end with their registry subjects. Then, on a local
mini-cluster in this process (`jobs.runtime.execution_environment`, so the job's Flink settings: parallelism from
`--parallelism`, python bundle size, checkpoints into a temporary folder), three bounded jobs read the whole topic
(Kafka `raw` source, `scan.bounded.mode = latest-offset`, watermark = record timestamp - 30 s as in the job) and
count events per event type in 1-minute TUMBLE windows into a `blackhole` sink:

    (i)   pure SQL: the event type from the record's `event_type` header; the Avro value is never decoded
    (ii)  pandas UDF: the analytics job's `decode_event` (`avro_decode_udf` with the job's `DECODED_FIELDS`),
          decoded rows filtered on `ok` and grouped by the decoded `event_type`, as the job's views do
    (iii) plain Python `@udf`: the same decoding, one row per call (skip with --no-plain-udf)

Each job is timed from submitting the INSERT to its end (planning, start-up and the final window firing included;
nothing subtracted): rows/s = events / that wall time. The same job over the empty topic gives its start-up
overhead, printed next to it, and the rate with that overhead taken off is shown too. The first job of the process
(an empty pure SQL one, not counted) warms the JVM up. `--verify` also runs each query once with `collect()` and
checks that the window counts add up to the events produced (slow; not timed).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic
from pyflink.common import Row
from pyflink.table import DataTypes, StreamTableEnvironment
from pyflink.table.types import DataType
from pyflink.table.udf import udf

from connectors.flink.avro_decode import STATUS_FIELDS, AvroDecode, avro_decode_udf
from jobs.analytics import DECODED_FIELDS
from jobs.runtime import execution_environment
from schemas import default_catalog
from suuupra.events import EventPublisher, make_registry
from suuupra.schema_tools.registry_sync import register_all
from suuupra.settings import Settings, TopicNames, load_settings
from suuupra.simulate.journeys import SimulationProfile, generate


class PlainAvroDecode(AvroDecode):
    """The job's decoding, called once per row (a general Python UDF) instead of once per pandas batch."""

    def eval(self, payload: bytes | None) -> Row:  # type: ignore[override]
        return Row(*self._decode_one(payload))


@contextmanager
def bench_topics(partitions: int) -> Iterator[tuple[Settings, str, str]]:
    """Settings whose every logical topic is one new topic (schemas registered), and an empty topic."""
    base = load_settings()
    run_id = uuid.uuid4().hex[:8]
    topic, empty = f"bench-{run_id}.events", f"bench-{run_id}.empty"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-udf-{run_id}-"))
    settings = base.model_copy(
        update={
            "topics": TopicNames(**dict.fromkeys(TopicNames().model_dump(), topic)),
            "flink": base.flink.model_copy(update={"checkpoint_dir": workdir / "checkpoints"}),
        }
    )
    admin = AdminClient(settings.kafka.client_config())
    # Kept forever: the simulator's event times are in the past, beyond the usual retention.
    new = [NewTopic(name, partitions, 1, config={"retention.ms": "-1"}) for name in (topic, empty)]
    for future in admin.create_topics(new).values():
        future.result(timeout=60)
    registry = make_registry(settings)
    subjects: list[str] = []
    try:
        subjects = [r.subject for r in register_all(settings, default_catalog(), registry)]
        yield settings, topic, empty
    finally:
        for future in admin.delete_topics([topic, empty]).values():
            with suppress(Exception):
                future.result(timeout=60)
        for subject in subjects:
            with suppress(Exception):
                registry.delete_subject(subject)
                registry.delete_subject(subject, permanent=True)
        shutil.rmtree(workdir, ignore_errors=True)


def produce(settings: Settings, count: int, users: int, seed: int) -> float:
    publisher = EventPublisher(settings)
    began = time.perf_counter()
    for event in generate(SimulationProfile(seed=seed, users=users), count):
        publisher.publish(event.value)
    publisher.flush(timeout=600)
    return time.perf_counter() - began


def decoded_row() -> DataType:
    """The result type of `avro_decode_udf`: status fields, then the decoded fields."""
    status = dict(zip(STATUS_FIELDS, (DataTypes.BOOLEAN(), DataTypes.STRING(), DataTypes.STRING(), DataTypes.STRING()),
                      strict=True))  # fmt: skip
    return DataTypes.ROW([
        *(DataTypes.FIELD(name, type_) for name, type_ in status.items()),
        *(DataTypes.FIELD(field.name, field.type) for field in DECODED_FIELDS),
    ])  # fmt: skip


def kafka_options(settings: Settings, topic: str) -> str:
    options = {
        "connector": "kafka",
        "topic": topic,
        "properties.group.id": f"{topic}-reader",
        "scan.startup.mode": "earliest-offset",
        "scan.bounded.mode": "latest-offset",
        "key.format": "raw",
        "key.fields": "record_key",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        **{f"properties.{key}": str(value) for key, value in settings.kafka.client_config().items()},
    }
    return ",\n".join(f"'{key}' = '{value}'" for key, value in options.items())


def declare(t_env: StreamTableEnvironment, settings: Settings, topics: dict[str, str], plain_udf: bool) -> None:
    catalog = default_catalog()
    arguments = (
        settings.registry.ccompat_url,
        DECODED_FIELDS,
        {event.record_name: event.schema.text for event in catalog.events.values()},
        catalog.envelope_fields,
    )
    t_env.create_temporary_system_function("decode_event", avro_decode_udf(*arguments))
    if plain_udf:
        t_env.create_temporary_system_function(
            "decode_event_plain", udf(PlainAvroDecode(*arguments), result_type=decoded_row())
        )
    bound = settings.flink.max_out_of_orderness_s
    t_env.execute_sql("""
        CREATE TEMPORARY TABLE counts (window_start TIMESTAMP(3), event_type STRING, events BIGINT)
        WITH ('connector' = 'blackhole')""")
    for name, topic in topics.items():
        t_env.execute_sql(f"""
            CREATE TEMPORARY TABLE src_{name} (
                record_key BYTES,
                payload BYTES,
                headers MAP<STRING, BYTES> METADATA VIRTUAL,
                event_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
                WATERMARK FOR event_ts AS event_ts - INTERVAL '{bound}' SECOND
            ) WITH ({kafka_options(settings, topic)})""")
        t_env.execute_sql(f"""
            CREATE TEMPORARY VIEW sql_{name} AS
            SELECT event_ts, DECODE(headers['event_type'], 'UTF-8') AS event_type FROM src_{name}""")
        functions = {"pandas": "decode_event", **({"plain": "decode_event_plain"} if plain_udf else {})}
        for kind, function in functions.items():
            # As the job's `decoded` and `events` views: the whole row decoded, then filtered on `ok`.
            t_env.execute_sql(f"""
                CREATE TEMPORARY VIEW {kind}_{name} AS
                SELECT event_ts, event_type FROM (
                    SELECT event_ts, d.`ok` AS ok, d.`event_type` AS event_type
                    FROM (SELECT event_ts, {function}(payload) AS d FROM src_{name}))
                WHERE ok""")


def window_query(view: str) -> str:
    return f"""
        SELECT window_start, event_type, COUNT(*) AS events
        FROM TABLE(TUMBLE(TABLE {view}, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE))
        GROUP BY window_start, window_end, event_type"""


def timed(run: Callable[[], Any]) -> float:
    began = time.perf_counter()
    run()
    return time.perf_counter() - began


@dataclass(frozen=True)
class Result:
    label: str
    empty_s: float
    full_s: float


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-plain-udf", dest="plain_udf", action="store_false", help="skip variant (iii)")
    parser.add_argument("--verify", action="store_true", help="check the window counts add up (not timed)")
    args = parser.parse_args()

    with bench_topics(args.partitions) as (settings, topic, empty):
        seconds = produce(settings, args.events, args.users, args.seed)
        print(f"{args.events:,} events produced into {topic} ({args.partitions} partitions) in {seconds:.1f} s")
        settings = settings.model_copy(
            update={"flink": settings.flink.model_copy(update={"parallelism": args.parallelism})}
        )
        env = execution_environment(settings, "udf-vs-sql")
        began = time.perf_counter()
        t_env = StreamTableEnvironment.create(env)
        print(f"TableEnvironment created in {time.perf_counter() - began:.1f} s; parallelism {args.parallelism}, "
              f"python bundle size {settings.flink.python_bundle_size}")  # fmt: skip
        declare(t_env, settings, {"full": topic, "empty": empty}, args.plain_udf)

        def insert(view: str) -> Callable[[], None]:
            return lambda: t_env.execute_sql(f"INSERT INTO counts {window_query(view)}").wait()

        print(f"first job of the process (empty input, pure SQL; not counted): {timed(insert('sql_empty')):.1f} s")
        variants = {"(i) pure SQL, no decoding": "sql", "(ii) pandas UDF decode_event": "pandas"}
        if args.plain_udf:
            variants["(iii) plain Python @udf"] = "plain"
        results = []
        for label, kind in variants.items():
            empty_s = timed(insert(f"{kind}_empty"))
            full_s = timed(insert(f"{kind}_full"))
            results.append(Result(label, empty_s, full_s))
            print(f"  {label}: empty input {empty_s:.1f} s, {args.events:,} events {full_s:.1f} s")
            if args.verify:
                with t_env.sql_query(window_query(f"{kind}_full")).execute().collect() as rows:
                    counted = sum(row[2] for row in rows)
                print(f"    verify: windows count {counted:,} events of {args.events:,}")
                assert counted == args.events, f"{label}: {counted} counted, {args.events} produced"

        print()
        if args.events < 100_000:
            print("(a small input: start-up dominates, these are not steady-state rates)")
        header = f"{'variant':<30} {'start-up (empty)':>16} {'wall':>8} {'rows/s':>10} {'rows/s minus start-up':>22}"
        print(header)
        print("-" * len(header))
        for result in results:
            net = result.full_s - result.empty_s
            net_rate = f"{args.events / net:>22,.0f}" if net > 0 else f"{'n/a':>22}"
            print(f"{result.label:<30} {result.empty_s:>14.1f} s {result.full_s:>6.1f} s "
                  f"{args.events / result.full_s:>10,.0f} {net_rate}")  # fmt: skip


if __name__ == "__main__":
    main()
