"""Hostile records for a topic: what a broken, confused or malicious producer could write there. Each comes with the
dead-letter reason codes a job may give it (connectors/flink/events.py); none of them is an event a job may count.

Built from valid sample events (one or more per event type, any topic) and deterministic for a seed: the same
topics, samples and seed give the same bytes, so a failure can be replayed."""

from __future__ import annotations

import json
import random
import struct
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.avro.schema import AvroSchema
from connectors.avro.serde import AvroSerializer
from schemas import Catalog
from suuupra.events import EVENT_TYPE_HEADER
from suuupra.settings import Settings
from suuupra.simulate.runner import UNKNOWN_SCHEMA_ID

MALFORMED = "malformed_record"
INVALID_VALUE = "invalid_value"

# kind -> the reason codes a job may dead-letter it with (a wrong schema id may fail to decode, or decode and then
# not be its event type's schema, depending on the bytes).
KINDS: dict[str, frozenset[str]] = {
    "random_bytes": frozenset({MALFORMED}),
    "empty_value": frozenset({MALFORMED}),
    "tombstone": frozenset({MALFORMED}),
    "truncated_avro": frozenset({MALFORMED}),
    "trailing_bytes": frozenset({MALFORMED}),
    "unknown_schema_id": frozenset({"unknown_schema"}),
    "wrong_schema_id": frozenset({MALFORMED, "schema_mismatch"}),
    "negative_value": frozenset({INVALID_VALUE}),
    "time_1970": frozenset({"invalid_event_time"}),
    "time_2200": frozenset({"invalid_event_time"}),
    "megabyte_string": frozenset({INVALID_VALUE}),
    "empty_id": frozenset({INVALID_VALUE}),
    "nullish_id": frozenset({INVALID_VALUE}),
    "nil_uuid": frozenset({INVALID_VALUE}),
    # A form Python's uuid.UUID reads (so fastavro does) but that is not a UUID's canonical text, which a job requires.
    "urn_uuid": frozenset({INVALID_VALUE}),
    "unknown_event_type": frozenset({"unknown_event_type"}),
    "foreign_event_type": frozenset({"unknown_event_type"}),
    "unexpected_schema": frozenset({"unknown_event_type"}),
    "header_mismatch": frozenset({"schema_mismatch"}),
}
# A megabyte, less what keeps the record within Kafka's default 1 MB limit (librdkafka's message.max.bytes).
MEGABYTE = 960_000
TIME_1970_MS = 1_000
TIME_2200_MS = 7_258_118_400_000


@dataclass(frozen=True)
class HostileRecord:
    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    reason_codes: frozenset[str]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _schema_fields(schema: AvroSchema) -> list[dict[str, Any]]:
    fields: list[dict[str, Any]] = json.loads(schema.text)["fields"]
    return fields


def _plain_type(field: dict[str, Any]) -> Any:
    kind = field["type"]
    if isinstance(kind, list):
        kind = next((branch for branch in kind if branch != "null"), kind[0])
    return kind


def _numbers(schema: AvroSchema) -> list[str]:
    return [f["name"] for f in _schema_fields(schema) if _plain_type(f) in ("int", "long")]


def _text_fields(schema: AvroSchema) -> list[str]:
    """Plain string fields that are not ids nor the event type: where a megabyte of text could hide."""
    return [
        f["name"] for f in _schema_fields(schema)
        if _plain_type(f) == "string" and not f["name"].endswith("_id") and f["name"] != "event_type"
    ]  # fmt: skip


def _unexpected_schema(schema: AvroSchema) -> AvroSchema:
    """A schema of a type the catalogue does not know, shaped like a real one (registered like any other)."""
    parsed = json.loads(schema.text)
    parsed["name"] = f"{parsed['name']}Hologram"
    return AvroSchema.from_text(json.dumps(parsed))


