"""Bad input, tried hard: every kind of hostile record (suuupra/simulate/hostile.py) among valid events, against each
job running unbounded. Every hostile record must be dead-lettered with a reason of its kind, exactly the hostile
ones; the job must stay RUNNING without a restart and go on with valid events published after them; and its results
for the valid events must equal the independent computation its own tests use."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer

from connectors.avro.serde import AvroSerializer
from connectors.avro.subject import topic_record_name
from connectors.kafka.dead_letter import read_dead_letters
from schemas import default_catalog
from suuupra.events import EventPublisher, make_registry
from suuupra.flink_jobs import FlinkRest, local_runs
from suuupra.platform.base import wait_until
from suuupra.settings import Settings
from suuupra.simulate.hostile import KINDS, HostileCorpus, HostileRecord, interleave
from tests.jobs.analytics_support import SUUUPRA

Coordinates = tuple[str, int, int]


@dataclass
class Published:
    """What went to Kafka: the hostile records by where they landed, and the valid values in order."""

    hostile: dict[Coordinates, HostileRecord] = field(default_factory=dict)
    valid: list[dict[str, Any]] = field(default_factory=list)


def publish(settings: Settings, items: Sequence[dict[str, Any] | HostileRecord], published: Published) -> None:
    """Valid events through the EventPublisher, hostile records as raw bytes; each hostile record's offset is kept."""
    publisher = EventPublisher(settings)
    raw = Producer({**settings.kafka.client_config(), "enable.idempotence": True, "linger.ms": 5})
    failures: list[str] = []

    def landed(record: HostileRecord) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                failures.append(f"{record.kind}: {error}")
            else:
                published.hostile[(str(message.topic()), int(message.partition() or 0), int(message.offset() or 0))] = (
                    record
                )

        return report

    for item in items:
        if isinstance(item, HostileRecord):
            raw.produce(item.topic, item.value, item.key, headers=list(item.headers), on_delivery=landed(item))
            raw.poll(0)
        else:
            publisher.publish(item)
            published.valid.append(item)
    publisher.flush()
    assert raw.flush(60) == 0 and not failures, failures


def corpus(settings: Settings, topics: Sequence[str], samples: Sequence[dict[str, Any]], seed: int) -> list[
    HostileRecord
]:  # fmt: skip
    # Registers what the corpus needs: another topic's schema, or one of a type the catalogue does not know, under
    # this topic, as a careless producer with auto-registration on would.
    registering = AvroSerializer(make_registry(settings), topic_record_name, auto_register=True)
    hostile = HostileCorpus(settings, default_catalog(), registering, samples, seed)
    return [record for topic in sorted(set(topics)) for record in hostile.records(topic)]


