"""Which readable events a job takes in, decided again in plain Python from the rules docs/analytics.md states ("Bad
input"), not with the jobs' decoder: the verifiers compute a job's results from exactly these.

A readable record is refused when its event type is not one the catalogue puts on its topic, when it was written with
another type's schema or its `event_type` header names another type, when its event time is outside the valid range,
or when it holds a value no event of this platform can have: a negative count, amount or duration (an int or long
without a logical type), a UUID field that is not a canonical UUID or is the nil one, another `*_id` that is empty or
a null-ish word, a string (or an array of strings, in total) longer than `flink.max_string_bytes` in UTF-8.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.avro.values import to_wire
from connectors.kafka.consumer import ConsumedRecord
from schemas import Catalog, EventSchema, default_catalog
from suuupra.events import event_consumer, make_registry
from suuupra.settings import Settings

EVENT_TYPE_HEADER = "event_type"
NULLISH_IDS = frozenset({"", "null", "none", "nil", "undefined"})
CANONICAL_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
NIL_UUID = "00000000-0000-0000-0000-000000000000"
# The envelope's ids are UUIDs whatever a writer's schema says (connectors/jvm WriterSchema.ENVELOPE_UUIDS).
ENVELOPE_UUIDS = frozenset({"event_id", "correlation_id", "user_id"})


@dataclass(frozen=True)
class FieldRules:
    """A schema's fields, by what can make their value impossible."""

    numbers: tuple[str, ...]
    uuids: tuple[str, ...]
    ids: tuple[str, ...]
    strings: tuple[str, ...]
    string_arrays: tuple[str, ...]


# The logical types Avro's Java library recognises on these types (connectors/jvm's decoder sees no other: an unknown
# or misplaced logicalType is ignored, and the field is its plain type).
AVRO_LOGICAL_TYPES = {
    "int": frozenset({"date", "time-millis"}),
    "long": frozenset({"time-micros", "timestamp-millis", "timestamp-micros", "timestamp-nanos",
                       "local-timestamp-millis", "local-timestamp-micros", "local-timestamp-nanos"}),
    "string": frozenset({"uuid"}),
}  # fmt: skip


def _non_null(schema: Any) -> Any:
    """A union's first branch that is not null (the JVM's WriterSchema.nonNull); any other schema as it is."""
    if isinstance(schema, list):
        return next((branch for branch in schema if branch != "null"), schema)
    return schema


def _kind(schema: Any) -> tuple[Any, str | None]:
    """A schema's type, and its logical type if Avro recognises it there."""
    kind = schema.get("type") if isinstance(schema, dict) else schema
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    return kind, logical if isinstance(kind, str) and logical in AVRO_LOGICAL_TYPES.get(kind, ()) else None


def field_rules(schema: Mapping[str, Any]) -> FieldRules:
    """The rules of a record schema (parsed Avro JSON), classified as the jobs' decoder classifies a writer's fields
    (connectors/jvm WriterSchema): the envelope's ids are UUIDs whatever their type; an int or long without a
    logical type is a count, amount or duration; a string is checked for length, and is a UUID if marked uuid, else
    an id if named `*_id`; an array of strings is checked for its total length."""
    numbers, uuids, ids, strings, arrays = [], [], [], [], []
    for entry in schema["fields"]:
        name = entry["name"]
        if name in ENVELOPE_UUIDS:
            uuids.append(name)
            strings.append(name)
            continue
        field = _non_null(entry["type"])
        kind, logical = _kind(field)
        if kind in ("int", "long") and logical is None:
            numbers.append(name)
        elif kind == "string":
            strings.append(name)
            if logical == "uuid":
                uuids.append(name)
            elif name.endswith("_id"):
                ids.append(name)
        elif kind == "array" and _kind(_non_null(field["items"]))[0] == "string":
            arrays.append(name)
    return FieldRules(tuple(numbers), tuple(uuids), tuple(ids), tuple(strings), tuple(arrays))


def impossible_value(value: Mapping[str, Any], rules: FieldRules, max_string_bytes: int) -> str | None:
    """Why the event holds a value no event of this platform can have, or None."""
    for name in rules.numbers:
        if isinstance(value.get(name), int) and value[name] < 0:
            return f"{name} is negative"
    for name in rules.strings:
        if isinstance(value.get(name), str) and len(value[name].encode()) > max_string_bytes:
            return f"{name} is too long"
    for name in rules.string_arrays:
        items = value.get(name) or []
        if sum(len(item.encode()) for item in items if isinstance(item, str)) > max_string_bytes:
            return f"{name} holds too much text"
    for name in rules.uuids:
        text = value.get(name)
        if text is not None and (not CANONICAL_UUID.fullmatch(str(text)) or str(text) == NIL_UUID):
            return f"{name} is not a UUID"
    for name in rules.ids:
        text = value.get(name)
        if text is not None and str(text).strip().lower() in NULLISH_IDS:
            return f"{name} is not an id"
    return None


