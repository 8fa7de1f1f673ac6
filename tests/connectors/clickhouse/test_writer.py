"""The batching writer against the platform's ClickHouse server: size and time bounds, retries, giving up."""

from __future__ import annotations

import datetime as dt
import random
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pytest

from connectors.clickhouse.backend import ClickHouseBackend, ClickHouseConnectionError, QueryResult
from connectors.clickhouse.server import ServerBackend
from connectors.clickhouse.writer import ClickHouseWriteError, ClickHouseWriter
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.platform.manager import Platform
from suuupra.settings import Settings

T0 = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
COLUMNS = ("window_start", "registrations")


class Recording(ClickHouseBackend):
    """Delegates to a real backend; records each insert and can fail the first `failures` of them."""

    name = "recording"

    def __init__(self, inner: ClickHouseBackend, failures: int = 0, error: Exception | None = None) -> None:
        self.inner = inner
        self.failures = failures
        self.error = error or ClickHouseConnectionError("connection reset by peer (injected)")
        self.attempts: list[int] = []
        self.inserted: list[int] = []

    def query(self, sql: str) -> QueryResult:
        return self.inner.query(sql)

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        batch = list(rows)
        self.attempts.append(len(batch))
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        written = self.inner.insert(table, columns, batch)
        self.inserted.append(written)
        return written

    def close(self) -> None:
        """The real backend belongs to the fixture."""


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def real(settings: Settings, platform: Platform) -> Iterator[tuple[ServerBackend, str]]:
    backend = server_backend(settings)
    database = f"suuupra_test_{uuid.uuid4().hex[:8]}_writer"
    migrate(backend, database)
    yield backend, database
    backend.execute(f"DROP DATABASE IF EXISTS {database}")
    backend.close()


@pytest.fixture
def table(real: tuple[ServerBackend, str]) -> str:
    backend, database = real
    backend.execute(f"TRUNCATE TABLE {database}.registrations_minute")
    return f"{database}.registrations_minute"


def _rows(count: int, start: int = 0) -> list[tuple[dt.datetime, int]]:
    return [(T0 + dt.timedelta(minutes=start + i), start + i + 1) for i in range(count)]


def _stored(backend: ClickHouseBackend, table: str) -> list[tuple[Any, ...]]:
    return backend.execute(f"SELECT window_start, registrations FROM {table} FINAL ORDER BY window_start")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_flushes_when_the_buffer_is_full(real: tuple[ServerBackend, str], table: str) -> None:
    backend = Recording(real[0])
    writer = ClickHouseWriter(backend, table, COLUMNS, max_rows=3, max_delay_s=3600)
    flushed = [writer.add(row) for row in _rows(7)]
    assert flushed == [0, 0, 3, 0, 0, 3, 0]
    assert backend.inserted == [3, 3]
    assert writer.pending == 1
    writer.close()
    assert backend.inserted == [3, 3, 1]
    assert _stored(real[0], table) == _rows(7)
    assert (writer.rows_written, writer.inserts, writer.retries) == (7, 3, 0)
    with pytest.raises(Exception, match="closed"):
        writer.add(_rows(1)[0])


def test_flushes_when_the_oldest_row_is_due(real: tuple[ServerBackend, str], table: str) -> None:
    backend = Recording(real[0])
    clock = FakeClock()
    writer = ClickHouseWriter(backend, table, COLUMNS, max_rows=1_000, max_delay_s=5.0, clock=clock)
    assert writer.add(_rows(1)[0]) == 0
    clock.now += 4.9
    assert writer.add(_rows(1, start=1)[0]) == 0  # the bound counts from the oldest row, not the newest
    assert writer.flush_if_due() == 0
    clock.now += 0.1
    assert writer.flush_if_due() == 2
    assert writer.flush_if_due() == 0  # nothing buffered, nothing due
    assert backend.inserted == [2]

    # a row arriving after the bound flushes by itself, with no explicit check
    writer.add(_rows(1, start=2)[0])
    clock.now += 5.0
    assert writer.add(_rows(1, start=3)[0]) == 2
    assert _stored(real[0], table) == _rows(4)


def test_mapping_rows_and_wrong_rows(real: tuple[ServerBackend, str], table: str) -> None:
    writer = ClickHouseWriter(real[0], table, COLUMNS, max_rows=10)
    writer.add({"registrations": 9, "window_start": T0})
    with pytest.raises(ValueError, match="has 1 values, the writer has 2 columns"):
        writer.add((T0,))
    with pytest.raises(ValueError, match="lacks column"):
        writer.add({"window_start": T0})
    writer.flush()
    assert _stored(real[0], table) == [(T0, 9)]


def test_retries_with_backoff_then_succeeds(real: tuple[ServerBackend, str], table: str) -> None:
    backend = Recording(real[0], failures=2)
    slept: list[float] = []
    writer = ClickHouseWriter(
        backend, table, COLUMNS, max_rows=100, max_retries=3, base_delay_s=0.5, sleep=slept.append,
        rng=random.Random(7),
    )  # fmt: skip
    writer.add_many(_rows(5))
    assert writer.flush() == 5
    assert backend.attempts == [5, 5, 5]
    assert writer.retries == 2
    assert writer.failed_inserts == 0
    # exponential with jitter: within [50 %, 100 %] of base * 2^(retry-1)
    assert len(slept) == 2
    assert 0.25 <= slept[0] <= 0.5
    assert 0.5 <= slept[1] <= 1.0
    assert _stored(real[0], table) == _rows(5)
    assert writer.stats.rows_written == 5


def test_backoff_is_capped(real: tuple[ServerBackend, str], table: str) -> None:
    writer = ClickHouseWriter(real[0], table, COLUMNS, base_delay_s=1.0, max_backoff_s=4.0, rng=random.Random(1))
    delays = [writer.backoff_s(retry) for retry in range(1, 10)]
    assert all(delay <= 4.0 for delay in delays)
    assert all(delay >= 2.0 for delay in delays[2:])


def test_gives_up_after_max_retries_and_keeps_the_rows(real: tuple[ServerBackend, str], table: str) -> None:
    # a real connection failure: nothing listens on this port
    down = ServerBackend("127.0.0.1", _free_port(), connect_timeout_s=0.5, send_receive_timeout_s=1.0)
    slept: list[float] = []
    writer = ClickHouseWriter(down, table, COLUMNS, max_retries=2, base_delay_s=0.01, sleep=slept.append)
    writer.add_many(_rows(3))
    with pytest.raises(ClickHouseWriteError, match=r"failed after 3 attempt\(s\).*unreachable.*still buffered") as info:
        writer.flush()
    assert (info.value.attempts, info.value.rows, info.value.table) == (3, 3, table)
    assert len(slept) == 2
    assert writer.pending == 3
    assert writer.failed_inserts == 1
    down.close()

    # the buffered rows survive: once ClickHouse is back, the next flush writes them
    writer.backend = real[0]
    assert writer.flush() == 3
    assert _stored(real[0], table) == _rows(3)


def test_refused_rows_are_not_retried(real: tuple[ServerBackend, str]) -> None:
    backend, database = real
    slept: list[float] = []
    writer = ClickHouseWriter(backend, f"{database}.no_such_table", COLUMNS, max_retries=5, sleep=slept.append)
    writer.add(_rows(1)[0])
    with pytest.raises(ClickHouseWriteError, match=r"refused and not retried.*suuupra clickhouse migrate") as info:
        writer.flush()
    assert info.value.attempts == 1
    assert slept == []
