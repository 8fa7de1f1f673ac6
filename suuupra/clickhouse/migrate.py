"""Schema migrations: ordered SQL files applied once each, recorded in `<database>.schema_migrations`.

Files are `infra/clickhouse/migrations/NNNN_name.sql`; `{database}` in them is replaced by the target database;
statements end with `;` at the end of a line. An applied file must never change (its checksum is recorded): add a new
file instead. ClickHouse has no transactional DDL, so a file that fails half-way stays unrecorded and is run again
in full next time: write every statement so it can run twice (`IF NOT EXISTS`, `IF EXISTS`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from connectors.clickhouse.backend import ClickHouseBackend, ClickHouseError, validate_database_name
from connectors.clickhouse.server import ServerBackend
from suuupra.settings import PROJECT_ROOT, ClickHouseSettings, Settings

MIGRATIONS_DIR = PROJECT_ROOT / "infra" / "clickhouse" / "migrations"
HISTORY_TABLE = "schema_migrations"
PLACEHOLDER = "{database}"

_FILE_NAME = re.compile(r"^(\d{4})_([A-Za-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """Migrations that cannot be applied as they are; the message says what to fix."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    text: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self, database: str) -> list[str]:
        return split_statements(self.text.replace(PLACEHOLDER, validate_database_name(database)))


@dataclass(frozen=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: dt.datetime

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


@dataclass
class MigrationReport:
    database: str
    applied: list[Migration] = field(default_factory=list)
    already_applied: list[Migration] = field(default_factory=list)
    pending: list[Migration] = field(default_factory=list)
    """What a dry run would apply (empty after a real run)."""


def checksum(text: str) -> str:
    # Line endings normalised: a checkout with CRLF must not look like an edited migration.
    return hashlib.sha256(text.replace("\r\n", "\n").encode("utf-8")).hexdigest()


def split_statements(sql: str) -> list[str]:
    """Statements end with `;` at a line end; comment-only chunks are dropped, and a `;` ending a `--` comment line
    does not end a statement."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.endswith(";") and not stripped.startswith("--"):
            current.append(line.rstrip()[:-1])
            statements.append("\n".join(current))
            current = []
        else:
            current.append(line)
    statements.append("\n".join(current))
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(statement: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines())


def load_migrations(folder: Path = MIGRATIONS_DIR) -> list[Migration]:
    if not folder.is_dir():
        raise MigrationError(f"migrations folder {folder} does not exist")
    migrations: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(
                f"{path.name} in {folder} is not named NNNN_name.sql (4 digits, letters, digits, underscores): "
                "rename it so its order is clear"
            )
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(
                f"{path.name} and {migrations[version].path.name} share version {version:04d}: renumber the newer one"
            )
        text = path.read_text(encoding="utf-8")
        if not split_statements(text):
            raise MigrationError(f"{path.name} holds no SQL statement")
        migrations[version] = Migration(version, match.group(2), path, text, checksum(text))
    return [migrations[version] for version in sorted(migrations)]


def _history(database: str) -> str:
    return f"{database}.{HISTORY_TABLE}"


def ensure_history_table(backend: ClickHouseBackend, database: str) -> None:
    validate_database_name(database)
    backend.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    # ReplacingMergeTree read with FINAL: two migrators racing record a version twice, it still counts once.
    backend.execute(
        f"CREATE TABLE IF NOT EXISTS {_history(database)} (version UInt32, name String, checksum String, "
        "applied_at DateTime('UTC')) ENGINE = ReplacingMergeTree ORDER BY version"
    )


def applied_migrations(backend: ClickHouseBackend, database: str) -> list[AppliedMigration]:
    """The recorded migrations, oldest first; none when the database or its history table does not exist."""
    validate_database_name(database)
    exists = backend.execute(
        f"SELECT count() FROM system.tables WHERE database = '{database}' AND name = '{HISTORY_TABLE}'"
    )
    if not exists or not exists[0][0]:
        return []
    rows = backend.execute(
        f"SELECT version, name, checksum, applied_at FROM {_history(database)} FINAL ORDER BY version"
    )
    return [AppliedMigration(int(v), str(n), str(c), a) for v, n, c, a in rows]


def _verify(migrations: list[Migration], applied: list[AppliedMigration], folder: Path) -> None:
    by_version = {migration.version: migration for migration in migrations}
    for record in applied:
        migration = by_version.get(record.version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {record.label} applied, but {folder} has no file for version "
                f"{record.version:04d}: run migrations from a checkout that has it (never delete applied files)"
            )
        if migration.checksum != record.checksum:
            raise MigrationError(
                f"{migration.path.name} changed after it was applied on {record.applied_at:%Y-%m-%d %H:%M:%S} UTC "
                f"(checksum {record.checksum[:12]}..., now {migration.checksum[:12]}...): restore the file as it was "
                "and put the change in a new migration file with the next number"
            )


def migrate(
    backend: ClickHouseBackend,
    database: str,
    folder: Path = MIGRATIONS_DIR,
    *,
    dry_run: bool = False,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> MigrationReport:
    """Applies the migrations not yet recorded, in version order. Checks every recorded one first: nothing runs if
    an applied file changed or is missing."""
    validate_database_name(database)
    migrations = load_migrations(folder)
    applied = applied_migrations(backend, database)
    _verify(migrations, applied, folder)
    done = {record.version for record in applied}
    report = MigrationReport(database)
    report.already_applied = [m for m in migrations if m.version in done]
    pending = [m for m in migrations if m.version not in done]
    if dry_run:
        report.pending = pending
        return report
    if not pending:
        return report
    ensure_history_table(backend, database)
    for migration in pending:
        for number, statement in enumerate(migration.statements(database), start=1):
            try:
                backend.execute(statement)
            except ClickHouseError as error:
                # The file is not recorded, so it runs again in full next time: that is why statements must be
                # re-runnable.
                remedy = (
                    "ClickHouse could not be reached: run migrate again once it is"
                    if error.retryable
                    else "fix the file (it is not recorded as applied) and run migrate again"
                )
                raise MigrationError(f"{migration.path.name}: statement {number} failed: {error}. {remedy}") from error
        backend.insert(
            _history(database),
            ("version", "name", "checksum", "applied_at"),
            [(migration.version, migration.name, migration.checksum, clock())],
        )
        report.applied.append(migration)
    return report


def server_backend(
    settings: Settings | ClickHouseSettings,
    *,
    connect_timeout_s: float = 5.0,
    send_receive_timeout_s: float = 60.0,
) -> ServerBackend:
    """A native-protocol backend for the configured ClickHouse server."""
    clickhouse = settings.clickhouse if isinstance(settings, Settings) else settings
    return ServerBackend(
        clickhouse.host,
        clickhouse.port,
        user=clickhouse.user,
        password=clickhouse.password.get_secret_value(),
        secure=clickhouse.secure,
        connect_timeout_s=connect_timeout_s,
        send_receive_timeout_s=send_receive_timeout_s,
    )
