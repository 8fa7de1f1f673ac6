"""Shared by the analytics job tests: input publishing, the job's environment, and the comparison with the oracle."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from connectors.kafka.dead_letter import read_dead_letters
from suuupra.clickhouse.migrate import server_backend
from suuupra.events import EventPublisher
from suuupra.platform.base import wait_until
from suuupra.settings import Settings, environment_overrides
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.simulate.runner import MALFORMED_KINDS, malformed_record
from suuupra.verify.analytics import actual_tables, compare, expected_tables, kafka_events, source_topics

SUUUPRA = str(Path(sys.executable).parent / "suuupra")
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _environment(settings: Settings) -> dict[str, str]:
    return {**os.environ, **environment_overrides(settings, "topics", "clickhouse", "flink")}


# Readable events whose time no event of this platform can have: the job dead-letters them (invalid_event_time).
IMPOSSIBLE_TIMES = (7_258_118_400_000, 1_000)  # 2200-01-01 and one second into 1970, epoch ms


# Text JSON must escape, or carry as multi-byte UTF-8: raw_events.payload must hold it as the producer sent it, in a
# top-level string, a map's key and value, and an array's item.
AWKWARD_TEXT = 'say "hi" \\ back\\slash\ttab\nline\r\x00nul\x01ctl\x7f \u2028 é 漢字 😀'
# The top-level string field it goes into, per event type. None of them is an id or an amount the job checks: the
# event stays valid (a coupon code with no discount is one the order did not use).
AWKWARD_FIELDS = {
    "clickstream.session_started": "user_agent",
    "order.created": "coupon_code",
    "user.registered": "display_name",
    "clickstream.search_performed": "query",
    "content.published": "description",
}


def _with_awkward_text(event_type: str, value: dict[str, Any]) -> None:
    if field := AWKWARD_FIELDS.get(event_type):
        value[field] = AWKWARD_TEXT
    if event_type == "clickstream.search_performed":
        # Keys in code point order (Python's sort_keys) are not in UTF-16 order: U+E000 sorts before an emoji.
        value["filters"] = {**value["filters"], AWKWARD_TEXT: AWKWARD_TEXT, "\ue000 private use": "", "😀": ""}
    if event_type == "content.published":
        value["tags"] = [*value["tags"], AWKWARD_TEXT]


def journeys(seed: int, start_ms: int = START) -> SimulationProfile:
    """The simulation `_publish` sends: out-of-order and late events among 60 users."""
    return SimulationProfile(seed=seed, start_time_ms=start_ms, users=60, out_of_order_share=0.08, late_share=0.03)


def _publish(settings: Settings, count: int, seed: int, start_ms: int = START) -> int:
    """Journeys with out-of-order and late events, and among them malformed records and readable events at impossible
    times; returns how many of those the job must dead-letter."""
    publisher = EventPublisher(settings)
    read_by_job = set(source_topics(settings))
    malformed = 0
    for index, event in enumerate(generate(journeys(seed, start_ms), count)):
        if index % 3 == 0:
            _with_awkward_text(event.event_type, event.value)
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
        if index % 500 == 11 and topic in read_by_job:
            when = IMPOSSIBLE_TIMES[index % len(IMPOSSIBLE_TIMES)]
            publisher.publish({**event.value, "event_id": str(uuid.UUID(int=random.Random(index).getrandbits(128))),
                               "event_time": when})  # fmt: skip
            malformed += 1
    publisher.flush()
    return malformed


def _dead_letter_offsets(settings: Settings) -> set[tuple[str, str, str]]:
    """The originals dead-lettered (a restore may dead-letter one twice: the sink is at-least-once)."""
    letters = read_dead_letters(settings.kafka.client_config(), settings.topics.dead_letter)
    for letter in letters:
        assert letter.headers["reason"]
        assert letter.headers["reason.code"] in {"malformed_record", "unknown_schema", "invalid_event_time"}
    return {(h["original.topic"], h["original.partition"], h["original.offset"]) for h in (x.headers for x in letters)}


def expected_for(settings: Settings) -> dict[str, set[tuple[Any, ...]]]:
    """The oracle's tables for what the job's topics hold now."""
    expected = expected_tables(kafka_events(settings), settings.flink.max_out_of_orderness_s * 1000)
    assert expected["late_events"], "the input must contain late events"
    return expected


def _differences(settings: Settings, expected: dict[str, set[tuple[Any, ...]]] | None = None) -> dict[str, str]:
    """Per table, what ClickHouse holds that the oracle does not expect, and the reverse (empty: all equal)."""
    expected = expected if expected is not None else expected_for(settings)
    backend = server_backend(settings)
    try:
        actual = actual_tables(backend, settings.clickhouse.database)
    finally:
        backend.close()
    return {check.table: f"missing {check.missing}, extra {check.extra}" for check in compare(expected, actual)
            if not check.equal}  # fmt: skip


def _assert_matches_oracle(settings: Settings, malformed: int) -> None:
    differences = _differences(settings)
    assert differences == {}, str(differences)[:3000]
    assert len(_dead_letter_offsets(settings)) == malformed


def raw_rows(settings: Settings) -> int:
    backend = server_backend(settings)
    try:
        return int(backend.query(f"SELECT count() FROM {settings.clickhouse.database}.raw_events FINAL").rows[0][0])
    finally:
        backend.close()


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextmanager
def job_running(
    name: str, environment: dict[str, str], output: Path, *arguments: str, settings: Settings | None = None
) -> Iterator[None]:
    """`suuupra jobs run NAME [ARGUMENTS]`, its output in `output`; afterwards the job is killed and the platform made
    whole. Given `settings`, it is stopped as a user stops it, with Ctrl-C (SIGINT): it must exit with 130, say how to
    go on from its last checkpoint, and leave no temporary files."""
    with output.open("wb") as sink:
        # With Ctrl-C's default action, as in a terminal: a test session started in the background (nohup ... &)
        # ignores SIGINT, and so would the job it starts.
        job = subprocess.Popen([SUUUPRA, "jobs", "run", name, *arguments], env=environment, start_new_session=True,
                               stdout=sink, stderr=subprocess.STDOUT, preexec_fn=_default_sigint)  # fmt: skip
    try:
        yield
        if settings is not None:
            os.killpg(job.pid, signal.SIGINT)
            assert job.wait(60) == 130, output.read_text()[-3000:]
            said = output.read_text()
            assert f"stopped; `suuupra jobs run {name} --restore latest`" in said and "Traceback" not in said, said
            # Removed as the process exits, while its JVM, which ignores SIGINT, shuts down: it may write a last file.
            temp = settings.paths.jvm_temp_dir / f"jvm-{job.pid}"
            assert wait_until(lambda: not temp.exists(), 30, interval=0.5), sorted(temp.rglob("*"))[:20]
    finally:
        # The JVM ignores SIGINT and may outlive the command by a moment: the group is killed either way.
        with suppress(ProcessLookupError):
            os.killpg(job.pid, signal.SIGKILL)
        job.wait(30)
        subprocess.run([SUUUPRA, "platform", "up"], check=False, capture_output=True, timeout=300)
