"""The analytics job on the real platform: exact aggregates for a deterministic input with out-of-order, late and
malformed records; and the same numbers after a kill and a restore from the last checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.clickhouse.backend import ClickHouseBackend
from connectors.kafka.dead_letter import read_dead_letters
from suuupra.clickhouse.migrate import migrate, server_backend
from suuupra.events import EventPublisher, event_consumer
from suuupra.platform.base import wait_until
from suuupra.settings import ClickHouseSettings, FlinkSettings, Settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.simulate.runner import MALFORMED_KINDS, malformed_record
from tests.jobs.analytics_oracle import ACTUAL_QUERIES, KafkaEvent, expected_tables
from tests.support import wire_value

SUUUPRA = str(Path(sys.executable).parent / "suuupra")
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def job_settings(isolated: Settings, tmp_path: Path) -> Iterator[Settings]:
    database = f"test_{uuid.uuid4().hex[:10]}"
    own = isolated.model_copy(
        update={
            "clickhouse": ClickHouseSettings(database=database),
            "flink": FlinkSettings(
                checkpoint_dir=tmp_path / "checkpoints", consumer_group_prefix=f"test-{uuid.uuid4().hex[:8]}",
                checkpoint_interval_s=2.0, sink_batch_rows=500, sink_batch_delay_s=0.5,
            ),
        }
    )  # fmt: skip
    backend = server_backend(own)
    migrate(backend, database)
    yield own
    backend.query(f"DROP DATABASE IF EXISTS {database}")
    backend.close()


def _environment(settings: Settings) -> dict[str, str]:
    environment = {**os.environ}
    environment.update({f"SUUUPRA_TOPICS__{k.upper()}": v for k, v in settings.topics.model_dump().items()})
    environment["SUUUPRA_CLICKHOUSE__DATABASE"] = settings.clickhouse.database
    for key, value in settings.flink.model_dump(exclude_none=True).items():
        environment[f"SUUUPRA_FLINK__{key.upper()}"] = str(value)
    return environment


def _publish(settings: Settings, count: int, seed: int) -> int:
    """Journeys with out-of-order and late events, and malformed records among them; returns the malformed count."""
    publisher = EventPublisher(settings)
    read_by_job = set(_source_topics(settings))
    profile = SimulationProfile(seed=seed, start_time_ms=START, users=60, out_of_order_share=0.08, late_share=0.03)
    malformed = 0
    for index, event in enumerate(generate(profile, count)):
        topic = publisher.publish(event.value)
        if index % 200 == 7 and topic in read_by_job:
            schema = publisher.catalog.schema_for(event.event_type).schema
            valid = publisher.producer.serializer.serialize(topic, schema, event.value)
            kind = MALFORMED_KINDS[malformed % len(MALFORMED_KINDS)]
            bad = malformed_record(kind, valid, random.Random(index))
            publisher.producer.produce_raw(
                topic, event.value["user_id"].encode(), bad, timestamp_ms=event.value["event_time"]
            )
            malformed += 1
    publisher.flush()
    return malformed


def _source_topics(settings: Settings) -> list[str]:
    topics = settings.topics
    return sorted({topics.clickstream, topics.commerce, topics.payment, topics.user})


def _kafka_events(settings: Settings) -> list[KafkaEvent]:
    with event_consumer(settings, _source_topics(settings)) as consumer:
        return [KafkaEvent(r.topic, r.partition, r.offset, wire_value(r.value)) for r in consumer.read_to_end()]


def _actual(backend: ClickHouseBackend, database: str) -> dict[str, set[tuple[Any, ...]]]:
    return {table: set(backend.query(sql.format(db=database)).rows) for table, sql in ACTUAL_QUERIES.items()}


def _dead_letter_offsets(settings: Settings) -> set[tuple[str, str, str]]:
    """The originals dead-lettered (a restore may dead-letter one twice: the sink is at-least-once)."""
    letters = read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter)
    for letter in letters:
        assert letter.headers["reason"]
        assert letter.headers["reason.code"] in {"malformed_record", "unknown_schema"}
    return {(h["original.topic"], h["original.partition"], h["original.offset"]) for h in (x.headers for x in letters)}


def _differences(settings: Settings) -> dict[str, str]:
    """Per table, what ClickHouse holds that the oracle does not expect, and the reverse (empty: all equal)."""
    expected = expected_tables(_kafka_events(settings), settings.flink.max_out_of_orderness_s * 1000)
    assert expected["late_events"], "the input must contain late events"
    backend = server_backend(settings)
    try:
        actual = _actual(backend, settings.clickhouse.database)
    finally:
        backend.close()
    return {
        table: f"missing {sorted(rows - actual[table])[:3]}, extra {sorted(actual[table] - rows)[:3]}"
        for table, rows in expected.items()
        if actual[table] != rows
    }


def _assert_matches_oracle(settings: Settings, malformed: int) -> None:
    assert _differences(settings) == {}
    assert len(_dead_letter_offsets(settings)) == malformed


def test_bounded_run_gives_exactly_the_independently_computed_aggregates(job_settings: Settings) -> None:
    malformed = _publish(job_settings, 3000, seed=21)
    result = subprocess.run([SUUUPRA, "jobs", "run", "analytics", "--bounded"], env=_environment(job_settings),
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _assert_matches_oracle(job_settings, malformed)


def _start_job(settings: Settings, *extra: str, batch_delay_s: float = 0.5) -> subprocess.Popen[bytes]:
    environment = _environment(settings)
    environment["SUUUPRA_FLINK__SINK_BATCH_DELAY_S"] = str(batch_delay_s)
    return subprocess.Popen([SUUUPRA, "jobs", "run", "analytics", *extra], env=environment, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def _kill(job: subprocess.Popen[bytes]) -> None:
    os.killpg(job.pid, signal.SIGKILL)
    job.wait(30)


def _raw_rows(settings: Settings) -> int:
    backend = server_backend(settings)
    try:
        return int(backend.query(f"SELECT count() FROM {settings.clickhouse.database}.raw_events FINAL").rows[0][0])
    finally:
        backend.close()


def _close_all_windows(settings: Settings, after_ms: int) -> None:
    """An unbounded job closes a window only when the watermark passes it: one event far ahead of the rest (of a
    type no aggregate reads) moves it past every window once the other partitions have gone idle."""
    event = next(e for e in generate(SimulationProfile(seed=99), 2000) if e.event_type == "payment.fraud_decided")
    publisher = EventPublisher(settings)
    publisher.publish({**event.value, "event_time": after_ms + 4 * 3_600_000})
    publisher.flush()


def test_kill_and_restore_from_checkpoint_gives_the_same_aggregates(job_settings: Settings) -> None:
    malformed = _publish(job_settings, 3000, seed=22)
    # Batches wait in checkpointed state for seconds, so the kill always leaves accepted but unwritten rows behind.
    job = _start_job(job_settings, batch_delay_s=3)
    try:
        assert wait_until(
            lambda: any(job_settings.checkpoint_dir.glob("*/chk-*/_metadata")) and _raw_rows(job_settings) > 0,
            240, interval=0.5,
        )  # fmt: skip
    finally:
        _kill(job)
    assert 0 < _raw_rows(job_settings) < 3000, "the kill must interrupt the job mid-stream"

    restored = _start_job(job_settings, "--restore", "latest")
    try:
        last_event_ms = max(e.time for e in _kafka_events(job_settings))
        _close_all_windows(job_settings, last_event_ms)
        assert wait_until(lambda: _differences(job_settings) == {}, 300, interval=3), _differences(job_settings)
    finally:
        _kill(restored)
    assert len(_dead_letter_offsets(job_settings)) == malformed
