"""One suite for both engines: the platform's ClickHouse 18.16 server and current ClickHouse (chdb).

Same migrations, same rows (written twice, as after a replay, plus later updates of some windows), same panels: the
results must be identical on both engines and must not double-count.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from connectors.clickhouse.backend import ClickHouseBackend
from connectors.clickhouse.embedded import EmbeddedBackend
from suuupra.cli import clickhouse_cmd
from suuupra.clickhouse.migrate import (
    MIGRATIONS_DIR,
    Migration,
    MigrationError,
    load_migrations,
    migrate,
    server_backend,
)
from suuupra.clickhouse.panels import PanelError, get_panel, load_panels, run_panel
from suuupra.platform.manager import Platform
from suuupra.settings import Settings

RUN = uuid.uuid4().hex[:8]
UTC = dt.UTC
NIL_UUID = "00000000-0000-0000-0000-000000000000"
T0 = dt.datetime(2024, 3, 31, 22, 0, tzinfo=UTC)  # the data crosses a month, so two partitions per table

CONTRACT: dict[str, list[tuple[str, str]]] = {
    "raw_events": [
        ("event_id", "UUID"), ("event_type", "String"), ("event_time", "DateTime('UTC')"),
        ("event_time_ms", "Int64"), ("user_id", "UUID"), ("correlation_id", "UUID"), ("producer", "String"),
        ("topic", "String"), ("partition", "Int32"), ("kafka_offset", "Int64"), ("payload", "String"),
    ],
    "content_minute": [
        ("window_start", "DateTime('UTC')"), ("content_id", "String"), ("course_id", "String"), ("views", "UInt64"),
        ("unique_viewers", "UInt64"), ("watch_seconds", "UInt64"), ("completed_views", "UInt64"),
    ],
    "user_sessions": [
        ("user_id", "UUID"), ("session_start", "DateTime('UTC')"), ("session_end", "DateTime('UTC')"),
        ("duration_seconds", "UInt32"), ("events", "UInt32"), ("contents_watched", "UInt32"), ("version", "UInt64"),
        ("deleted", "UInt8"),
    ],
    "revenue_minute": [
        ("window_start", "DateTime('UTC')"), ("course_id", "String"), ("payment_method", "String"),
        ("currency", "String"), ("revenue_minor", "Int64"), ("payments", "UInt64"),
    ],
    "funnel_hour": [
        ("window_start", "DateTime('UTC')"), ("viewed", "UInt64"), ("ordered", "UInt64"), ("paid", "UInt64"),
        ("enrolled", "UInt64"),
    ],
    "registrations_minute": [("window_start", "DateTime('UTC')"), ("registrations", "UInt64")],
    "late_events": [
        ("event_id", "UUID"), ("event_type", "String"), ("user_id", "UUID"), ("event_time", "DateTime('UTC')"),
        ("watermark", "DateTime('UTC')"), ("lateness_ms", "Int64"), ("topic", "String"), ("partition", "Int32"),
        ("kafka_offset", "Int64"), ("reason", "String"),
    ],
    "content_dim": [
        ("content_id", "String"), ("course_id", "String"), ("title", "String"), ("course_title", "String"),
        ("revision", "Int32"), ("published_at", "DateTime('UTC')"),
    ],
    "fraud_decisions": [
        ("decision_id", "String"), ("payment_id", "String"), ("order_id", "String"), ("user_id", "String"),
        ("payment_time", "DateTime('UTC')"), ("decided_at", "DateTime('UTC')"), ("decided_at_ms", "Int64"),
        ("decision", "String"), ("score", "Float64"), ("reasons", "String"), ("model_version", "String"),
        ("first_rank", "UInt64"),
    ],
}  # fmt: skip
KEYS = {
    "raw_events": ("user_id", "event_type", "event_time", "event_id"),
    "content_minute": ("window_start", "content_id"),
    "user_sessions": ("user_id", "session_start"),
    "revenue_minute": ("window_start", "course_id", "payment_method", "currency"),
    "funnel_hour": ("window_start",),
    "registrations_minute": ("window_start",),
    "late_events": ("event_type", "event_time", "event_id"),
    "content_dim": ("content_id",),
    "fraud_decisions": ("decision_id",),
}
REQUIRED_PANELS = {
    "content_engagement",
    "engagement_per_minute",
    "revenue_by_method",
    "revenue_by_course",
    "funnel",
    "registrations",
    "sessions",
    "late_events",
}

Rows = dict[str, list[tuple[Any, ...]]]


def payload_json(value: dict[str, Any], compact: bool) -> str:
    # Both spellings: visitParamExtract* (all 18.16 has for JSON) misses fields after `": "`, the panels must not.
    if compact:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(value, sort_keys=True)


def _uid(n: int) -> str:
    return str(uuid.UUID(int=n))


def _minute(m: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=m)


def sample_rows() -> Rows:
    """Deterministic rows for every table. Datetimes are aware UTC, some naive (naive means UTC)."""
    rows: Rows = defaultdict(list)
    for i in range(60):
        user = _uid(1000 + i % 7)
        content = f"content-{i % 3}"
        when = _minute(i * 3) + dt.timedelta(seconds=i % 60)
        event_type = "clickstream.content_viewed" if i % 4 else "user.registered"
        payload: dict[str, Any] = {"content_id": content, "course_id": f"course-{i % 3 % 2}", "watch_seconds": 30 + i}
        if i % 10 == 0:
            payload["note"] = "quote ' backslash \\ newline \n tab \t unicode ₹"
        rows["raw_events"].append(
            (_uid(i), event_type, when if i % 2 else when.replace(tzinfo=None), int(when.timestamp() * 1000),
             user, _uid(5000 + i // 5), "simulator", "clickstream.events", i % 3, 100 + i,
             payload_json(payload, compact=i % 3 == 0))
        )  # fmt: skip
    for m in range(0, 180, 1):
        for c in range(3):
            if (m + c) % 4:
                continue
            views = 1 + (m * 7 + c) % 5
            rows["content_minute"].append(
                (_minute(m), f"content-{c}", f"course-{c % 2}", views, max(1, views - 1), views * 41, views // 2)
            )
    methods = ("UPI", "CARD", "OTHER")
    currencies = ("INR", "INR", "JPY", "KWD")
    for m in range(0, 180, 2):
        course = f"course-{m % 3}"
        for k, method in enumerate(methods):
            if (m + k) % 3 == 0:
                continue
            currency = currencies[(m // 2 + k) % len(currencies)]
            amount = 49_900 * (1 + k) + m * 101
            rows["revenue_minute"].append((_minute(m), course, method, currency, amount, 1 + k))
    # a refund-heavy minute: negative revenue must print with its sign
    rows["revenue_minute"].append((_minute(1), "course-9", "CARD", "INR", -1_005, 1))
    for h in range(4):
        rows["funnel_hour"].append((T0 + dt.timedelta(hours=h), 40 + h, 10 + h, 6 + h, 5 + h))
    rows["funnel_hour"].append((T0 + dt.timedelta(hours=4), 0, 0, 0, 0))
    for m in range(0, 180, 5):
        rows["registrations_minute"].append((_minute(m), 1 + m % 4))
    for s in range(30):
        start = _minute(s * 6)
        duration = 60 + s * 37
        rows["user_sessions"].append(
            (_uid(2000 + s % 9), start, start + dt.timedelta(seconds=duration), duration, 3 + s % 5, s % 4, 1, 0)
        )
    for e in range(25):
        when = _minute(e * 7)
        lateness = 1_000 + e * 997
        rows["late_events"].append(
            (_uid(9000 + e), ("clickstream.content_viewed", "payment.approved", "order.paid")[e % 3], _uid(3000 + e),
             when, when + dt.timedelta(milliseconds=lateness), lateness, "clickstream.events", e % 3, 10_000 + e,
             "older than its partition's newest event")
        )  # fmt: skip
    # Revisions in increasing order, so the last written is also the highest (what ReplacingMergeTree(revision) keeps).
    for c in range(3):
        for revision in range(1, 3 + c):
            rows["content_dim"].append(
                (f"content-{c}", f"course-{c % 2}", f"Lesson {c} (rev {revision})", f"Course {c % 2}", revision,
                 _minute(revision))
            )  # fmt: skip
    for d in range(40):
        when = _minute(d * 4)
        score = round((d * 37 % 100) / 100 + 0.0049, 4)
        decision = "REJECT" if score >= 0.9 else "REVIEW" if score >= 0.6 else "APPROVE"
        reasons = "" if d % 5 == 0 else f"devices_5m_log=1.{d % 7} (+2.{d % 9}0); failed_5m_log=0.7 (+0.{d % 4}5)"
        rows["fraud_decisions"].append(
            (_uid(7000 + d), _uid(7100 + d), _uid(7200 + d), _uid(1000 + d % 7), when, when + dt.timedelta(seconds=1),
             int(when.timestamp() * 1000) + 1000, decision, score, reasons, "fraud-lr-test",
             2**62 - int(when.timestamp() * 1000))
        )  # fmt: skip
    return dict(rows)


def updated_rows(rows: Rows) -> Rows:
    """Later versions of some windows (the job re-emitting a window after late data): the last write must win."""
    content = [(*row[:3], row[3] + 10, row[4] + 1, row[5] + 100, row[6] + 3) for row in rows["content_minute"][:4]]
    revenue = [(*row[:4], row[4] + 7, row[5] + 1) for row in rows["revenue_minute"][:3]]
    funnel = [(rows["funnel_hour"][0][0], 50, 20, 12, 11)]
    return {"content_minute": content, "revenue_minute": revenue, "funnel_hour": funnel}


def final_rows(*batches: Rows) -> Rows:
    """What FINAL reads: per ORDER BY key the last written row."""
    final: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = defaultdict(dict)
    for batch in batches:
        for table, rows in batch.items():
            names = [name for name, _ in CONTRACT[table]]
            positions = [names.index(key) for key in KEYS[table]]
            for row in rows:
                key = tuple(_utc(row[p]) for p in positions)
                final[table][key] = tuple(_utc(value) for value in row)
    return {table: list(rows.values()) for table, rows in final.items()}


def _utc(value: Any) -> Any:
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def load(backend: ClickHouseBackend, database: str) -> Rows:
    """Writes the sample as the job would after a restore: everything twice, then updates."""
    base = sample_rows()
    updates = updated_rows(base)
    for batch in (base, base, updates):
        for table, rows in batch.items():
            backend.insert(f"{database}.{table}", [name for name, _ in CONTRACT[table]], rows)
    return final_rows(base, updates)


# --- fixtures ------------------------------------------------------------------------------------------------------
class Databases:
    """Unique database names on one backend, dropped at the end."""

    def __init__(self, backend: ClickHouseBackend) -> None:
        self.backend = backend
        self.created: list[str] = []

    def new(self, label: str) -> str:
        name = f"suuupra_test_{RUN}_{label}"
        self.created.append(name)
        return name

    def drop_all(self) -> None:
        for name in self.created:
            self.backend.execute(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture(scope="module")
def server(settings: Settings, platform: Platform) -> Iterator[tuple[ClickHouseBackend, Databases]]:
    backend = server_backend(settings)
    databases = Databases(backend)
    yield backend, databases
    databases.drop_all()
    backend.close()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClickHouseBackend, Databases]]:
    backend = EmbeddedBackend(tmp_path_factory.mktemp("chdb") / "data")
    databases = Databases(backend)
    yield backend, databases
    databases.drop_all()
    backend.close()


@pytest.fixture(params=["server", "embedded"])
def engine(request: pytest.FixtureRequest) -> tuple[ClickHouseBackend, Databases]:
    pair: tuple[ClickHouseBackend, Databases] = request.getfixturevalue(request.param)
    return pair


@pytest.fixture(scope="module")
def loaded(
    server: tuple[ClickHouseBackend, Databases], embedded: tuple[ClickHouseBackend, Databases]
) -> dict[str, tuple[ClickHouseBackend, str, Rows]]:
    """Both engines migrated and holding the same sample; the expected FINAL view of it alongside."""
    result = {}
    for backend, databases in (server, embedded):
        database = databases.new("panels")
        migrate(backend, database)
        result[backend.name] = (backend, database, load(backend, database))
    return result


@pytest.fixture(params=["server", "embedded"])
def loaded_engine(
    request: pytest.FixtureRequest, loaded: dict[str, tuple[ClickHouseBackend, str, Rows]]
) -> tuple[ClickHouseBackend, str, Rows]:
    return loaded[request.param]


# --- migrations ----------------------------------------------------------------------------------------------------
def test_migrations_apply_then_apply_nothing(engine: tuple[ClickHouseBackend, Databases]) -> None:
    backend, databases = engine
    database = databases.new("migrate")
    files = load_migrations()

    dry = migrate(backend, database, dry_run=True)
    assert [m.version for m in dry.pending] == [m.version for m in files]
    assert backend.execute(f"SELECT count() FROM system.databases WHERE name = '{database}'") == [(0,)]

    first = migrate(backend, database)
    assert [m.version for m in first.applied] == [m.version for m in files]
    second = migrate(backend, database)
    assert second.applied == []
    assert [m.version for m in second.already_applied] == [m.version for m in files]

    history = backend.execute(
        f"SELECT version, name, checksum FROM {database}.schema_migrations FINAL ORDER BY version"
    )
    assert history == [(m.version, m.name, m.checksum) for m in files]
    for table, columns in CONTRACT.items():
        described = backend.execute(
            # declaration order on both engines (18.16 has no `position` column to sort by)
            f"SELECT name, type FROM system.columns WHERE database = '{database}' AND table = '{table}'"
        )
        assert described == columns, table
        engine_name = backend.execute(
            f"SELECT engine FROM system.tables WHERE database = '{database}' AND name = '{table}'"
        )
        assert engine_name == [("ReplacingMergeTree",)], table


def test_changed_applied_migration_is_refused(engine: tuple[ClickHouseBackend, Databases], tmp_path: Path) -> None:
    backend, databases = engine
    database = databases.new("changed")
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, folder)
    migrate(backend, database, folder)

    edited = sorted(folder.glob("0002_*.sql"))[0]
    edited.write_text(edited.read_text() + "\nCREATE TABLE IF NOT EXISTS {database}.sneaky (x UInt8) ENGINE = Log;\n")
    (folder / "0999_later.sql").write_text("CREATE TABLE IF NOT EXISTS {database}.later (x UInt8) ENGINE = Log;\n")
    with pytest.raises(MigrationError, match=r"0002_.*changed after it was applied.*new migration file"):
        migrate(backend, database, folder)
    # the check comes first: not even the new, valid file ran
    tables = backend.execute(
        f"SELECT name FROM system.tables WHERE database = '{database}' AND name IN ('sneaky', 'later')"
    )
    assert tables == []


def test_broken_migration_is_not_recorded(engine: tuple[ClickHouseBackend, Databases], tmp_path: Path) -> None:
    backend, databases = engine
    database = databases.new("broken")
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE DATABASE IF NOT EXISTS {database};\n")
    (folder / "0002_bad.sql").write_text("CREATE TABLE {database}.bad (x NoSuchType) ENGINE = Log;\n")
    with pytest.raises(MigrationError, match=r"0002_bad.sql: statement 1 failed.*fix the file"):
        migrate(backend, database, folder)
    recorded = backend.execute(f"SELECT version FROM {database}.schema_migrations FINAL ORDER BY version")
    assert recorded == [(1,)]


def _migrated_up_to(backend: ClickHouseBackend, database: str, number: str, tmp_path: Path) -> Migration:
    """`database` migrated by every file before migration `number`; returns that migration."""
    before = tmp_path / "before"
    before.mkdir()
    rebuild = next(m for m in load_migrations() if m.label.startswith(f"{number}_"))
    for migration in MIGRATIONS_DIR.glob("*.sql"):
        if migration.name < rebuild.path.name:
            shutil.copy(migration, before)
    migrate(backend, database, before)
    return rebuild


def test_raw_events_of_text_ids_get_uuid_ids_and_the_old_table_keeps_every_row(
    engine: tuple[ClickHouseBackend, Databases], tmp_path: Path
) -> None:
    """0006 copies raw_events into a table with UUID ids: every row whose ids are UUIDs (in either case) is copied,
    the others are not, and the old table stays with every row; a run that failed before its RENAME is made good by
    the next one."""
    backend, databases = engine
    database = databases.new("uuid_ids")
    rebuild = _migrated_up_to(backend, database, "0006", tmp_path)
    ids_type = (
        f"SELECT type FROM system.columns WHERE database = '{database}' AND table = 'raw_events' AND name = 'user_id'"
    )
    assert backend.execute(ids_type) == [("String",)]
    columns = [c for c, _ in CONTRACT["raw_events"]]
    rows = sample_rows()["raw_events"]
    rows[1] = (rows[1][0].upper(), *rows[1][1:4], rows[1][4].upper(), rows[1][5].upper(), *rows[1][6:])
    # Ids the job archived before it checked them: not UUIDs.
    rows[2] = ("null", *rows[2][1:])
    rows[3] = (*rows[3][:4], "", *rows[3][5:])
    rows[4] = (*rows[4][:5], "journey-1", *rows[4][6:])
    backend.insert(f"{database}.raw_events", columns, rows)
    read = f"SELECT {', '.join(columns)} FROM {database}.{{table}}"
    written = sorted(backend.execute(read.format(table="raw_events")))
    # A run that stopped after its copy: the next one makes the copy again.
    for statement in rebuild.statements(database)[:3]:
        backend.execute(statement)

    assert rebuild.label in [m.label for m in migrate(backend, database).applied]
    assert backend.execute(ids_type) == [("UUID",)]
    lowercase = [(row[0].lower(), *row[1:4], row[4].lower(), row[5].lower(), *row[6:]) for row in written]
    uuids_only = [row for row in lowercase if row[0] != "null" and row[4] != "" and row[5] != "journey-1"]
    assert sorted(backend.execute(read.format(table="raw_events"))) == uuids_only
    assert sorted(backend.execute(read.format(table="raw_events_before_0006"))) == written
    tables = f"SELECT name FROM system.tables WHERE database = '{database}' AND name LIKE 'raw_events%' ORDER BY name"
    assert backend.execute(tables) == [("raw_events",), ("raw_events_before_0006",)]


def test_late_events_and_sessions_of_text_ids_get_uuid_ids_and_the_old_tables_keep_every_row(
    engine: tuple[ClickHouseBackend, Databases], tmp_path: Path
) -> None:
    """0007 does for late_events' and user_sessions' ids what 0006 does for raw_events': rows whose ids are UUIDs (in
    either case) are copied, an empty id (an event whose writer had no such field) becomes the nil UUID, as the job
    now writes it, rows with other ids are not copied, the old tables stay with every row, and a run that failed
    before its RENAME is made good by the next one."""
    backend, databases = engine
    database = databases.new("uuid_ids_0007")
    rebuild = _migrated_up_to(backend, database, "0007", tmp_path)
    ids = {"late_events": (0, 2), "user_sessions": (0,)}  # the positions of each table's ids in its rows

    def id_types(table: str) -> list[tuple[Any, ...]]:
        return backend.execute(f"SELECT name, type FROM system.columns WHERE database = '{database}' "
                               f"AND table = '{table}' AND name IN ('event_id', 'user_id') ORDER BY name")  # fmt: skip

    assert id_types("late_events") == [("event_id", "String"), ("user_id", "String")]
    written: dict[str, list[tuple[Any, ...]]] = {}
    for table, positions in ids.items():
        columns = [c for c, _ in CONTRACT[table]]
        rows = sample_rows()[table]
        # Ids with hex letters, in uppercase.
        rows[1] = tuple(str(uuid.UUID(int=0xABCDEF00 + i)).upper() if i in positions else value
                        for i, value in enumerate(rows[1]))  # fmt: skip
        rows[2] = tuple("null" if i == positions[0] else value for i, value in enumerate(rows[2]))  # not a UUID
        rows[3] = tuple("" if i == positions[-1] else value for i, value in enumerate(rows[3]))
        backend.insert(f"{database}.{table}", columns, rows)
        written[table] = sorted(backend.execute(f"SELECT {', '.join(columns)} FROM {database}.{table}"))
    # A run that stopped after its first copy: the next one makes the copies again.
    for statement in rebuild.statements(database)[:3]:
        backend.execute(statement)

    assert rebuild.label in [m.label for m in migrate(backend, database).applied]
    assert id_types("late_events") == [("event_id", "UUID"), ("user_id", "UUID")]
    assert id_types("user_sessions") == [("user_id", "UUID")]
    copied: dict[str, list[tuple[Any, ...]]] = {}
    for table, positions in ids.items():
        selected = ", ".join(c for c, _ in CONTRACT[table])
        as_uuids = [tuple((value.lower() or NIL_UUID) if i in positions else value for i, value in enumerate(row))
                    for row in written[table]]  # fmt: skip
        copied[table] = sorted(row for row in as_uuids if all(row[i] != "null" for i in positions))
        assert len(copied[table]) == len(as_uuids) - 1
        assert any(any(c in "abcdef" for c in row[positions[0]]) for row in copied[table])
        assert sorted(backend.execute(f"SELECT {selected} FROM {database}.{table}")) == copied[table]
        assert sorted(backend.execute(f"SELECT {selected} FROM {database}.{table}_before_0007")) == written[table]
    # A late event's id finds its raw event without a conversion (a String id would not join a UUID one).
    late = copied["late_events"][0]
    backend.insert(f"{database}.raw_events", ["event_id", "event_type", "user_id"], [(late[0], late[1], late[2])])
    raw_ids = f"(SELECT event_id FROM {database}.raw_events) AS raw"
    joined = backend.execute(f"SELECT event_id FROM {database}.late_events ALL INNER JOIN {raw_ids} USING event_id")
    assert joined == [(late[0],)]


# --- values --------------------------------------------------------------------------------------------------------
def test_datetimes_are_utc_whatever_their_form(engine: tuple[ClickHouseBackend, Databases]) -> None:
    backend, databases = engine
    database = databases.new("datetimes")
    migrate(backend, database)
    moment = dt.datetime(2024, 6, 1, 12, 30, 15, tzinfo=UTC)
    forms = {
        "aware-utc": moment,
        "naive": moment.replace(tzinfo=None),
        "aware-ist": moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))),
        "with-micros": moment.replace(microsecond=999_999),
    }
    # distinct keys: current ClickHouse already collapses equal keys within one insert (optimize_on_insert)
    backend.insert(
        f"{database}.raw_events",
        ["event_type", "event_time", "event_time_ms"],
        [(form, value, i) for i, (form, value) in enumerate(forms.items())],
    )
    rows = backend.execute(
        f"SELECT event_time, toUnixTimestamp(event_time), event_type FROM {database}.raw_events ORDER BY event_time_ms"
    )
    assert [(when, seconds) for when, seconds, _ in rows] == [(moment, int(moment.timestamp()))] * len(forms)
    assert all(when.utcoffset() == dt.timedelta(0) for when, _, _ in rows)


def test_strings_and_integers_round_trip(engine: tuple[ClickHouseBackend, Databases]) -> None:
    backend, databases = engine
    database = databases.new("strings")
    migrate(backend, database)
    tricky = ["plain", "it's", "back\\slash", "new\nline\ttab\r", "nul\0byte", "₹ हिन्दी 🎓", "", "'; DROP TABLE x; --"]
    rows = [(f"e{i}", text, -(2**63) + i, 2**31 - 1 - i) for i, text in enumerate(tricky)]
    backend.insert(f"{database}.raw_events", ["event_type", "payload", "kafka_offset", "partition"], rows)
    stored = backend.execute(f"SELECT event_type, payload, kafka_offset, partition FROM {database}.raw_events")
    assert sorted(stored) == sorted(rows)


def test_literal_insert_is_refused_not_hung(server: tuple[ClickHouseBackend, Databases]) -> None:
    backend, _ = server
    with pytest.raises(ValueError, match=r"use insert\(table, columns, rows\)"):
        backend.execute("INSERT INTO system.one (dummy) VALUES (1)")


# --- panels --------------------------------------------------------------------------------------------------------
def test_the_panels_exist_and_describe_themselves() -> None:
    panels = load_panels()
    assert set(panels) >= REQUIRED_PANELS
    for panel in panels.values():
        assert panel.title and panel.description
        assert "FINAL" in panel.template
    with pytest.raises(PanelError, match="known panels: content_engagement"):
        get_panel("nope")


@pytest.mark.parametrize("hours", [0, 1])
def test_every_panel_gives_the_same_answer_on_both_engines(
    loaded: dict[str, tuple[ClickHouseBackend, str, Rows]], hours: int
) -> None:
    server_backend_, server_db, _ = loaded["server"]
    embedded_backend, embedded_db, _ = loaded["embedded"]
    for name in load_panels():
        on_server = run_panel(server_backend_, name, server_db, hours=hours)
        on_embedded = run_panel(embedded_backend, name, embedded_db, hours=hours)
        assert on_server[1], f"panel {name} returned no rows"
        assert on_server == on_embedded, name
        limited = run_panel(server_backend_, name, server_db, hours=hours, limit=2)
        assert limited[1] == on_server[1][:2], name


def _rows_as_dicts(columns: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_replayed_rows_count_once(loaded_engine: tuple[ClickHouseBackend, str, Rows]) -> None:
    backend, database, final = loaded_engine

    # content: sums over the last version of every window; distinct viewers from the raw events
    expected: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for _, content, course, views, _, watch, completed in final["content_minute"]:
        totals = expected[(content, course)]
        totals[0] += views
        totals[1] += watch
        totals[2] += completed
    viewers: dict[str, set[str]] = defaultdict(set)
    for row in final["raw_events"]:
        if row[1] == "clickstream.content_viewed":
            viewers[json.loads(row[10])["content_id"]].add(row[4])
    got = _rows_as_dicts(*run_panel(backend, "content_engagement", database))
    assert {(r["content_id"], r["course_id"]): [r["views"], r["watch_seconds"], r["completed_views"]] for r in got} == (
        expected
    )
    for r in got:
        assert r["unique_viewers"] == len(viewers[r["content_id"]])
        assert r["completion_rate"] == pytest.approx(r["completed_views"] / r["views"], abs=5e-5)

    # the raw archive itself: FINAL hides the replay
    assert backend.execute(f"SELECT count() FROM {database}.raw_events FINAL") == [(len(final["raw_events"]),)]
    assert backend.execute(f"SELECT count() FROM {database}.raw_events") == [(2 * len(final["raw_events"]),)]

    funnel = _rows_as_dicts(*run_panel(backend, "funnel", database))
    by_hour = {r["hour"]: r for r in funnel}
    first = by_hour[T0]
    assert (first["viewed"], first["ordered"], first["paid"], first["enrolled"]) == (50, 20, 12, 11)
    assert first["view_to_order"] == 0.4
    assert by_hour[T0 + dt.timedelta(hours=4)]["view_to_order"] == 0  # no division by zero
    assert len(funnel) == len(final["funnel_hour"])

    registrations = run_panel(backend, "registrations", database)[1]
    assert sum(count for _, count in registrations) == sum(count for _, count in final["registrations_minute"])

    late = _rows_as_dicts(*run_panel(backend, "late_events", database))
    assert sum(r["late_events"] for r in late) == len(final["late_events"])
    assert max(r["max_lateness_ms"] for r in late) == max(row[5] for row in final["late_events"])

    sessions = run_panel(backend, "sessions", database)[1]
    assert sum(row[1] for row in sessions) == len(final["user_sessions"])


def test_money_stays_integer(loaded_engine: tuple[ClickHouseBackend, str, Rows]) -> None:
    backend, database, final = loaded_engine
    result = backend.query(
        f"SELECT sum(revenue_minor), sum(payments) FROM {database}.revenue_minute FINAL WHERE currency = 'INR'"
    )
    assert result.types == ["Int64", "UInt64"]
    expected_inr = sum(row[4] for row in final["revenue_minute"] if row[3] == "INR")
    assert result.rows == [(expected_inr, sum(row[5] for row in final["revenue_minute"] if row[3] == "INR"))]

    expected: dict[tuple[str, str], int] = defaultdict(int)
    for _, course, _, currency, amount, _ in final["revenue_minute"]:
        expected[(course, currency)] += amount
    by_course = _rows_as_dicts(*run_panel(backend, "revenue_by_course", database))
    assert {(r["course_id"], r["currency"]): r["revenue_minor"] for r in by_course} == expected
    digits = {"INR": 2, "JPY": 0, "KWD": 3}
    for r in by_course:
        assert type(r["revenue_minor"]) is int
        scale = 10 ** digits[r["currency"]]
        sign = "-" if r["revenue_minor"] < 0 else ""
        whole, part = divmod(abs(r["revenue_minor"]), scale)
        shown = f"{sign}{whole}" + (f".{part:0{digits[r['currency']]}d}" if digits[r["currency"]] else "")
        assert r["revenue"] == shown
    assert {r["revenue"] for r in by_course if r["course_id"] == "course-9"} == {"-10.05"}

    by_method = _rows_as_dicts(*run_panel(backend, "revenue_by_method", database))
    assert sum(r["revenue_minor"] for r in by_method) == sum(expected.values())
    assert all(type(r["revenue_minor"]) is int and type(r["payments"]) is int for r in by_method)


# --- command line --------------------------------------------------------------------------------------------------
def test_cli_migrates_and_shows_panels(settings: Settings, server: tuple[ClickHouseBackend, Databases]) -> None:
    _, databases = server
    database = databases.new("cli")
    cli = typer.Typer()
    cli.add_typer(clickhouse_cmd.app, name="clickhouse")
    cli.command("query")(clickhouse_cmd.query)
    runner = CliRunner()
    env = {"SUUUPRA_CLICKHOUSE__DATABASE": database, "COLUMNS": "200"}
    invoke: Callable[[list[str]], Any] = lambda args: runner.invoke(cli, args, env=env)  # noqa: E731

    first = invoke(["clickhouse", "migrate"])
    assert first.exit_code == 0, first.output
    assert "applied 0001_raw_events.sql" in first.output
    again = invoke(["clickhouse", "migrate"])
    assert again.exit_code == 0, again.output
    assert "already applied, nothing to do" in again.output

    listed = invoke(["clickhouse", "panels"])
    assert listed.exit_code == 0
    assert "revenue_by_method" in listed.output

    shown = invoke(["query", "funnel", "--limit", "3"])
    assert shown.exit_code == 0, shown.output
    assert "Purchase funnel" in shown.output

    unknown = invoke(["query", "nope"])
    assert unknown.exit_code == 1
    assert "known panels" in unknown.output