def one_per_type(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    samples: dict[str, dict[str, Any]] = {}
    for event in events:
        samples.setdefault(str(event["event_type"]), event)
    return list(samples.values())


def start(settings: Settings, job: str, environment: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([SUUUPRA, "jobs", "run", job], env={**environment}, start_new_session=True,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)


def health(settings: Settings, process: subprocess.Popen[bytes]) -> tuple[str, int]:
    """The job's state and restarts, from the REST API its process recorded."""
    run = next((r for r in local_runs(settings) if int(r["pid"]) == process.pid), None)
    assert run is not None, "the job's process recorded no run: it did not start or it exited"
    rest = FlinkRest(run["rest_url"])
    return rest.state(run["job_id"]), rest.restarts(run["job_id"])


def dead_lettered(settings: Settings, job: str) -> dict[Coordinates, set[tuple[str, str]]]:
    """What the job dead-lettered: original coordinates -> {(reason code, reason)} (a restore may repeat one)."""
    letters: dict[Coordinates, set[tuple[str, str]]] = {}
    for letter in read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter):
        h = letter.headers
        if h.get("failed.by") == job:
            where = (h["original.topic"], int(h["original.partition"]), int(h["original.offset"]))
            letters.setdefault(where, set()).add((h["reason.code"], h["reason"]))
    return letters


def account_for(settings: Settings, job: str, published: Published) -> list[str]:
    """What is wrong with the dead letters: a hostile record missing or with a reason of another kind, or a record
    dead-lettered that was not hostile (empty: every hostile record accounted for, exactly)."""
    letters = dead_lettered(settings, job)
    problems = [f"not hostile, dead-lettered: {where} {reasons}" for where, reasons in letters.items()
                if where not in published.hostile]  # fmt: skip
    for where, record in published.hostile.items():
        reasons = letters.get(where)
        if not reasons:
            problems.append(f"{record.kind} at {where}: not dead-lettered")
        elif not all(code in record.reason_codes and reason for code, reason in reasons):
            problems.append(f"{record.kind} at {where}: {reasons}, expected one of {sorted(record.reason_codes)}")
    return problems


def report(job: str, published: Published, seconds: float) -> None:
    counts = Counter(record.kind for record in published.hostile.values())
    tried = ", ".join(f"{kind} {counts[kind]}" for kind in KINDS if counts[kind])
    print(f"\n{job}: {len(published.valid)} valid events, {sum(counts.values())} hostile records ({tried}); "
          f"{seconds:.0f} s")  # fmt: skip


@dataclass(frozen=True)
class JobCase:
    """How one job is fed and checked."""

    name: str
    topics: Callable[[Settings], list[str]]
    environment: Callable[[Settings], dict[str, str]]
    events: Callable[[Settings], list[dict[str, Any]]]
    # The job's results for the valid events compared with the independent computation: empty when equal.
    differences: Callable[[Settings, list[dict[str, Any]]], Any]
    # What must happen once the first events are in Kafka and before the job starts (fitting a model on them).
    prepare: Callable[[Settings], None] | None = None


def run_case(case: JobCase, settings: Settings, tmp_path: Path, tail: int = 200) -> None:
    began = time.monotonic()
    events = case.events(settings)
    hostile = corpus(settings, case.topics(settings), one_per_type(events), seed=20260)
    applicable = {record.kind for record in hostile}
    published = Published()
    publish(settings, list(interleave(events[:-tail], hostile, tail=0)), published)
    assert len(published.hostile) == len(hostile)
    if case.prepare is not None:
        case.prepare(settings)
    job = start(settings, case.name, case.environment(settings), tmp_path / f"{case.name}.log")
    try:
        settled = wait_until(lambda: not account_for(settings, case.name, published), 180, interval=2)
        assert settled, account_for(settings, case.name, published)[:10]
        # Valid events after every hostile one has been dealt with: the job must still take them.
        publish(settings, events[-tail:], published)
        assert wait_until(lambda: not case.differences(settings, published.valid), 120, interval=2), case.differences(
            settings, published.valid
        )
        state, restarts = health(settings, job)
        assert (state, restarts) == ("RUNNING", 0), (state, restarts, (tmp_path / f"{case.name}.log").read_text())
        assert not account_for(settings, case.name, published)
    finally:
        stop(job)
    report(case.name, published, time.monotonic() - began)
    assert applicable >= set(KINDS) - {"wrong_schema_id", "negative_value", "foreign_event_type"}


# --- the jobs ------------------------------------------------------------------------------------------------------


def _analytics() -> JobCase:
    from schemas import default_catalog
    from suuupra.simulate.journeys import generate
    from suuupra.verify.analytics import expected_tables, kafka_events, source_topics
    from tests.jobs.analytics_support import _differences, _environment, journeys

    def differences(settings: Settings, valid: list[dict[str, Any]]) -> dict[str, str]:
        # What `suuupra verify analytics` takes from the job's topics, hostile records and all, is the valid events.
        accepted = kafka_events(settings)
        topics = set(source_topics(settings))
        catalog = default_catalog()
        read = [e for e in valid if settings.topics.resolve(catalog.schema_for(str(e["event_type"])).topic) in topics]
        assert sorted(str(e.value["event_id"]) for e in accepted) == sorted(str(e["event_id"]) for e in read)
        return _differences(settings, expected_tables(accepted, settings.flink.max_out_of_orderness_s * 1000))

    return JobCase(
        "analytics", source_topics, _environment,
        lambda _settings: [e.value for e in generate(journeys(seed=31), 2000)], differences,
    )  # fmt: skip


def _features() -> JobCase:
    from suuupra.simulate.journeys import SimulationProfile, generate
    from tests.jobs.analytics_support import START
    from tests.jobs.features_oracle import expected_features
    from tests.jobs.test_features import job_environment, online

    def topics(settings: Settings) -> list[str]:
        return sorted({settings.topics.clickstream, settings.topics.payment, settings.topics.user})

    def differences(settings: Settings, valid: list[dict[str, Any]]) -> dict[str, int]:
        expected = expected_features(valid)
        actual = online(settings, expected)
        return {view: wrong for view in expected
                if (wrong := sum(expected[view][e] != actual[view][e] for e in expected[view]))}  # fmt: skip

    profile = SimulationProfile(seed=92, start_time_ms=START, users=40, out_of_order_share=0.1, late_share=0.03,
                                fraud_share=0.2)  # fmt: skip
    return JobCase(
        "features", topics, job_environment, lambda _settings: [e.value for e in generate(profile, 2000)], differences
    )


CASES: dict[str, Callable[[], JobCase]] = {"analytics": _analytics, "features": _features}


@pytest.fixture
def settings_for(request: pytest.FixtureRequest) -> Settings:
    fixture = "feature_settings" if request.param == "features" else "job_settings"
    settings: Settings = request.getfixturevalue(fixture)
    return settings


@pytest.mark.parametrize("settings_for", list(CASES), indirect=True, ids=list(CASES))
def test_hostile_records_are_dead_lettered_and_the_job_goes_on_exactly(
    settings_for: Settings, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    name = request.node.callspec.id
    run_case(CASES[name](), settings_for, tmp_path)
