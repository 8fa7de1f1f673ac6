"""The analytics job's watermark and idle partitions, on the real platform: a partition the job has read to its end
while the others go on stops holding the watermark back, the windows close, and an event that then arrives on it
behind the watermark is recorded in `late_events` with that reason instead of being dropped by a closed window; also
after a restore from a checkpoint, when the windows downstream are gone but their watermark starts again from
nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

from jobs.analytics import WATERMARK_REASON
from jobs.runtime import completed_checkpoints
from suuupra.clickhouse.migrate import server_backend
from suuupra.events import EventPublisher
from suuupra.platform.base import wait_until
from suuupra.settings import Settings
from suuupra.simulate.journeys import generate
from suuupra.verify.analytics import actual_tables, compare, expected_tables, kafka_events
from tests.jobs.analytics_support import START, _environment, job_running, journeys, raw_rows

MINUTE_MS = 60_000
IDLE_AFTER_RECORDS = 3000
# The job's Kafka reader fetches at most this much of a partition at a time, so every partition with records to read
# gets some emitted within a few hundred records (the input is far smaller than one fetch of Kafka's defaults, which
# would hand over each partition whole, one after another): the idleness threshold is many such rounds.
FETCH_BYTES_PER_PARTITION = 2048


def _registration(template: dict[str, object], user_id: str, event_time: int) -> dict[str, object]:
    return {**template, "event_id": str(uuid.uuid4()), "user_id": user_id, "event_time": event_time}


def _query(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    backend = server_backend(settings)
    try:
        return [tuple(row) for row in backend.query(sql.format(db=settings.clickhouse.database)).rows]
    finally:
        backend.close()


def test_an_event_behind_the_watermark_of_an_idle_partition_is_recorded_late_not_dropped(
    job_settings: Settings, tmp_path: Path
) -> None:
    settings = job_settings.model_copy(update={"flink": job_settings.flink.model_copy(update=dict(
        partition_idle_after_records=IDLE_AFTER_RECORDS, source_partition_fetch_bytes=FETCH_BYTES_PER_PARTITION,
    ))})  # fmt: skip
    publisher = EventPublisher(settings)
    # The user topic carries only the probe user's registrations: its partition is read to its end at once, then
    # idle while the job reads hours of clickstream, commerce and payment events.
    simulated = [event.value for event in generate(journeys(seed=41), 8000)]
    template = next(value for value in simulated if value["event_type"] == "user.registered")
    others = [value for value in simulated if publisher.topic_of(str(value["event_type"])) != settings.topics.user]
    assert len(others) > 2 * IDLE_AFTER_RECORDS
    probe_user = str(uuid.uuid4())
    first = _registration(template, probe_user, START + MINUTE_MS)
    publisher.publish(first)
    for value in others:
        publisher.publish(value)
    publisher.flush()
    newest_other = max(int(str(value["event_time"])) for value in others)
    assert newest_other > START + 3_600_000
    bound_ms = settings.flink.max_out_of_orderness_s * 1000
    archived = len(expected_tables(kafka_events(settings), bound_ms)["raw_events"])

    environment = _environment(settings)
    # Stopped with Ctrl-C, as a user stops it, and restored as its message says.
    with job_running("analytics", environment, tmp_path / "job.out", settings=settings):
        assert wait_until(lambda: raw_rows(settings) == archived, 240, interval=0.5), raw_rows(settings)
        # Windows of the first hours are closed: their final rows are in, and the watermark is far past the probe's
        # minute. The next registration of the probe user is on time by the late rule (newer than anything of its
        # partition) but behind the watermark.
        behind = _registration(template, probe_user, START + MINUTE_MS + 10_000)
        lateness_ms = _recorded_behind_the_watermark(settings, publisher, behind, 120)
        # The watermark then was the other partitions' newest minus the bound, hours past the event.
        assert lateness_ms > 3_600_000
        assert wait_until(lambda: raw_rows(settings) == archived + 1, 60, interval=0.5)

        # Every table is the independent computation's with the probe event counted as late, not in its minute.
        events = kafka_events(settings)
        expected = expected_tables([e for e in events if e.value["event_id"] != behind["event_id"]], bound_ms)
        expected["raw_events"] = expected_tables(events, bound_ms)["raw_events"]  # the archive keeps late events too
        backend = server_backend(settings)
        try:
            actual = actual_tables(backend, settings.clickhouse.database)
        finally:
            backend.close()
        actual["late_events"] = {row for row in actual["late_events"] if row[0] != behind["event_id"]}
        differences = {check.table: (check.missing, check.extra) for check in compare(expected, actual)
                       if not check.equal}  # fmt: skip
        assert differences == {}, str(differences)[:4000]
        registrations = _query(settings, "SELECT toUnixTimestamp(window_start), registrations "
                                         "FROM {db}.registrations_minute FINAL")  # fmt: skip
        assert ((START + MINUTE_MS) // 1000, 1) in registrations
        # A checkpoint after all of this, then the stop.
        taken = _latest_checkpoint(settings)
        assert wait_until(lambda: _latest_checkpoint(settings) >= taken + 2, 60, interval=0.5)

    # Restored, the job's operators start from the checkpoint's windows (those behind the watermark are gone) with
    # no watermark yet: another registration behind the old watermark must still be recorded late.
    with job_running("analytics", environment, tmp_path / "restored.out", "--restore", "latest"):
        after_restore = _registration(template, probe_user, START + MINUTE_MS + 20_000)
        _recorded_behind_the_watermark(settings, publisher, after_restore, 240)
        registrations = _query(settings, "SELECT toUnixTimestamp(window_start), registrations "
                                         "FROM {db}.registrations_minute FINAL")  # fmt: skip
        assert ((START + MINUTE_MS) // 1000, 1) in registrations


def _latest_checkpoint(settings: Settings) -> int:
    completed = [int(path.name.removeprefix("chk-")) for path in completed_checkpoints(settings, "analytics")]
    return max(completed, default=0)


def _recorded_behind_the_watermark(
    settings: Settings, publisher: EventPublisher, event: dict[str, object], timeout_s: float
) -> int:
    """Publishes the event, waits until `late_events` has it as behind the watermark, and returns its lateness."""
    publisher.publish(event)
    publisher.flush()
    assert wait_until(lambda: len(_recorded(settings, event)) == 1, timeout_s, interval=0.5)
    [(reason, lateness_ms)] = _recorded(settings, event)
    assert reason == WATERMARK_REASON
    return int(str(lateness_ms))


def _recorded(settings: Settings, event: dict[str, object]) -> list[tuple[object, ...]]:
    """The event's reason and lateness in `late_events` (no row: not recorded late)."""
    return _query(settings, f"SELECT reason, lateness_ms FROM {{db}}.late_events FINAL "
                            f"WHERE event_id = '{event['event_id']}'")  # fmt: skip
