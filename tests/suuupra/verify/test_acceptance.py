"""The verifiers' own acceptance rules (suuupra/verify/acceptance.py): every event the simulator makes is taken in,
and each way a readable record can be impossible is refused with the reason code the jobs' decoder gives it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.kafka.consumer import ConsumedRecord
from schemas import default_catalog
from suuupra.settings import Settings, load_settings
from suuupra.simulate.journeys import SimulationProfile, generate
from suuupra.verify.acceptance import Acceptance, field_rules

CATALOG = default_catalog()
NIL = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(profile="local")


def _record(settings: Settings, value: dict[str, Any], *, record_name: str | None = None, topic: str | None = None,
            header: str | None = None) -> ConsumedRecord:  # fmt: skip
    event = CATALOG.schema_for(str(value["event_type"])) if value["event_type"] in CATALOG.events else None
    name = record_name or (event.record_name if event else "com.suuupra.events.Unknown")
    return ConsumedRecord(
        topic=topic or settings.topics.resolve(event.topic if event else "clickstream"), partition=0, offset=0,
        timestamp_ms=0, key=None, schema_id=1, record_name=name, value=value, size_bytes=0,
        headers={"event_type": (header or str(value["event_type"])).encode()},
    )  # fmt: skip


def _events() -> list[dict[str, Any]]:
    return [event.value for event in generate(SimulationProfile(seed=3, users=40), 5000)]


def test_every_simulated_event_is_taken_in(settings: Settings) -> None:
    acceptance = Acceptance(settings, CATALOG)
    events = _events()
    assert len({event["event_type"] for event in events}) >= 10
    refused = [(event["event_type"], acceptance.refusal(_record(settings, event))) for event in events]
    assert [entry for entry in refused if entry[1] is not None] == []


def _one(event_type: str) -> dict[str, Any]:
    return next(dict(event) for event in _events() if event["event_type"] == event_type)


@pytest.mark.parametrize(
    ("event_type", "change", "code"),
    [
        ("payment.initiated", {"amount_minor": -1}, "invalid_value"),
        ("clickstream.content_viewed", {"watch_seconds": -5}, "invalid_value"),
        ("payment.initiated", {"user_id": NIL}, "invalid_value"),
        ("payment.initiated", {"payment_id": "not-a-uuid"}, "invalid_value"),
        ("payment.initiated", {"currency": "x" * (64 * 1024 + 1)}, "invalid_value"),
        ("payment.initiated", {"event_time": 1_000}, "invalid_event_time"),
        ("payment.initiated", {"event_time": 7_258_118_400_000}, "invalid_event_time"),
        ("payment.initiated", {"event_type": "payment.teleported"}, "unknown_event_type"),
    ],
)
def test_an_impossible_event_is_refused_with_its_reason(
    settings: Settings, event_type: str, change: dict[str, Any], code: str
) -> None:
    acceptance = Acceptance(settings, CATALOG)
    assert acceptance.refusal(_record(settings, _one(event_type))) is None
    assert acceptance.refusal(_record(settings, {**_one(event_type), **change})) == code


def test_a_nullish_id_is_refused(settings: Settings) -> None:
    acceptance = Acceptance(settings, CATALOG)
    event = _one("payment.initiated")
    assert acceptance.rules["payment.initiated"].ids == ("device_id",)
    for word in ("", " null ", "None", "nil", "UNDEFINED"):
        assert acceptance.refusal(_record(settings, {**event, "device_id": word})) == "invalid_value"


def test_a_type_on_the_wrong_topic_another_schema_or_a_contradicting_header_is_refused(settings: Settings) -> None:
    acceptance = Acceptance(settings, CATALOG)
    payment = _one("payment.initiated")
    view = _one("clickstream.content_viewed")
    assert acceptance.refusal(_record(settings, payment, topic=settings.topics.clickstream)) == "unknown_event_type"
    other = CATALOG.schema_for("clickstream.content_viewed").record_name
    assert acceptance.refusal(_record(settings, payment, record_name=other)) == "schema_mismatch"
    assert acceptance.refusal(_record(settings, view, header="clickstream.session_started")) == "schema_mismatch"


def test_an_event_is_read_with_its_uuids_in_lowercase_and_its_other_text_as_sent(settings: Settings) -> None:
    acceptance = Acceptance(settings, CATALOG)
    event = _one("clickstream.content_viewed")
    uuids = acceptance.rules["clickstream.content_viewed"].uuids
    assert {"event_id", "user_id", "correlation_id", "content_id", "course_id"} <= set(uuids)
    shouted = {**event, **{name: event[name].upper() for name in uuids}, "producer": "Simulator-X"}
    assert acceptance.refusal(_record(settings, shouted)) is None
    assert acceptance.as_read(_record(settings, shouted)) == {**event, "producer": "Simulator-X"}
    assert acceptance.accepted(_record(settings, shouted)) == {**event, "producer": "Simulator-X"}
    urn = {**shouted, "user_id": "urn:uuid:" + event["user_id"]}  # Python's UUID reads it; the jobs refuse it
    assert acceptance.refusal(_record(settings, urn)) == "invalid_value"
    assert acceptance.accepted(_record(settings, urn)) is None


def test_a_writer_schema_is_classified_as_the_jobs_decoder_classifies_it() -> None:
    """The same rules as connectors/jvm WriterSchema: the envelope's ids are UUIDs whatever their type, a union is its
    first branch that is not null, a logical type Avro does not recognise there is ignored, and an array's items may
    carry properties."""
    rules = field_rules({"type": "record", "name": "Writer", "fields": [
        {"name": "event_id", "type": "int"},
        {"name": "user_id", "type": ["null", "string", "int"]},
        {"name": "amount_minor", "type": ["null", "long", "string"]},
        {"name": "took_ms", "type": {"type": "long", "logicalType": "duration-ms"}},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "timestamp-millis"}},
        {"name": "content_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "device_id", "type": "string"},
        {"name": "tags", "type": {"type": "array", "items": {"type": "string", "avro.java.string": "String"}}},
        {"name": "ids", "type": ["null", {"type": "array", "items": {"type": "string", "logicalType": "uuid"}}]},
    ]})  # fmt: skip
    assert rules.uuids == ("event_id", "user_id", "content_id")
    assert rules.numbers == ("amount_minor", "took_ms", "day")
    assert rules.ids == ("device_id",)
    assert rules.strings == ("event_id", "user_id", "content_id", "device_id")
    assert rules.string_arrays == ("tags", "ids")


class _Registry:
    """The one schema a test record was written with, as the registry returns it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema_str = json.dumps(schema)
        self.asked: list[int] = []

    def get_schema(self, schema_id: int) -> _Registry:
        self.asked.append(schema_id)
        return self


def test_with_a_registry_the_writers_schema_decides_which_fields_are_uuids(settings: Settings) -> None:
    event = _one("clickstream.content_viewed")
    writer = json.loads(CATALOG.schema_for("clickstream.content_viewed").schema.text)
    for field in writer["fields"]:
        if field["name"] in ("content_id", "course_id"):
            field["type"] = "string"  # the uuid logical type dropped: a compatible change
    registry = _Registry(writer)
    acceptance = Acceptance(settings, CATALOG, registry)  # type: ignore[arg-type]
    shouted = {**event, "user_id": event["user_id"].upper(), "content_id": event["content_id"].upper()}
    record = _record(settings, shouted)
    assert acceptance.refusal(record) is None
    read = acceptance.as_read(record)
    assert (read["user_id"], read["content_id"]) == (event["user_id"], event["content_id"].upper())
    assert acceptance.refusal(_record(settings, {**event, "content_id": "lesson-7"})) is None  # not a UUID field
    assert registry.asked and set(registry.asked) == {1}
    assert Acceptance(settings, CATALOG).refusal(_record(settings, {**event, "content_id": "lesson-7"})) == (
        "invalid_value"
    )
