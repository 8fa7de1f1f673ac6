"""The ClickHouse sink of connectors/jvm (`'connector' = 'clickhouse'`) in a real Flink job against the real server:
every supported type arrives as the column's own type, an upsert table keeps the newest row per key, and a table
that does not fit, a value a column cannot hold or a missing table fail the job with a message naming them, and a
sink fed faster than its batches sends larger ones, waiting as much longer for them."""

from __future__ import annotations

import datetime as dt
import decimal
import random
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.clickhouse.backend import ClickHouseBackend
from connectors.flink.tables import ClickHouseSinkOptions, with_clause
from jobs.runtime import flink_configuration
from suuupra.clickhouse.migrate import server_backend
from suuupra.platform.manager import Platform
from suuupra.settings import Settings

pytestmark = pytest.mark.platform


@pytest.fixture(scope="module")
def t_env(settings: Settings, platform: Platform) -> StreamTableEnvironment:
    configuration = flink_configuration(settings, "clickhouse-sink-test")
    # A failing job must fail here, not restart from its last checkpoint until the test times out.
    configuration.set_string("restart-strategy.type", "none")
    env = StreamExecutionEnvironment.get_execution_environment(configuration)
    env.set_parallelism(1)
    return StreamTableEnvironment.create(env)


@pytest.fixture
def database(settings: Settings, platform: Platform) -> Iterator[tuple[str, ClickHouseBackend]]:
    name = f"sink_{uuid.uuid4().hex[:10]}"
    backend = server_backend(settings)
    backend.query(f"CREATE DATABASE {name}")
    yield name, backend
    backend.query(f"DROP DATABASE IF EXISTS {name}")
    backend.close()


def _sink(
    t_env: StreamTableEnvironment,
    settings: Settings,
    database: str,
    table: str,
    columns: str,
    own_task: bool = False,
    written: str | None = None,
    overrides: dict[str, str] | None = None,
) -> str:
    clickhouse = settings.clickhouse
    options = ClickHouseSinkOptions(clickhouse.host, clickhouse.http_port, database, clickhouse.user,
                                    clickhouse.password.get_secret_value(), batch_rows=3, batch_delay_s=0.2,
                                    max_retries=1, own_task=own_task)  # fmt: skip
    name = f"sink_{uuid.uuid4().hex[:8]}"
    with_options = with_clause({**options.options(table, written), **(overrides or {})})
    t_env.execute_sql(f"CREATE TEMPORARY TABLE {name} ({columns}) WITH ({with_options})")
    return name


def test_every_supported_type_arrives_as_the_columns_own_type(
    t_env: StreamTableEnvironment, settings: Settings, database: tuple[str, ClickHouseBackend]
) -> None:
    db, backend = database
    backend.query(f"""
        CREATE TABLE {db}.typed (
            s String, fixed FixedString(4), id UUID, kind Enum8('view' = 1, 'click' = 2, 'it''s' = -3),
            i8 Int8, i16 Int16, i32 Int32, i64 Int64, u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64,
            f32 Float32, f64 Float64, flag UInt8, day Date, at DateTime('UTC'), amount Decimal(18, 4),
            maybe Nullable(String), maybe_number Nullable(Int64), defaulted String, defaulted_number UInt32
        ) ENGINE = MergeTree ORDER BY s""")
    columns = """
        s STRING, fixed STRING, id STRING, kind STRING, i8 TINYINT, i16 SMALLINT, i32 INT, i64 BIGINT, u8 INT,
        u16 INT, u32 BIGINT, u64 BIGINT, f32 FLOAT, f64 DOUBLE, flag BOOLEAN, `day` DATE, `at` TIMESTAMP(3),
        amount DECIMAL(18, 4), maybe STRING, maybe_number BIGINT, defaulted STRING, defaulted_number INT"""
    sink = _sink(t_env, settings, db, "typed", columns)
    some_id = "0b7d6f2e-9c1a-4c1e-8a57-3f4d2e1b0a99"
    t_env.execute_sql(f"""
        INSERT INTO {sink} VALUES
        ('naïve ✓ "quoted"\ttab', 'ab', '{some_id}', 'it''s', CAST(-128 AS TINYINT), CAST(-32768 AS SMALLINT),
         -2147483648, -9223372036854775808, 255, 65535, 4294967295, 9223372036854775807, CAST(1.5 AS FLOAT), -0.25,
         TRUE, DATE '2026-12-03', TIMESTAMP '2026-12-03 10:11:12.999', CAST(12345.6789 AS DECIMAL(18, 4)),
         'here', 42, 'set', 7),
        ('', 'abcd', '{some_id}', 'view', CAST(0 AS TINYINT), CAST(0 AS SMALLINT), 0, 0, 0, 0, 0, 0,
         CAST(0 AS FLOAT), 0.0, FALSE, DATE '1970-01-01', TIMESTAMP '1970-01-01 00:00:00',
         CAST(-0.0001 AS DECIMAL(18, 4)), CAST(NULL AS STRING), CAST(NULL AS BIGINT), CAST(NULL AS STRING),
         CAST(NULL AS INT))""").wait()
    # The driver reads FixedString without its zero padding and UUIDs as text.
    rows = backend.query(f"SELECT * FROM {db}.typed ORDER BY s DESC").rows
    utc = dt.UTC
    assert rows == [
        ('naïve ✓ "quoted"\ttab', "ab", some_id, "it's", -128, -32768, -2147483648,
         -9223372036854775808, 255, 65535, 4294967295, 9223372036854775807, 1.5, -0.25, 1, dt.date(2026, 12, 3),
         dt.datetime(2026, 12, 3, 10, 11, 12, tzinfo=utc), decimal.Decimal("12345.6789"), "here", 42, "set", 7),
        ("", "abcd", some_id, "view", 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0, dt.date(1970, 1, 1),
         dt.datetime(1970, 1, 1, tzinfo=utc), decimal.Decimal("-0.0001"), None, None, "", 0),
    ]  # fmt: skip


