"""A component killed (-9) under a running analytics job and brought back the way a user would (`platform up`), while
the stream goes on. ClickHouse: the job fails, says why, restarts by itself from its last checkpoint with growing
pauses (no person involved), and `suuupra status` shows the restarts and the component down meanwhile. Kafka: the
job waits for the broker (or restarts) and `status` names the broker as down. Either way, once the component is
back, every table equals the independent computation over everything published, before and after the kill: what
an uninterrupted run gives. The registry: records of schemas the job has not seen arrive while it is down; the job
must not dead-letter them (the record may be fine), it fails and restarts until the registry is back."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from suuupra.events import EventPublisher
from suuupra.platform.base import wait_until
from suuupra.platform.manager import Platform
from suuupra.settings import Settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.simulate.runner import malformed_record
from suuupra.status import platform_report
from tests.jobs.analytics_support import (
    START,
    SUUUPRA,
    _dead_letter_offsets,
    _differences,
    _environment,
    _publish,
    job_running,
    raw_rows,
)
from tests.jobs.features_oracle import expected_features
from tests.jobs.test_features import job_environment, online, publish

HOUR_MS = 3_600_000


def _kill(settings: Settings, component: str) -> None:
    status = next(status for status in Platform(settings).status() if status.name == component)
    assert status.pid is not None and status.health.ok, status
    os.kill(status.pid, signal.SIGKILL)


@pytest.mark.parametrize("component", ["clickhouse", "kafka"])
def test_the_job_heals_when_a_component_is_killed_and_brought_back(
    job_settings: Settings, tmp_path: Path, component: str
) -> None:
    settings = job_settings.model_copy(update={"flink": job_settings.flink.model_copy(update=dict(
        # Quick to give up on an insert and quick to try again, so the outage shows within seconds.
        sink_max_retries=1, restart_initial_backoff_s=0.5, restart_max_backoff_s=4.0,
    ))})  # fmt: skip
    malformed = _publish(settings, 3000, seed=31)
    output = tmp_path / "job.out"
    with job_running("analytics", _environment(settings), output):
        assert wait_until(lambda: raw_rows(settings) > 0, 240, interval=0.5), output.read_text()[-3000:]
        _kill(settings, component)
        killed = time.monotonic()
        if component == "clickhouse":
            # The stream goes on while ClickHouse is away: these must reach the tables too.
            malformed += _publish(settings, 2000, seed=32, start_ms=START + 10 * HOUR_MS)
            assert wait_until(lambda: "analytics failed:" in output.read_text(), 120, interval=0.5), output.read_text()
        down = platform_report(settings)
        assert not next(status for status in down.components if status.name == component).health.ok
        if component == "clickhouse":
            analytics = [job for job in down.jobs if job.name == "analytics"]
            assert analytics and analytics[0].restarts >= 1 and analytics[0].last_failure, down.jobs
        else:
            assert any(problem.startswith("kafka at") for problem in down.problems), down.problems

        subprocess.run([SUUUPRA, "platform", "up"], check=True, capture_output=True, timeout=300)
        if component == "kafka":
            # The stream goes on once the broker is back.
            malformed += _publish(settings, 2000, seed=32, start_ms=START + 10 * HOUR_MS)
        assert wait_until(lambda: _differences(settings) == {}, 300, interval=2), _differences(settings)
        print(f"{component}: healed {time.monotonic() - killed:.1f} s after the kill")
        if component == "clickhouse":
            assert wait_until(lambda: "running again after restart" in output.read_text(), 30, interval=0.5)
            _assert_metrics_show_the_restart(settings, output.read_text())
    if component == "clickhouse":
        assert "restart 1 from its last checkpoint" in output.read_text()
    assert len(_dead_letter_offsets(settings)) == malformed


def _assert_metrics_show_the_restart(settings: Settings, output: str) -> None:
    """The job's metrics, served by `jobs run` on loopback and named by `status`, count its restarts and records."""
    [url] = re.findall(r"analytics metrics \(Prometheus\) on (http://127\.0\.0\.1:\d+/metrics)", output)
    [job] = [job for job in platform_report(settings).jobs if job.name == "analytics"]
    assert job.metrics_url == url

    def scrape() -> dict[tuple[str, str], float]:
        return {
            (sample.name, sample.labels.get("task", "")): sample.value
            for family in text_string_to_metric_families(httpx.get(url, timeout=10).text)
            for sample in family.samples
        }

    # Flink's REST API has a task's busy time only once its metric fetcher has polled the restarted task (every 10 s).
    def source_busy_known() -> bool:
        return any(name == "suuupra_job_busy_ratio" and task.startswith("Source: sequenced") for name, task in scrape())

    wait_until(source_busy_known, 60, interval=2)
    samples = scrape()
    assert samples[("suuupra_job_up", "")] == 1
    assert samples[("suuupra_job_restarts", "")] >= 1
    # The job checkpointed before the kill (it restarted from that checkpoint): its state has a size.
    assert samples[("suuupra_job_last_checkpoint_size_bytes", "")] > 0
    # Counted since the last restart, like Flink's own task metrics: present for every task, the source's included.
    tasks = {task for (name, task) in samples if name == "suuupra_job_records_out_total"}
    assert any(task.startswith("Source: sequenced") for task in tasks), samples
    busy = {task for (name, task) in samples if name == "suuupra_job_busy_ratio"}
    assert any(task.startswith("Source: sequenced") for task in busy) and busy <= tasks, samples


