"""Ids as the UUIDs they are. The envelope's ids (`event_id`, `user_id`, `correlation_id`) reach raw_events' UUID
columns in either case, and are checked as UUIDs even when a producer's writer schema drops their uuid logical type
(a change the registry accepts): a non-UUID id is dead-lettered, never sent to ClickHouse, where it would fail the job
on every restart (connectors/jvm WriterSchema.ENVELOPE_UUIDS). And a UUID sent in uppercase is the same id as in
lowercase in every table (WriterSchema.lowercaseUuids)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Collection
from typing import Any

import pytest

from connectors.avro.schema import AvroSchema
from connectors.avro.serde import AvroSerializer
from connectors.kafka.dead_letter import read_dead_letters
from suuupra.clickhouse.migrate import server_backend
from suuupra.events import EVENT_TYPE_HEADER, EventPublisher, event_time_ms, make_registry
from suuupra.settings import Settings
from suuupra.simulate.journeys import generate
from suuupra.verify.acceptance import ENVELOPE_UUIDS, Acceptance
from suuupra.verify.analytics import source_topics
from tests.jobs.analytics_support import SUUUPRA, _differences, _environment, journeys

pytestmark = pytest.mark.platform
VIEW = "clickstream.content_viewed"


def _without_uuid_types(schema: AvroSchema, names: Collection[str] = ENVELOPE_UUIDS) -> AvroSchema:
    """The schema with these fields (the envelope's ids by default) as plain strings."""
    document = json.loads(schema.text)
    for field in document["fields"]:
        if field["name"] in names and isinstance(field["type"], dict):
            field["type"] = field["type"]["type"]
    return AvroSchema.from_text(json.dumps(document))


def test_envelope_ids_arrive_as_uuids_in_either_case_and_a_non_uuid_one_is_dead_lettered(
    job_settings: Settings,
) -> None:
    publisher = EventPublisher(job_settings)
    read_by_job = set(source_topics(job_settings))
    upper, plain, not_a_uuid = [e for e in generate(journeys(seed=43), 400) if publisher.topic_of(e.event_type)
                                in read_by_job and e.event_type != "clickstream.content_viewed"][:3]  # fmt: skip
    sent: list[tuple[dict[str, Any], AvroSchema]] = []
    ids = {name: str(uuid.uuid4()) for name in ENVELOPE_UUIDS}
    sent.append(({**upper.value, **{name: value.upper() for name, value in ids.items()}},
                 publisher.catalog.schema_for(upper.event_type).schema))  # fmt: skip
    plain_schema = _without_uuid_types(publisher.catalog.schema_for(plain.event_type).schema)
    sent.append(({**plain.value, "event_id": str(uuid.uuid4())}, plain_schema))
    refused_id = str(uuid.uuid4())
    sent.append(({**not_a_uuid.value, "event_id": refused_id, "user_id": "learner-7"},
                 _without_uuid_types(publisher.catalog.schema_for(not_a_uuid.event_type).schema)))  # fmt: skip
    # The registry takes the plain-string variant as a new version of its subject (the same Avro type).
    registering = AvroSerializer(make_registry(job_settings), auto_register=True)
    plain_topic = publisher.topic_of(plain.event_type)
    catalog_schema = publisher.catalog.schema_for(plain.event_type).schema
    assert registering.schema_id(plain_topic, plain_schema) != registering.schema_id(plain_topic, catalog_schema), (
        "the registry must keep the plain-string writer schema apart, or the decoder never reads with it"
    )
    for value, schema in sent:
        topic = publisher.topic_of(value["event_type"])
        body = registering.serialize(topic, schema, value)
        publisher.producer.produce_raw(topic, str(value["user_id"]).encode(), body, [],
                                       timestamp_ms=int(value["event_time"]))  # fmt: skip
    publisher.flush()

    result = subprocess.run([SUUUPRA, "jobs", "run", "analytics", "--bounded"], env=_environment(job_settings),
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    backend = server_backend(job_settings)
    try:
        archived = backend.query(
            "SELECT toString(event_id), toString(user_id), toString(correlation_id) "
            f"FROM {job_settings.clickhouse.database}.raw_events FINAL"
        ).rows
    finally:
        backend.close()
    expected = {(str(v["event_id"]).lower(), str(v["user_id"]).lower(), str(v["correlation_id"]).lower())
                for v, _ in sent[:2]}  # fmt: skip
    assert set(archived) == expected
    assert (ids["event_id"], ids["user_id"], ids["correlation_id"]) in set(archived)
    letters = read_dead_letters(job_settings.kafka.client_config(), job_settings.topics.dead_letter)
    assert [letter.headers["reason.code"] for letter in letters] == ["invalid_value"]
    assert "user_id 'learner-7' is not a UUID" in letters[0].headers["reason"]


def test_a_uuid_sent_in_uppercase_is_the_same_id_in_every_table(job_settings: Settings) -> None:
    """Every other event has its UUIDs (its schema's uuid fields and the envelope's ids) in uppercase; its Kafka key,
    by which a producer partitions a user's events, stays the user's id as the service made it. Every table equals
    the oracle's, which reads each id in lowercase: a user is one user in the sessions, the distinct viewers and the
    funnel, a lesson one lesson in content_minute, and raw_events.payload holds the ids in lowercase. Without the
    decoder's lowercasing, a user's two spellings made two users' sessions, and the payload kept the uppercase ids.

    Some views are written with a schema whose content_id and course_id are plain strings (dropping a logical type is
    a compatible change): those ids are text, not UUIDs, to the job, which keeps their case, and so must the oracle,
    which takes each record's rules from its writer's schema."""
    publisher = EventPublisher(job_settings)
    registering = AvroSerializer(make_registry(job_settings), auto_register=True)
    rules = Acceptance(job_settings, publisher.catalog).rules
    read_by_job = set(source_topics(job_settings))
    uppercase_ids = plain_content_ids = 0
    for index, event in enumerate(generate(journeys(seed=44), 600)):
        value = dict(event.value)
        topic = publisher.topic_of(event.event_type)
        schema = publisher.catalog.schema_for(event.event_type).schema
        if index % 2 and topic in read_by_job:
            for name in rules[event.event_type].uuids:
                if isinstance(value.get(name), str):
                    value[name] = value[name].upper()
                    uppercase_ids += 1
            if event.event_type == VIEW and index % 4 == 3:
                schema = _without_uuid_types(schema, ("content_id", "course_id"))
                plain_content_ids += 1
        body = registering.serialize(topic, schema, value)
        publisher.producer.produce_raw(topic, str(event.value["user_id"]).encode(), body,
                                       [(EVENT_TYPE_HEADER, event.event_type.encode())],
                                       timestamp_ms=event_time_ms(value))  # fmt: skip
    publisher.flush()
    assert uppercase_ids > 600, "most events the job reads must carry ids in uppercase"
    assert plain_content_ids >= 5, "some views must come from the plain-string writer schema"

    result = subprocess.run([SUUUPRA, "jobs", "run", "analytics", "--bounded"], env=_environment(job_settings),
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    differences = _differences(job_settings)
    assert differences == {}, str(differences)[:3000]
    assert read_dead_letters(job_settings.kafka.client_config(), job_settings.topics.dead_letter) == []
    backend = server_backend(job_settings)
    try:
        spellings = backend.query(
            f"SELECT countIf(content_id = upper(content_id)), countIf(content_id = lower(content_id)) "
            f"FROM {job_settings.clickhouse.database}.content_minute FINAL"
        ).rows[0]
    finally:
        backend.close()
    assert spellings[0] > 0 and spellings[1] > 0, "views of both writer schemas must be counted, each as written"