@pytest.mark.parametrize("own_task", [False, True], ids=["chained", "own-task"])
def test_an_upsert_table_ends_with_the_newest_row_of_every_key(
    t_env: StreamTableEnvironment, settings: Settings, database: tuple[str, ClickHouseBackend], own_task: bool
) -> None:
    db, backend = database
    backend.query(f"CREATE TABLE {db}.counts (k String, n UInt64, total Int64) ENGINE = ReplacingMergeTree ORDER BY k")
    columns = "k STRING, n BIGINT, total BIGINT, PRIMARY KEY (k) NOT ENFORCED"
    sink = _sink(t_env, settings, db, "counts", columns, own_task)
    values = [(f"key-{i % 7}", i) for i in range(200)]
    rows = ", ".join(f"('{key}', {value})" for key, value in values)
    # Without mini-batches each input row updates its key: 200 updates of 7 keys, in batches of 3 rows.
    t_env.execute_sql(f"""
        INSERT INTO {sink}
        SELECT k, COUNT(*), SUM(v) FROM (VALUES {rows}) AS t(k, v) GROUP BY k""").wait()
    expected: dict[str, tuple[int, int]] = {}
    for key, value in values:
        count, total = expected.get(key, (0, 0))
        expected[key] = (count + 1, total + value)
    got = {k: (n, total) for k, n, total in backend.query(f"SELECT k, n, total FROM {db}.counts FINAL").rows}
    assert got == expected


def test_columns_writes_only_the_listed_columns_each_from_the_table_column_it_names(
    t_env: StreamTableEnvironment, settings: Settings, database: tuple[str, ClickHouseBackend]
) -> None:
    db, backend = database
    backend.query(f"CREATE TABLE {db}.picked (id String, n Int64, label String) ENGINE = MergeTree ORDER BY id")
    # The table has columns ClickHouse does not (bytes_in, extra) and none named `n`; `label` is listed first.
    columns = "bytes_in BYTES, id STRING, count_of BIGINT, extra STRING, label STRING"
    sink = _sink(t_env, settings, db, "picked", columns, written="label, id, n=count_of")
    rows = [(f"id-{i}", i * 3, f"label-{i}") for i in range(10)]
    values = ", ".join(f"(X'00ff', '{id_}', CAST({n} AS BIGINT), 'unused', '{label}')" for id_, n, label in rows)
    t_env.execute_sql(f"INSERT INTO {sink} VALUES {values}").wait()
    assert sorted(backend.query(f"SELECT id, n, label FROM {db}.picked").rows) == sorted(rows)