def test_the_job_waits_out_a_registry_outage_without_dead_lettering_what_it_cannot_read_yet(
    job_settings: Settings, tmp_path: Path
) -> None:
    """The registry killed -9 while the job holds the schemas it has seen; then events of schemas it has not seen (and
    records of an id nobody registered) arrive: the job cannot tell a good record from a bad one without the
    registry, so it fails and restarts from its last checkpoint until `platform up` brings the registry back (its
    schemas are in PostgreSQL), and then reads them. Every table equals the independent computation and only the
    unregistered ids are dead-lettered."""
    settings = job_settings.model_copy(update={"flink": job_settings.flink.model_copy(update=dict(
        restart_initial_backoff_s=0.5, restart_max_backoff_s=4.0,
    ))})  # fmt: skip
    publisher = EventPublisher(settings)
    profile = SimulationProfile(seed=51, start_time_ms=START, users=60, out_of_order_share=0.08, late_share=0.03)
    events = [event.value for event in generate(profile, 3000)]
    held_back = [event for event in events if publisher.topic_of(event["event_type"]) == settings.topics.payment]
    assert held_back and len(held_back) < len(events)
    for event in events:
        if publisher.topic_of(event["event_type"]) != settings.topics.payment:
            publisher.publish(event)
    publisher.flush()
    # The producer learns the held-back schemas' ids now, while the registry answers; the job has not seen them.
    for event in {event["event_type"]: event for event in held_back}.values():
        publisher.producer.serializer.serialize(
            settings.topics.payment, publisher.catalog.schema_for(event["event_type"]).schema, event
        )
    output = tmp_path / "job.out"
    with job_running("analytics", _environment(settings), output):
        assert wait_until(lambda: _differences(settings) == {}, 240, interval=1), output.read_text()[-3000:]
        _kill(settings, "registry")
        killed = time.monotonic()
        for event in held_back:
            publisher.publish(event)
        unregistered = 5
        for index in range(unregistered):
            schema = publisher.catalog.schema_for(held_back[index]["event_type"]).schema
            valid = publisher.producer.serializer.serialize(settings.topics.payment, schema, held_back[index])
            bad = malformed_record("unknown_schema_id", valid, random.Random(index))
            publisher.producer.produce_raw(settings.topics.payment, b"nobody", bad, timestamp_ms=START)
        publisher.flush()
        assert wait_until(lambda: "schema registry" in output.read_text(), 120, interval=0.5), output.read_text()
        down = platform_report(settings)
        assert not next(status for status in down.components if status.name == "registry").health.ok
        assert _dead_letter_offsets(settings) == set(), "the outage dead-lettered records that may be fine"
        subprocess.run([SUUUPRA, "platform", "up"], check=True, capture_output=True, timeout=300)
        assert wait_until(lambda: _differences(settings) == {}, 300, interval=2), _differences(settings)
        print(f"registry: healed {time.monotonic() - killed:.1f} s after the kill")
    assert "restart 1 from its last checkpoint" in output.read_text()
    assert wait_until(lambda: len(_dead_letter_offsets(settings)) == unregistered, 30, interval=1)


def _online_differences(settings: Settings, events: list[dict[str, Any]]) -> dict[str, int]:
    """Per feature view, how many entities' online features differ from the independent computation."""
    expected = expected_features(events)
    actual = online(settings, expected)
    return {
        view: wrong
        for view, entities in expected.items()
        if (wrong := sum(1 for entity, values in entities.items() if actual[view][entity] != values))
    }


def test_the_features_job_heals_when_redis_is_killed_and_brought_back(
    feature_settings: Settings, tmp_path: Path
) -> None:
    """Redis (the online store) killed -9 under the features job while the stream goes on: the job's writes fail, it
    restarts by itself from its last checkpoint until `platform up` brings Redis back (its append-only file keeps what
    it acknowledged), and then every entity's online features equal the independent computation."""
    settings = feature_settings.model_copy(update={"flink": feature_settings.flink.model_copy(update=dict(
        restart_initial_backoff_s=0.5, restart_max_backoff_s=4.0,
    ))})  # fmt: skip
    profile = SimulationProfile(seed=41, start_time_ms=START, users=80, out_of_order_share=0.1, late_share=0.03)
    first = [event for event in generate(profile, 6000)]
    later = SimulationProfile(seed=42, start_time_ms=START + 10 * HOUR_MS, users=80, out_of_order_share=0.1)
    second = [event for event in generate(later, 4000)]
    publish(settings, first)
    output = tmp_path / "job.out"
    values = [event.value for event in first]
    with job_running("features", job_environment(settings), output):
        assert wait_until(lambda: not _online_differences(settings, values), 240, interval=2), output.read_text()
        _kill(settings, "redis")
        killed = time.monotonic()
        publish(settings, second)
        assert wait_until(lambda: "features failed:" in output.read_text(), 120, interval=0.5), output.read_text()
        subprocess.run([SUUUPRA, "platform", "up"], check=True, capture_output=True, timeout=300)
        values += [event.value for event in second]
        assert wait_until(lambda: not _online_differences(settings, values), 300, interval=2), _online_differences(
            settings, values
        )
        print(f"redis: healed {time.monotonic() - killed:.1f} s after the kill")
    assert "restart 1 from its last checkpoint" in output.read_text()
