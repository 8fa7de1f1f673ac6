"""The analytics job's decoder checks a record's `event_type` header as Kafka's `lastHeader` finds it: the last header
of that key decides, whatever headers come before it or carry the same value under another key (EventDecoder compares
values first and decodes a header's key only when that can change the answer)."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import pytest

from connectors.kafka.dead_letter import read_dead_letters
from suuupra.clickhouse.migrate import server_backend
from suuupra.events import EVENT_TYPE_HEADER, EventPublisher
from suuupra.settings import Settings
from suuupra.simulate.journeys import generate
from suuupra.verify.analytics import source_topics
from tests.jobs.analytics_support import SUUUPRA, _environment, journeys

pytestmark = pytest.mark.platform

WRONG = b"user.teleported"

# Each case: its headers, with TYPE standing for the event's own type, and whether the job accepts the event.
TYPE = b"<type>"
CASES: dict[str, tuple[list[tuple[str, bytes | None]], bool]] = {
    "a later header corrects an earlier one": ([(EVENT_TYPE_HEADER, WRONG), (EVENT_TYPE_HEADER, TYPE)], True),
    "a later header contradicts an earlier one": ([(EVENT_TYPE_HEADER, TYPE), (EVENT_TYPE_HEADER, WRONG)], False),
    "another key with the type's value does not correct it": ([(EVENT_TYPE_HEADER, WRONG), ("trace", TYPE)], False),
    "another key with the type's value before it": ([("trace", TYPE), (EVENT_TYPE_HEADER, WRONG)], False),
    "a last header without a value": ([(EVENT_TYPE_HEADER, WRONG), (EVENT_TYPE_HEADER, None)], True),
    "no event_type header at all": ([("trace", WRONG)], True),
}  # fmt: skip


def test_the_last_event_type_header_decides_whether_a_record_contradicts_its_event(job_settings: Settings) -> None:
    publisher = EventPublisher(job_settings)
    read_by_job = set(source_topics(job_settings))
    events = [e for e in generate(journeys(seed=41), 400) if publisher.topic_of(e.event_type) in read_by_job]
    cases: dict[str, tuple[str, bool]] = {}  # event id -> (case, accepted)
    for (name, (headers, accepted)), event in zip(CASES.items(), events, strict=False):
        value: dict[str, Any] = {**event.value, "event_id": str(uuid.uuid4())}
        topic = publisher.topic_of(event.event_type)
        body = publisher.producer.serializer.serialize(topic, publisher.catalog.schema_for(event.event_type).schema,
                                                       value)  # fmt: skip
        own = event.event_type.encode()
        publisher.producer.produce_raw(topic, str(value["user_id"]).encode(), body,
                                       [(key, own if v == TYPE else v) for key, v in headers],
                                       timestamp_ms=int(value["event_time"]))  # fmt: skip
        cases[str(value["event_id"])] = (name, accepted)
    publisher.flush()
    assert len(cases) == len(CASES), "every header layout needs an event of its own"

    result = subprocess.run([SUUUPRA, "jobs", "run", "analytics", "--bounded"], env=_environment(job_settings),
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    backend = server_backend(job_settings)
    try:
        ids = ", ".join(f"'{event_id}'" for event_id in cases)
        query = f"SELECT event_id FROM {job_settings.clickhouse.database}.raw_events WHERE event_id IN ({ids})"
        archived = {str(row[0]) for row in backend.query(query).rows}
    finally:
        backend.close()
    letters = read_dead_letters(job_settings.kafka.client_config(), job_settings.topics.dead_letter)
    refused = {letter.headers["reason.code"] for letter in letters}
    assert refused <= {"schema_mismatch"}, refused
    wrong = {name: accepted for event_id, (name, accepted) in cases.items() if (event_id in archived) != accepted}
    assert wrong == {}, f"accepted when it should not be, or the reverse: {wrong}"
    assert len(letters) == sum(not accepted for _, accepted in cases.values())