@pytest.mark.parametrize(("written", "problem"), [
    ("id, n=missing", "no table column 'missing'"),
    ("id, id", "column 'id' is listed twice"),
    ("=n", "no ClickHouse column named"),
])  # fmt: skip
def test_columns_naming_what_the_table_does_not_have_is_refused_with_the_entry(
    t_env: StreamTableEnvironment,
    settings: Settings,
    database: tuple[str, ClickHouseBackend],
    written: str,
    problem: str,
) -> None:
    db, _ = database
    sink = _sink(t_env, settings, db, "anything", "id STRING, n BIGINT", written=written)
    with pytest.raises(Exception, match="'columns' entry") as refused:
        t_env.execute_sql(f"INSERT INTO {sink} VALUES ('a', CAST(1 AS BIGINT))").wait()
    assert problem in str(refused.value)


def test_an_upsert_sink_whose_columns_leave_out_its_key_is_refused(
    t_env: StreamTableEnvironment, settings: Settings, database: tuple[str, ClickHouseBackend]
) -> None:
    db, _ = database
    sink = _sink(t_env, settings, db, "anything", "k STRING, n BIGINT, PRIMARY KEY (k) NOT ENFORCED", written="n")
    with pytest.raises(Exception, match="primary key column 'k' is not among 'columns'"):
        t_env.execute_sql(f"INSERT INTO {sink} VALUES ('a', CAST(1 AS BIGINT))").wait()


@pytest.mark.parametrize(("option", "value", "problem"), [
    ("sink.batch.interval", "0 ms", "'sink.batch.interval' must be at least 1 ms"),
    ("sink.batch.max-rows", "2", "'sink.batch.max-rows' (2) must be at least 'sink.batch.rows' (3)"),
])  # fmt: skip
def test_batches_that_could_not_be_sent_are_refused_when_the_job_is_planned(
    t_env: StreamTableEnvironment,
    settings: Settings,
    database: tuple[str, ClickHouseBackend],
    option: str,
    value: str,
    problem: str,
) -> None:
    db, _ = database
    sink = _sink(t_env, settings, db, "anything", "n BIGINT", overrides={option: value})
    with pytest.raises(Exception, match=re.escape(problem)):
        t_env.execute_sql(f"INSERT INTO {sink} VALUES (CAST(1 AS BIGINT))").wait()


def test_a_table_that_does_not_fit_is_refused_naming_each_column(
    t_env: StreamTableEnvironment, settings: Settings, database: tuple[str, ClickHouseBackend]
) -> None:
    db, backend = database
    backend.query(f"CREATE TABLE {db}.narrow (a String, b DateTime) ENGINE = MergeTree ORDER BY a")
    sink = _sink(t_env, settings, db, "narrow", "a BIGINT, b TIMESTAMP(3), c STRING")
    with pytest.raises(Exception, match="narrow") as refused:
        t_env.execute_sql(f"INSERT INTO {sink} VALUES (1, TIMESTAMP '2026-01-01 00:00:00', 'x')").wait()
    message = str(refused.value)
    assert "column 'a' is String in ClickHouse; a BIGINT cannot be written into it" in message
    assert "column 'c' does not exist" in message
    assert backend.query(f"SELECT count() FROM {db}.narrow").rows == [(0,)]


def test_a_value_the_column_cannot_hold_or_a_missing_table_fails_the_job_with_the_reason(
    t_env: StreamTableEnvironment, settings: Settings, database: tuple[str, ClickHouseBackend]
) -> None:
    db, backend = database
    backend.query(f"CREATE TABLE {db}.unsigned (n UInt32) ENGINE = MergeTree ORDER BY n")
    sink = _sink(t_env, settings, db, "unsigned", "n BIGINT")
    with pytest.raises(Exception, match=r"unsigned`?\.n: -1 is outside \[0, 4294967295\]"):
        t_env.execute_sql(f"INSERT INTO {sink} VALUES (5), (-1)").wait()
    missing = _sink(t_env, settings, db, "absent", "n BIGINT")
    with pytest.raises(Exception, match=r"absent.* does not exist .*suuupra clickhouse migrate"):
        t_env.execute_sql(f"INSERT INTO {missing} VALUES (5)").wait()


