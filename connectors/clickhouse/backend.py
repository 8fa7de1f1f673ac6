"""What every ClickHouse engine offers the rest of the project: run SQL, insert rows, close.

Values cross this boundary in one Python form whichever engine is behind it, so code and tests can compare results
from the 18.16 server and from current ClickHouse (chdb) directly:

- ``DateTime`` / ``DateTime('tz')`` come back as timezone-aware ``datetime`` in UTC; on insert, naive datetimes are
  taken as UTC and aware ones are converted to UTC (sub-second parts are dropped, as ``DateTime`` holds seconds).
- integers as ``int``, ``Float*`` as ``float``, ``Decimal*`` as ``decimal.Decimal``, ``String``/``UUID``/``Enum`` as
  ``str``, ``Date`` as ``date``, ``Array`` as ``list``, ``Nullable`` NULL as ``None``.
"""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

Row = tuple[Any, ...]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Server error codes worth retrying: the same insert can succeed a moment later (load, merges, memory pressure).
# Anything else the server refuses (syntax, types, unknown table) fails the same way every time.
RETRYABLE_SERVER_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
    }
)


class ClickHouseError(RuntimeError):
    """Base of every backend failure. `retryable` says whether the same statement may succeed if sent again."""

    retryable = False


class ClickHouseConnectionError(ClickHouseError):
    """The engine could not be reached or the connection broke (refused, reset, timed out)."""

    retryable = True


class ClickHouseQueryError(ClickHouseError):
    """The engine answered with an error for the statement."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = code in RETRYABLE_SERVER_CODES


def is_retryable(error: BaseException) -> bool:
    """Whether sending the same statement again can help (transient network or server trouble)."""
    if isinstance(error, ClickHouseError):
        return error.retryable
    # ConnectionError and TimeoutError are OSErrors; EOFError is how a socket closed mid-answer shows up.
    return isinstance(error, (OSError, EOFError))


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[Row]


def quote_identifier(name: str) -> str:
    """`db.table` or `table` as backtick-quoted SQL; anything else is refused so names can never inject SQL."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ValueError(
            f"'{name}' is not a plain identifier or 'database.table': use letters, digits and underscores only"
        )
    return ".".join(f"`{part}`" for part in parts)


def validate_database_name(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(
            f"database name '{name}' must start with a letter or underscore and hold only letters, digits and "
            "underscores (it is written into SQL unquoted)"
        )
    return name


def insert_statement(table: str, columns: Sequence[str]) -> str:
    if not columns:
        raise ValueError(f"insert into {table}: name at least one column")
    return f"INSERT INTO {quote_identifier(table)} ({', '.join(quote_identifier(c) for c in columns)}) VALUES"


def to_utc(value: dt.datetime) -> dt.datetime:
    """Naive means UTC (the platform's convention); aware values are converted; seconds precision like DateTime."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).replace(microsecond=0)


class ClickHouseBackend(ABC):
    """One connection to one ClickHouse engine. Not thread-safe: give each thread (or Flink operator) its own."""

    #: short name for messages and test ids
    name: str = "clickhouse"

    @abstractmethod
    def query(self, sql: str) -> QueryResult:
        """Runs one statement; returns column names, ClickHouse type names and rows (empty for DDL)."""

    def execute(self, sql: str) -> list[Row]:
        """Runs one statement and returns its rows."""
        return self.query(sql).rows

    @abstractmethod
    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """Inserts rows (values in `columns` order) into `table` (`db.table`); returns the number of rows sent."""

    @abstractmethod
    def close(self) -> None:
        """Releases the connection; safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
