"""Batched, retried inserts into one ClickHouse table.

ClickHouse wants few large inserts (each insert makes a part that merges later), a stream produces rows one by one:
the writer buffers them and flushes when the buffer holds `max_rows` or its oldest row is `max_delay_s` old. A
failed insert is retried with exponential backoff and jitter. A retried insert may have partly landed; the model's
ReplacingMergeTree tables (read with FINAL) make that harmless.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from connectors.clickhouse.backend import ClickHouseBackend, ClickHouseError, is_retryable

log = logging.getLogger(__name__)

RowInput = Sequence[Any] | Mapping[str, Any]


class ClickHouseWriteError(ClickHouseError):
    """An insert that did not succeed; the rows stay buffered, so `flush()` can try them again."""

    def __init__(self, message: str, *, table: str, rows: int, attempts: int) -> None:
        super().__init__(message)
        self.table = table
        self.rows = rows
        self.attempts = attempts


@dataclass(frozen=True)
class WriterStats:
    table: str
    rows_written: int
    inserts: int
    retries: int
    failed_inserts: int
    pending: int


class ClickHouseWriter:
    """Buffers rows for one table. Rows are sequences in `columns` order or mappings keyed by column name.

    `flush_if_due()` must be called now and then when rows may stop arriving (a timer, or each idle poll), since the
    time bound is otherwise checked only when a row is added. Thread-safe; the backend is the caller's to close.
    """

    def __init__(
        self,
        backend: ClickHouseBackend,
        table: str,
        columns: Sequence[str],
        *,
        max_rows: int = 10_000,
        max_delay_s: float = 1.0,
        max_retries: int = 5,
        base_delay_s: float = 0.2,
        max_backoff_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        if max_delay_s < 0 or base_delay_s < 0 or max_backoff_s < 0:
            raise ValueError("max_delay_s, base_delay_s and max_backoff_s must not be negative")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, got {max_retries}")
        if not columns:
            raise ValueError(f"writer for {table}: name at least one column")
        self.backend = backend
        self.table = table
        self.columns = tuple(columns)
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self.max_retries = max_retries
        self.base_delay_s = base_delay_s
        self.max_backoff_s = max_backoff_s
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._buffer: list[tuple[Any, ...]] = []
        self._oldest: float | None = None
        self._closed = False
        self.rows_written = 0
        self.inserts = 0
        self.retries = 0
        self.failed_inserts = 0

    # --- buffering -----------------------------------------------------------------------------------
    def _as_tuple(self, row: RowInput) -> tuple[Any, ...]:
        if isinstance(row, Mapping):
            missing = [column for column in self.columns if column not in row]
            if missing:
                raise ValueError(f"row for {self.table} lacks column(s) {', '.join(missing)}")
            return tuple(row[column] for column in self.columns)
        values = tuple(row)
        if len(values) != len(self.columns):
            raise ValueError(
                f"row for {self.table} has {len(values)} values, the writer has {len(self.columns)} columns "
                f"({', '.join(self.columns)})"
            )
        return values

    def add(self, row: RowInput) -> int:
        """Buffers one row; flushes if a bound is reached. Returns the number of rows flushed (0 if none)."""
        return self.add_many((row,))

    def add_many(self, rows: Iterable[RowInput]) -> int:
        flushed = 0
        with self._lock:
            if self._closed:
                raise ClickHouseError(f"writer for {self.table} is closed; create a new one")
            for row in rows:
                values = self._as_tuple(row)
                if self._oldest is None:
                    self._oldest = self._clock()
                self._buffer.append(values)
                if len(self._buffer) >= self.max_rows:
                    flushed += self.flush()
            if self._due():
                flushed += self.flush()
        return flushed

    def _due(self) -> bool:
        return self._oldest is not None and self._clock() - self._oldest >= self.max_delay_s

    def flush_if_due(self) -> int:
        """Flushes when the oldest buffered row has waited `max_delay_s`; returns the rows flushed."""
        with self._lock:
            return self.flush() if self._due() else 0

    @property
    def pending(self) -> int:
        return len(self._buffer)

    # --- writing -------------------------------------------------------------------------------------
    def backoff_s(self, retry: int) -> float:
        """Delay before retry number `retry` (1-based): exponential, capped, with jitter in [50 %, 100 %] of it so
        writers that failed together do not retry together, while the wait never collapses to nothing."""
        ceiling = min(self.max_backoff_s, self.base_delay_s * 2.0 ** (retry - 1))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def flush(self) -> int:
        """Inserts every buffered row; returns how many. Raises `ClickHouseWriteError` when the insert cannot be
        done (after `max_retries` retries for transient errors, at once for others), keeping the rows buffered."""
        with self._lock:
            if not self._buffer:
                self._oldest = None
                return 0
            batch = self._buffer
            attempt = 0
            while True:
                attempt += 1
                try:
                    self.backend.insert(self.table, self.columns, batch)
                    break
                except Exception as error:
                    retryable = is_retryable(error)
                    if not retryable or attempt > self.max_retries:
                        self.failed_inserts += 1
                        raise self._give_up(error, len(batch), attempt, retryable) from error
                    delay = self.backoff_s(attempt)
                    self.retries += 1
                    log.warning(
                        "insert of %d row(s) into %s failed (attempt %d of %d), retrying in %.2f s: %s",
                        len(batch),
                        self.table,
                        attempt,
                        self.max_retries + 1,
                        delay,
                        error,
                    )
                    self._sleep(delay)
            self._buffer = []
            self._oldest = None
            self.inserts += 1
            self.rows_written += len(batch)
            return len(batch)

    def _give_up(self, error: Exception, rows: int, attempts: int, retryable: bool) -> ClickHouseWriteError:
        if retryable:
            message = (
                f"insert of {rows} row(s) into {self.table} failed after {attempts} attempt(s): {error}. The rows are "
                "still buffered: once ClickHouse is reachable call flush() again, or let the job restart from its "
                "last checkpoint (replayed rows are deduplicated by ReplacingMergeTree)."
            )
        else:
            message = (
                f"insert of {rows} row(s) into {self.table} was refused and not retried (retrying cannot help): "
                f"{error}. Check that the rows match the table's columns and types and that migrations are applied "
                "(`suuupra clickhouse migrate`)."
            )
        return ClickHouseWriteError(message, table=self.table, rows=rows, attempts=attempts)

    def discard(self) -> int:
        """Drops the buffered rows (e.g. after a failure the caller will replay); returns how many."""
        with self._lock:
            dropped = len(self._buffer)
            self._buffer = []
            self._oldest = None
            return dropped

    def close(self) -> None:
        """Flushes what is buffered and refuses further rows. A failed final flush raises and leaves the writer
        open, so the caller can retry `close()` or `discard()` first."""
        with self._lock:
            if self._closed:
                return
            self.flush()
            self._closed = True

    @property
    def stats(self) -> WriterStats:
        return WriterStats(
            table=self.table,
            rows_written=self.rows_written,
            inserts=self.inserts,
            retries=self.retries,
            failed_inserts=self.failed_inserts,
            pending=self.pending,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            # Flushing here could block in retries and hide the original error; an uncommitted batch is replayed
            # by whoever restarts from the last checkpoint.
            with self._lock:
                self._closed = True
