"""ClickHouse access shared by the jobs and the tools: one backend interface, the server and embedded engines, and a
batching, retrying writer."""

from connectors.clickhouse.backend import (
    ClickHouseBackend,
    ClickHouseConnectionError,
    ClickHouseError,
    ClickHouseQueryError,
    QueryResult,
    Row,
    is_retryable,
    quote_identifier,
    validate_database_name,
)
from connectors.clickhouse.writer import ClickHouseWriteError, ClickHouseWriter, WriterStats

__all__ = [
    "ClickHouseBackend",
    "ClickHouseConnectionError",
    "ClickHouseError",
    "ClickHouseQueryError",
    "ClickHouseWriteError",
    "ClickHouseWriter",
    "QueryResult",
    "Row",
    "WriterStats",
    "is_retryable",
    "quote_identifier",
    "validate_database_name",
]