class Acceptance:
    """Decides, record by record, whether a job reading `topics` takes a readable record in."""

    def __init__(self, settings: Settings, catalog: Catalog, registry: SchemaRegistryClient | None = None) -> None:
        """With `registry`, a record's field rules come from its writer's schema (by the record's schema id), as the
        jobs' decoder takes them: a writer may add or drop a uuid logical type, a compatible change. Without, from
        the catalogue's schema of its type (`rules`)."""
        self.settings = settings
        self.catalog = catalog
        self.registry = registry
        self.rules = {event_type: field_rules(event.schema.parsed) for event_type, event in catalog.events.items()}
        self._writer_rules: dict[int, FieldRules] = {}
        self.valid_from, self.valid_until = settings.flink.event_time_range_ms

    def rules_for(self, record: ConsumedRecord, event: EventSchema) -> FieldRules:
        if self.registry is None:
            return self.rules[event.event_type]
        if (rules := self._writer_rules.get(record.schema_id)) is None:
            # The record was decoded with this schema: the registry has its text.
            writer = json.loads(self.registry.get_schema(record.schema_id).schema_str or "")
            rules = self._writer_rules[record.schema_id] = field_rules(writer)
        return rules

    def accepted(self, record: ConsumedRecord) -> dict[str, Any] | None:
        """The record's value as the job reads it (`as_read`) when the job takes it in, else None."""
        value: dict[str, Any] = to_wire(record.value)
        return None if self._refusal(record, value) is not None else self._as_read(record, value)

    def as_read(self, record: ConsumedRecord) -> dict[str, Any]:
        """The record's value (wire values) as the job's decoder hands it on: its UUIDs in lowercase (connectors/jvm
        WriterSchema.lowercaseUuids), so an id sent in either case is one id."""
        return self._as_read(record, to_wire(record.value))

    def refusal(self, record: ConsumedRecord) -> str | None:
        """Why the job refuses the record (a reason code of docs/analytics.md), or None when it takes it in."""
        return self._refusal(record, to_wire(record.value))

    def _as_read(self, record: ConsumedRecord, value: dict[str, Any]) -> dict[str, Any]:
        event = self.catalog.events.get(str(value.get("event_type")))
        if event is not None:
            for name in self.rules_for(record, event).uuids:
                if isinstance(value.get(name), str):
                    value[name] = value[name].lower()
        return value

    def _refusal(self, record: ConsumedRecord, value: dict[str, Any]) -> str | None:
        event_type = value.get("event_type")
        event = self.catalog.events.get(str(event_type)) if event_type is not None else None
        if event is None or self.settings.topics.resolve(event.topic) != record.topic:
            return "unknown_event_type"
        header = record.headers.get(EVENT_TYPE_HEADER)
        if record.record_name != event.record_name or (header is not None and header.decode() != event_type):
            return "schema_mismatch"
        time = value.get("event_time")
        if not isinstance(time, int) or not self.valid_from <= time < self.valid_until:
            return "invalid_event_time"
        if impossible_value(value, self.rules_for(record, event), self.settings.flink.max_string_bytes):
            return "invalid_value"
        return None


def accepted_events(
    settings: Settings, topics: Sequence[str], *, as_written: bool = False
) -> Iterator[tuple[ConsumedRecord, dict[str, Any]]]:
    """Each record of `topics`, read to their current end, that a job reading them takes in, with its value as the job
    reads it (`Acceptance.accepted`). The others are skipped and written nowhere. A uuid field is the text that was
    written, as the jobs' decoder reads it, so a form the decoder refuses is refused here too; `as_written`: each
    value has its writer's own fields (suuupra/events.py event_consumer)."""
    # One registry client for both: the writer schemas the consumer fetched are in its cache for the rules.
    registry = make_registry(settings)
    acceptance = Acceptance(settings, default_catalog(), registry)
    with event_consumer(
        settings, topics, registry=registry, read_only=True, as_written=as_written, uuids_as_text=True
    ) as consumer:
        for record in consumer.read_to_end():
            if (value := acceptance.accepted(record)) is not None:
                yield record, value