# Chained, the sink gets SQL's literal strings (Java strings: java.util.UUID parses them); in a task of its own, strings
# that crossed a serializer, as a decoded event's ids are (their bytes parsed directly).
@pytest.mark.parametrize("own_task", [False, True], ids=["java-strings", "binary-strings"])
def test_uuid_text_in_either_case_arrives_as_the_uuid_and_anything_else_fails_the_job_naming_it(
    t_env: StreamTableEnvironment, settings: Settings, database: tuple[str, ClickHouseBackend], own_task: bool
) -> None:
    db, backend = database
    backend.query(f"CREATE TABLE {db}.uuids (k UInt32, id UUID) ENGINE = MergeTree ORDER BY k")
    sink = _sink(t_env, settings, db, "uuids", "k INT, id STRING", own_task)
    ids = [str(uuid.UUID(int=random.Random(seed).getrandbits(128))) for seed in range(40)]
    ids += ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "80000000-0000-0000-8000-000000000000", "7fffffff-ffff-ffff-7fff-ffffffffffff"]  # fmt: skip
    # Lowercase, uppercase (the decoder accepts both) and concatenated text; which parser reads them is decided by
    # own_task (above), not by how the text was made.
    spellings = [(i, f"'{id_}'") for i, id_ in enumerate(ids)]
    spellings += [(len(ids) + i, f"UPPER('{id_}')") for i, id_ in enumerate(ids)]
    spellings += [(2 * len(ids) + i, f"CONCAT('{id_[:18]}', '{id_[18:]}')") for i, id_ in enumerate(ids)]
    values = ", ".join(f"({k}, {text})" for k, text in spellings)
    t_env.execute_sql(f"INSERT INTO {sink} VALUES {values}").wait()
    rows = backend.query(f"SELECT k, toString(id) FROM {db}.uuids ORDER BY k").rows
    assert rows == [(k, ids[k % len(ids)]) for k, _ in spellings]

    for bad in ("0b7d6f2e-9c1a-4c1e-8a57-3f4d2e1b0a9g", "0b7d6f2e+9c1a-4c1e-8a57-3f4d2e1b0a99", "not-a-uuid"):
        refused = _sink(t_env, settings, db, "uuids", "k INT, id STRING", own_task)
        with pytest.raises(Exception, match=rf"uuids`?\.id: '{re.escape(bad)}' is not a UUID"):
            t_env.execute_sql(f"INSERT INTO {refused} VALUES (1000, '{bad}')").wait()