class HostileCorpus:
    """The hostile records of one topic: `per_kind` of each kind that applies to the topic's samples."""

    def __init__(
        self, settings: Settings, catalog: Catalog, serializer: AvroSerializer, samples: Sequence[Mapping[str, Any]],
        seed: int,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.catalog = catalog
        self.serializer = serializer
        self.samples = list(samples)
        self.seed = seed

    def topic_of(self, event_type: str) -> str:
        return self.settings.topics.resolve(self.catalog.schema_for(event_type).topic)

    def records(self, topic: str, per_kind: int = 1) -> list[HostileRecord]:
        rng = random.Random(f"{self.seed}:{topic}")
        own = [s for s in self.samples if self.topic_of(str(s["event_type"])) == topic]
        foreign = [s for s in self.samples if self.topic_of(str(s["event_type"])) != topic]
        if not own:
            raise ValueError(f"no sample event of topic {topic}")
        records: list[HostileRecord] = []
        for kind in KINDS:
            made = 0
            for attempt in range(per_kind * len(own)):
                if made == per_kind:
                    break
                sample = own[(attempt + made) % len(own)]
                record = self._make(kind, topic, sample, own, foreign, rng)
                if record is not None:
                    records.append(record)
                    made += 1
        return records

    def _valid(self, topic: str, event_type: str, value: Mapping[str, Any]) -> bytes:
        return self.serializer.serialize(topic, self.catalog.schema_for(event_type).schema, value)

    def _make(
        self, kind: str, topic: str, sample: Mapping[str, Any], own: list[Mapping[str, Any]],
        foreign: list[Mapping[str, Any]], rng: random.Random,
    ) -> HostileRecord | None:  # fmt: skip
        event_type = str(sample["event_type"])
        schema = self.catalog.schema_for(event_type).schema
        # A fresh event id: a hostile record must never pass for the valid sample it was made from.
        value: dict[str, Any] = {**sample, "event_id": _uuid(rng)}
        header: str | None = event_type
        body: bytes | None
        if kind == "random_bytes":
            # Any first byte but the Avro magic 0: random bytes are not a framed record, whatever follows.
            body = bytes([rng.randrange(1, 256)]) + rng.randbytes(rng.randrange(1, 400))
            header = None
        elif kind == "empty_value":
            body = b""
        elif kind == "tombstone":
            body = None
        elif kind == "truncated_avro":
            valid = self._valid(topic, event_type, value)
            body = valid[: rng.randrange(6, max(7, len(valid) - 1))]
        elif kind == "trailing_bytes":
            body = self._valid(topic, event_type, value) + rng.randbytes(rng.randrange(1, 16))
        elif kind == "unknown_schema_id":
            body = struct.pack(">bI", 0, UNKNOWN_SCHEMA_ID) + self._valid(topic, event_type, value)[5:]
        elif kind == "wrong_schema_id":
            others = [s for s in own if s["event_type"] != event_type]
            if not others:
                return None
            other = self.catalog.schema_for(str(others[0]["event_type"])).schema
            body = struct.pack(">bI", 0, self.serializer.schema_id(topic, other))
            body += self._valid(topic, event_type, value)[5:]
        elif kind == "negative_value":
            numbers = _numbers(schema)
            if not numbers:
                return None
            value[numbers[0]] = -rng.randrange(1, 1_000_000)
            body = self._valid(topic, event_type, value)
        elif kind in ("time_1970", "time_2200"):
            value["event_time"] = TIME_1970_MS if kind == "time_1970" else TIME_2200_MS
            body = self._valid(topic, event_type, value)
        elif kind == "megabyte_string":
            texts = _text_fields(schema)
            value[texts[-1]] = "x" * MEGABYTE
            body = self._valid(topic, event_type, value)
        elif kind in ("empty_id", "nullish_id", "nil_uuid"):
            value["user_id"] = {"empty_id": "", "nullish_id": "null", "nil_uuid": str(uuid.UUID(int=0))}[kind]
            body = self._valid(topic, event_type, value)
        elif kind == "urn_uuid":
            value["user_id"] = uuid.UUID(str(sample["user_id"])).urn
            body = self._valid(topic, event_type, value)
        elif kind == "unknown_event_type":
            value["event_type"] = f"{event_type.split('.')[0]}.teleported"
            header = str(value["event_type"])
            body = self._valid(topic, event_type, value)
        elif kind == "foreign_event_type":
            if not foreign:
                return None
            other_value = {**foreign[0], "event_id": _uuid(rng)}
            header = str(other_value["event_type"])
            body = self._valid(topic, header, other_value)
        elif kind == "unexpected_schema":
            value["event_type"] = f"{event_type.split('.')[0]}.hologram_viewed"
            header = str(value["event_type"])
            body = self.serializer.serialize(topic, _unexpected_schema(schema), value)
        elif kind == "header_mismatch":
            others = [s for s in own if s["event_type"] != event_type] or foreign
            header = str(others[0]["event_type"])
            body = self._valid(topic, event_type, value)
        else:
            raise ValueError(f"unknown hostile kind {kind}")
        key = None if kind == "empty_id" else str(sample["user_id"]).encode()
        headers = ((EVENT_TYPE_HEADER, header.encode()),) if header is not None else ()
        return HostileRecord(kind, topic, key, body, headers, KINDS[kind])


def interleave(valid: Sequence[Any], hostile: Sequence[HostileRecord], tail: int) -> Iterator[Any]:
    """The valid items with the hostile records spread evenly among all but the last `tail` valid ones."""
    head = max(1, len(valid) - tail)
    every = max(1, head // max(1, len(hostile)))
    pending = iter(hostile)
    for index, item in enumerate(valid):
        yield item
        if index < head and index % every == every - 1:
            record = next(pending, None)
            if record is not None:
                yield record
    yield from pending
