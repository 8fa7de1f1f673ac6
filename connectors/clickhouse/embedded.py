"""Current ClickHouse in-process (chdb), persisted to a folder: the forward-compatibility engine for tests.

chdb cannot serve the native protocol, so the pipeline never writes here; tests run the same migrations, rows and
panels on it to prove they still work on current ClickHouse. Limits of chdb: one process per folder, and one
folder per process at a time (close this backend before opening another path).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connectors.clickhouse.backend import (
    ClickHouseBackend,
    ClickHouseError,
    ClickHouseQueryError,
    QueryResult,
    Row,
    insert_statement,
    to_utc,
)

_ERROR_CODE = re.compile(r"Code:\s*(\d+)")
_WRAPPERS = ("Nullable(", "LowCardinality(", "SimpleAggregateFunction(")
_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\0": "\\0"}
_TO_ESCAPE = re.compile(r"[\\'\n\r\t\0]")

Converter = Callable[[Any], Any]


def sql_literal(value: Any) -> str:
    """One Python value as a ClickHouse literal for a VALUES list."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return f"'{to_utc(value):%Y-%m-%d %H:%M:%S}'"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + _TO_ESCAPE.sub(lambda match: _ESCAPES[match.group()], value) + "'"
    if isinstance(value, uuid.UUID):
        return f"'{value}'"
    if isinstance(value, (bytes, bytearray)):
        return "'" + "".join(f"\\x{byte:02x}" for byte in value) + "'"
    if isinstance(value, list):
        return "[" + ", ".join(sql_literal(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(sql_literal(item) for item in value) + ")"
    raise TypeError(
        f"cannot write a {type(value).__name__} to ClickHouse: convert it to str, int, float, "
        "Decimal, datetime, date, list or tuple first"
    )


def _unwrap(type_name: str) -> str:
    changed = True
    while changed:
        changed = False
        for wrapper in _WRAPPERS:
            if type_name.startswith(wrapper) and type_name.endswith(")"):
                type_name = type_name[len(wrapper) : -1]
                changed = True
    return type_name


def _datetime_converter(type_name: str) -> Converter:
    zone_match = re.search(r"'([^']+)'", type_name)
    zone: dt.tzinfo = ZoneInfo(zone_match.group(1)) if zone_match else dt.UTC

    def convert(text: Any) -> dt.datetime:
        # Plain DateTime is rendered in the session timezone, which this backend pins to UTC.
        parsed = dt.datetime.fromisoformat(str(text))
        return parsed.replace(tzinfo=zone).astimezone(dt.UTC)

    return convert


def converter_for(type_name: str) -> Converter:
    """How a JSONCompact value of this ClickHouse type becomes the Python value the server backend returns."""
    inner = _unwrap(type_name)
    base: Converter
    if inner.startswith("Array(") and inner.endswith(")"):
        item = converter_for(inner[len("Array(") : -1])

        def base(value: Any) -> Any:
            return [item(v) for v in value]

    elif inner.startswith("DateTime"):
        base = _datetime_converter(inner)
    elif inner.startswith("Date"):

        def base(value: Any) -> Any:
            return dt.date.fromisoformat(str(value))

    elif re.match(r"^U?Int\d+$", inner):
        base = int
    elif inner.startswith("Float"):
        base = float
    elif inner.startswith("Decimal"):

        def base(value: Any) -> Any:
            return Decimal(str(value))

    elif inner == "Bool":
        base = bool
    else:
        return lambda value: value

    def convert(value: Any) -> Any:
        return None if value is None else base(value)

    return convert


class EmbeddedBackend(ClickHouseBackend):
    name = "embedded"

    def __init__(self, path: Path | str) -> None:
        # Imported here: loading chdb's 500 MB engine costs time every importer of this package would pay.
        from chdb.session import Session

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self._session: Any = Session(str(self.path))  # type: ignore[no-untyped-call]
        except RuntimeError as error:
            raise ClickHouseError(
                f"cannot open chdb at {self.path}: {error}. chdb allows one process per folder and one folder per "
                "process: close the other user or pick another folder"
            ) from error
        self._closed = False
        # Pins plain DateTime values to UTC like the platform's server, whatever the machine's timezone is.
        self._run("SET session_timezone = 'UTC'", "")

    def _run(self, sql: str, fmt: str) -> bytes:
        if self._closed:
            raise ClickHouseError("the embedded ClickHouse backend is closed; open a new EmbeddedBackend")
        try:
            result = self._session.query(sql, fmt) if fmt else self._session.query(sql)
        except RuntimeError as error:
            text = str(error).strip()
            match = _ERROR_CODE.search(text)
            raise ClickHouseQueryError(
                f"chdb at {self.path} refused the statement: {text.splitlines()[0] if text else error}",
                code=int(match.group(1)) if match else None,
            ) from error
        data = result.bytes()
        return bytes(data) if data else b""

    def query(self, sql: str) -> QueryResult:
        raw = self._run(sql, "JSONCompact")
        if not raw.strip():
            return QueryResult([], [], [])
        # Decimal for every JSON number with a fraction: Decimal columns must not pass through float.
        document = json.loads(raw, parse_float=Decimal)
        meta = document.get("meta", [])
        columns = [str(column["name"]) for column in meta]
        types = [str(column["type"]) for column in meta]
        converters = [converter_for(type_name) for type_name in types]
        rows: list[Row] = [
            tuple(convert(value) for convert, value in zip(converters, row, strict=True))
            for row in document.get("data", [])
        ]
        return QueryResult(columns, types, rows)

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        statement = insert_statement(table, columns)
        width = len(columns)
        rendered: list[str] = []
        for row in rows:
            if len(row) != width:
                raise ValueError(f"insert into {table}: a row has {len(row)} values for {width} columns {columns}")
            rendered.append("(" + ", ".join(sql_literal(value) for value in row) + ")")
        if not rendered:
            return 0
        self._run(statement + " " + ",\n".join(rendered), "")
        return len(rendered)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._session.close()
