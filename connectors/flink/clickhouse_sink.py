"""A Flink sink (keyed process function) that writes rows into ClickHouse in batches.

Rows wait in keyed list state, which is part of every checkpoint: after a crash and a restore nothing that the
checkpoint had accepted is lost, and rows written after the checkpoint are written again. The target tables are
ReplacingMergeTree keyed on what identifies a row, and dashboards read them with FINAL, so a row written twice
counts once: exactly-once results from an at-least-once sink.

Elements are `(table, values)`, values in the order of the table's `SinkTable.columns`, times in epoch ms. Key the
stream by `SINK_KEY` (one buffer for every table): after a restore, the first new row of any table re-arms the
flush of everything restored, even of a table that receives no new rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from connectors.clickhouse.server import ServerBackend
from connectors.clickhouse.writer import ClickHouseWriter

# An event-time timer this far out fires only on the final watermark of a bounded input: the last flush.
END_OF_INPUT_MS = 1 << 62
SINK_KEY = "clickhouse"


@dataclass(frozen=True)
class SinkTable:
    columns: tuple[str, ...]
    datetime_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClickHouseTarget:
    host: str
    port: int
    database: str
    user: str
    password: str
    secure: bool = False


def _to_datetime(epoch_ms: int | None) -> dt.datetime | None:
    return None if epoch_ms is None else dt.datetime.fromtimestamp(epoch_ms / 1000, dt.UTC)


class ClickHouseSink(KeyedProcessFunction):  # type: ignore[misc]
    def __init__(
        self,
        target: ClickHouseTarget,
        tables: Mapping[str, SinkTable],
        batch_rows: int,
        batch_delay_s: float,
        max_retries: int = 8,
    ) -> None:
        self._target = target
        self._tables = dict(tables)
        self._batch_rows = batch_rows
        self._batch_delay_ms = int(batch_delay_s * 1000)
        self._max_retries = max_retries

    def open(self, runtime_context: RuntimeContext) -> None:
        self._buffer = runtime_context.get_list_state(ListStateDescriptor("rows", Types.PICKLED_BYTE_ARRAY()))
        self._buffered = runtime_context.get_state(ValueStateDescriptor("buffered", Types.LONG()))
        self._flush_at = runtime_context.get_state(ValueStateDescriptor("flush_at", Types.LONG()))
        target = self._target
        self._backend = ServerBackend(
            target.host, target.port, user=target.user, password=target.password, secure=target.secure
        )
        self._writers = {
            table: ClickHouseWriter(
                self._backend, f"{target.database}.{table}", spec.columns,
                max_rows=self._batch_rows, max_delay_s=3600.0, max_retries=self._max_retries,
            )
            for table, spec in self._tables.items()
        }  # fmt: skip

    def process_element(self, value: tuple[str, list[Any]], ctx: KeyedProcessFunction.Context) -> Iterable[Any]:
        self._buffer.add(value)
        buffered = (self._buffered.value() or 0) + 1
        self._buffered.update(buffered)
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        flush_at = self._flush_at.value()
        # After a restore the buffer may hold rows whose timer is gone: a missing or past deadline re-arms it.
        if flush_at is None or flush_at < now:
            self._flush_at.update(now + self._batch_delay_ms)
            timers.register_processing_time_timer(now + self._batch_delay_ms)
            timers.register_event_time_timer(END_OF_INPUT_MS)
        if buffered >= self._batch_rows:
            self._flush()
        return []

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[Any]:
        self._flush()
        return []

    def _flush(self) -> None:
        by_table: dict[str, list[list[Any]]] = {}
        for table, row in self._buffer.get() or []:
            by_table.setdefault(table, []).append(row)
        for table, rows in by_table.items():
            writer = self._writers[table]
            for typed in self._typed(table, rows):
                writer.add(typed)
            writer.flush()
        self._buffer.clear()
        self._buffered.clear()
        self._flush_at.clear()

    def _typed(self, table: str, rows: Sequence[list[Any]]) -> Iterable[list[Any]]:
        spec = self._tables[table]
        positions = [spec.columns.index(name) for name in spec.datetime_columns]
        for row in rows:
            typed = list(row)
            for position in positions:
                typed[position] = _to_datetime(typed[position])
            yield typed

    def close(self) -> None:
        self._backend.close()
