"""The analytics job at the scale a user runs it, read as one backlog: at least 50,000 events on every topic it reads,
hours of event time, out-of-order, late and malformed records. Once with a deliberately slow sink (tiny batches, so
back-pressure holds records fetched but unprocessed for a long time) and once at parallelism 2 (partitions
interleaved across subtasks). Every table must equal the independent computation, and every event is in its result,
in `late_events` or in the dead-letter topic: small inputs drain before idleness or back-pressure can matter."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jobs.analytics import source_topics
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform
from suuupra.settings import Settings
from tests.jobs.analytics_support import SUUUPRA, _dead_letter_offsets, _differences, _environment, expected_for
from tests.jobs.scale_input import PublishedInput, publish_scale_input

EVENTS_PER_TOPIC = 50_000


@dataclass(frozen=True)
class Backlog:
    settings: Settings
    published: PublishedInput
    expected: dict[str, set[tuple[Any, ...]]]


@pytest.fixture(scope="module")
def backlog(settings: Settings, platform: Platform) -> Iterator[Backlog]:
    with isolated_environment(settings, f"test-scale-{uuid.uuid4().hex[:8]}") as own:
        published = publish_scale_input(
            own, seed=31, journeys=560_000, per_topic_floor=EVENTS_PER_TOPIC, malformed_into=set(source_topics(own))
        )
        yield Backlog(own, published, expected_for(own))


def _run_job(backlog: Backlog, tmp_path: Path, **flink: Any) -> Settings:
    database = f"test_{uuid.uuid4().hex[:10]}"
    own = backlog.settings.model_copy(
        update={
            # Copies, so a settings file's hosts and ports (SUUUPRA_CONFIG) still hold.
            "clickhouse": backlog.settings.clickhouse.model_copy(update={"database": database}),
            "flink": backlog.settings.flink.model_copy(update=dict(
                checkpoint_dir=tmp_path / "checkpoints", consumer_group_prefix=f"test-{uuid.uuid4().hex[:8]}",
                checkpoint_interval_s=2.0, **flink,
            )),
        }
    )  # fmt: skip
    backend = server_backend(own)
    migrate(backend, database)
    backend.close()
    result = subprocess.run([SUUUPRA, "jobs", "run", "analytics", "--bounded"], env=_environment(own),
                            capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return own


@pytest.fixture
def drop_databases(backlog: Backlog) -> Iterator[list[str]]:
    databases: list[str] = []
    yield databases
    # Dropping waits for the merges of thousands of small inserts.
    backend = server_backend(backlog.settings, send_receive_timeout_s=600)
    for database in databases:
        backend.query(f"DROP DATABASE IF EXISTS {database}")
    backend.close()


def test_the_backlog_is_at_the_scale_users_run(backlog: Backlog) -> None:
    per_topic = backlog.published.per_topic
    assert all(per_topic.get(topic, 0) >= EVENTS_PER_TOPIC for topic in source_topics(backlog.settings)), per_topic
    assert backlog.published.event_time_span_h >= 3
    assert len(backlog.expected["late_events"]) > 100
    assert backlog.published.malformed > 1000


@pytest.mark.parametrize(
    "flink",
    [
        # Batches of 1,000 rows: about 1,000 inserts, far slower than the source, so fetched records wait long.
        pytest.param({"sink_batch_rows": 1000, "sink_batch_delay_s": 0.05}, id="slow-sink"),
        # And the decoding in a task of its own, handing its rows to the SQL operators' (not the default).
        pytest.param({"parallelism": 2, "decode_in_own_task": True}, id="parallelism-2-decoding-in-its-own-task"),
    ],
)
def test_every_table_equals_the_independent_computation(
    backlog: Backlog, tmp_path: Path, drop_databases: list[str], flink: dict[str, Any]
) -> None:
    own = _run_job(backlog, tmp_path, **flink)
    drop_databases.append(own.clickhouse.database)
    assert _differences(own, backlog.expected) == {}
    assert len(_dead_letter_offsets(own)) == backlog.published.malformed