def test_a_batch_grows_after_full_ones_in_a_row_and_shrinks_once_one_fills_slower(
    t_env: StreamTableEnvironment,
) -> None:
    from pyflink.java_gateway import get_gateway

    batch_sizer = get_gateway().jvm.com.suuupra.flink.clickhouse.BatchSizer
    assert (batch_sizer.FULL_BATCHES_TO_GROW, batch_sizer.MAX_INTERVAL_GROWTH) == (3, 4)
    small, grown = (100, 500), (400, 2000)  # grown: 400 rows at the rate that grew it (100 per 500 ms) take 2,000 ms

    def limits(sizer: Any, batches: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
        """The limits before each batch and after the last: ("sent" or "flushed", rows, age in ms) each."""
        seen = []
        for how, rows, age_ms in batches:
            seen.append((sizer.limit(), sizer.intervalMs()))
            getattr(sizer, how)(rows, age_ms)
        return [*seen, (sizer.limit(), sizer.intervalMs())]

    # Full batches, or by their age with fewer rows; one with fewer resets the count.
    full, old = ("sent", 100, 200), ("sent", 99, 500)
    assert limits(batch_sizer(100, 400, 500), [full, full, full, ("sent", 400, 900), ("sent", 399, 2000),
                                               full, full, old, full, full, full]) == [
        small, small, small, grown, grown, small, small, small, small, small, small, grown]  # fmt: skip
    # A checkpoint's flush never grows the batches, and shrinks them only if its rows came slower.
    assert limits(batch_sizer(100, 400, 500), [full, full, ("flushed", 1, 10_000), full, ("flushed", 50, 100),
                                               ("flushed", 50, 1000)]) == [
        small, small, small, small, grown, grown, small]  # fmt: skip
    # 1,000 rows would take 5,000 ms at that rate; the interval stops at 4 times: a batch cut by it at the rate stays.
    capped = (1000, 2000)
    assert limits(batch_sizer(100, 1000, 500), [full, full, full, ("sent", 500, 2000), ("sent", 300, 2000)]) == [
        small, small, small, capped, capped, small]  # fmt: skip
    never_grows = batch_sizer(100, 100, 500)
    assert limits(never_grows, [full] * 4)[-1] == small
    with pytest.raises(Exception, match="at least as many and the interval at least 1 ms: 100, 99, 500 ms"):
        batch_sizer(100, 99, 500)
    with pytest.raises(Exception, match="100, 100, 0 ms"):
        batch_sizer(100, 100, 0)


def test_a_sink_fed_faster_than_its_batches_sends_larger_ones(
    settings: Settings, database: tuple[str, ClickHouseBackend]
) -> None:
    # Batches leave by their size only (the interval is longer than the job), and the end of input sends the rest.
    inserts = _batches_of_a_growing_sink(settings, database, rows=2000, batch_delay_s=600)
    # Three batches of 100, then 400 each (1,900 rows), then the last 100 at the end of input.
    assert inserts == [100, 100, 100, 400, 400, 400, 400, 100]


def test_a_grown_batch_waits_as_much_longer_as_it_is_larger(
    settings: Settings, database: tuple[str, ClickHouseBackend]
) -> None:
    # Datagen sends 500 rows at once every second. A batch of 100 fills at once, and one of 400 by the next second's
    # rows, well before its 3 s (400 / 100 times the small batches' 0.75 s). With the small batches' 0.75 s, a grown
    # batch would leave by its age with the rest of a second's rows, 100 of each 500, every other batch.
    inserts = _batches_of_a_growing_sink(settings, database, rows=6000, batch_delay_s=0.75, rows_per_second=500)
    assert inserts[:3] == [100, 100, 100]
    grown = inserts[3:-1]  # the end of input sends the last batch, whatever it holds
    # A stall of more than about 2 s on a busy machine may send a batch by its age and split a burst; three small
    # batches then grow them again.
    stalled = [rows for rows in grown if rows != 400]
    assert len(grown) >= 10 and len(stalled) <= 7 and len(stalled) < len(grown) / 2, inserts


def _batches_of_a_growing_sink(
    settings: Settings,
    database: tuple[str, ClickHouseBackend],
    rows: int,
    batch_delay_s: float,
    rows_per_second: int | None = None,
) -> list[int]:
    """Runs a job writing the numbers 1..rows through a sink of batches of 100 rows growing to 400, and returns the
    rows of each insert, in order."""
    db, backend = database
    # No checkpoint: its flush would send a partial batch wherever it fell in the stream.
    configuration = flink_configuration(settings, "clickhouse-sink-growth-test")
    configuration.set_string("execution.checkpointing.interval", "1 h")
    configuration.set_string("restart-strategy.type", "none")
    env = StreamExecutionEnvironment.get_execution_environment(configuration)
    env.set_parallelism(1)
    t_env = StreamTableEnvironment.create(env)
    backend.query(f"CREATE TABLE {db}.grown (n Int64) ENGINE = MergeTree ORDER BY n")
    clickhouse = settings.clickhouse
    options = ClickHouseSinkOptions(clickhouse.host, clickhouse.http_port, db, clickhouse.user,
                                    clickhouse.password.get_secret_value(), batch_rows=100, batch_delay_s=batch_delay_s,
                                    max_retries=1, max_batch_rows=400)  # fmt: skip
    t_env.execute_sql(f"CREATE TEMPORARY TABLE grown_sink (n BIGINT) WITH ({with_clause(options.options('grown'))})")
    rate = f", 'rows-per-second' = '{rows_per_second}'" if rows_per_second else ""
    t_env.execute_sql(f"""
        CREATE TEMPORARY TABLE numbers (n BIGINT) WITH (
            'connector' = 'datagen', 'fields.n.kind' = 'sequence', 'fields.n.start' = '1', 'fields.n.end' = '{rows}'
            {rate})""")
    t_env.execute_sql("INSERT INTO grown_sink SELECT n FROM numbers").wait()
    written = backend.query(f"SELECT count(), uniqExact(n), min(n), max(n) FROM {db}.grown").rows
    assert written == [(rows, rows, 1, rows)]
    # Each insert made one part of level 0, numbered in insert order; a merge's source parts stay listed (inactive).
    inserts = backend.query(f"""
        SELECT rows FROM system.parts WHERE database = '{db}' AND table = 'grown' AND level = 0
        ORDER BY min_block_number""").rows
    return [int(part_rows) for (part_rows,) in inserts]
