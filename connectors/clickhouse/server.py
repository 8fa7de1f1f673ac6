"""A ClickHouse server over the native protocol (clickhouse-driver): the 18.16 server of the local platform and any
newer server in production."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clickhouse_driver import Client
from clickhouse_driver import errors as driver_errors

from connectors.clickhouse.backend import (
    ClickHouseBackend,
    ClickHouseConnectionError,
    ClickHouseError,
    ClickHouseQueryError,
    QueryResult,
    Row,
    insert_statement,
)

_LITERAL_INSERT = re.compile(r"^\s*INSERT\b.*\bVALUES\s*\(", re.IGNORECASE | re.DOTALL)


class ServerBackend(ClickHouseBackend):
    """Datetimes on insert: the driver reads a naive datetime in the column's timezone, which is UTC for every table
    of the model (`DateTime('UTC')`), and converts aware ones; so naive-as-UTC holds without touching each value."""

    name = "server"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9000,
        *,
        user: str = "default",
        password: str = "",
        secure: bool = False,
        connect_timeout_s: float = 5.0,
        send_receive_timeout_s: float = 60.0,
        sync_request_timeout_s: float = 5.0,
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.address = f"{host}:{port}"
        # Without explicit timeouts a half-dead server blocks a caller for the driver's default 300 s.
        self._client = Client(
            host=host,
            port=port,
            user=user,
            password=password,
            secure=secure,
            connect_timeout=connect_timeout_s,
            send_receive_timeout=send_receive_timeout_s,
            sync_request_timeout=sync_request_timeout_s,
            settings=settings or {},
        )
        self._server_tz: dt.tzinfo | None = None

    def _translate(self, error: Exception, what: str) -> ClickHouseError:
        if isinstance(error, driver_errors.ServerException):
            # The server appends its stack trace; the first line says what is wrong.
            lines = str(error.message or error).split("Stack trace:")[0].strip().splitlines()
            message = (lines[0] if lines else f"error code {error.code}").rstrip(".")
            return ClickHouseQueryError(f"ClickHouse at {self.address} refused {what}: {message}", code=error.code)
        if isinstance(error, (driver_errors.NetworkError, driver_errors.SocketTimeoutError, OSError, EOFError)):
            reason = str(error).rstrip(".") or type(error).__name__
            return ClickHouseConnectionError(
                f"ClickHouse at {self.address} unreachable during {what}: {reason}. "
                "Is the server up (`suuupra platform status`) and the address right (settings clickhouse.host/port)?"
            )
        return ClickHouseError(f"ClickHouse at {self.address}, {what}: {error}")

    def _timezone(self) -> dt.tzinfo:
        if self._server_tz is None:
            info = self._client.connection.server_info
            name = getattr(info, "timezone", None) or "UTC"
            try:
                self._server_tz = ZoneInfo(name)
            except ZoneInfoNotFoundError:
                self._server_tz = dt.UTC
        return self._server_tz

    def _normalize(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            # Plain `DateTime` columns come back naive in the server's timezone, `DateTime('tz')` ones aware.
            aware = value if value.tzinfo is not None else value.replace(tzinfo=self._timezone())
            return aware.astimezone(dt.UTC)
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, (list, tuple)):
            items = [self._normalize(item) for item in value]
            return items if isinstance(value, list) else tuple(items)
        return value

    def query(self, sql: str) -> QueryResult:
        if _LITERAL_INSERT.match(sql):
            raise ValueError(
                "INSERT with literal VALUES hangs ClickHouse 18.16 over the native protocol: use "
                "insert(table, columns, rows), which sends the rows as data blocks"
            )
        try:
            rows, column_types = self._client.execute(sql, with_column_types=True)
        except (driver_errors.Error, OSError, EOFError) as error:
            raise self._translate(error, "a query") from error
        columns = [name for name, _ in column_types]
        types = [type_name for _, type_name in column_types]
        convert = [i for i, type_name in enumerate(types) if "DateTime" in type_name or "UUID" in type_name]
        if convert and rows:
            normalized: list[Row] = []
            for row in rows:
                values = list(row)
                for i in convert:
                    values[i] = self._normalize(values[i])
                normalized.append(tuple(values))
            rows = normalized
        return QueryResult(columns, types, [tuple(row) for row in rows])

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        statement = insert_statement(table, columns)
        batch = rows if isinstance(rows, list) else list(rows)
        if not batch:
            return 0
        try:
            # Rows travel as the second argument (native blocks): a literal `VALUES (...)` text hangs 18.16.
            written = self._client.execute(statement, batch)
        except (driver_errors.Error, OSError, EOFError) as error:
            raise self._translate(error, f"an insert of {len(batch)} row(s) into {table}") from error
        return int(written) if isinstance(written, int) else len(batch)

    def close(self) -> None:
        self._client.disconnect()
