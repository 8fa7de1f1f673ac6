"""The event catalogue: every event type, its Avro schema file and the logical topic it is published to.

The `.avsc` files beside this module are the single source of truth for every producer and consumer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from connectors.avro.schema import AvroSchema

SCHEMAS_DIR = Path(__file__).resolve().parent
CATALOG_FILE = "catalog.yaml"
ENVELOPE_FILE = "envelope.avsc"


class CatalogError(ValueError):
    """The catalogue or a schema file is inconsistent; the message names the file."""


@dataclass(frozen=True)
class EventSchema:
    event_type: str
    topic: str  # logical topic, resolved to a Kafka topic name by the settings
    path: Path
    schema: AvroSchema

    @property
    def record_name(self) -> str:
        return self.schema.fullname


@dataclass(frozen=True)
class Catalog:
    events: dict[str, EventSchema]
    envelope_fields: tuple[str, ...]

    def schema_for(self, event_type: str) -> EventSchema:
        try:
            return self.events[event_type]
        except KeyError:
            raise CatalogError(f"unknown event type '{event_type}'; see schemas/{CATALOG_FILE}") from None

    def by_record_name(self) -> dict[str, EventSchema]:
        return {event.record_name: event for event in self.events.values()}

    def topics(self) -> set[str]:
        return {event.topic for event in self.events.values()}


def load_catalog(directory: Path = SCHEMAS_DIR) -> Catalog:
    catalog_path = directory / CATALOG_FILE
    try:
        entries = yaml.safe_load(catalog_path.read_text())["events"]
    except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
        raise CatalogError(f"{catalog_path}: cannot read the 'events' mapping: {error}") from error
    events: dict[str, EventSchema] = {}
    for event_type, entry in entries.items():
        path = directory / entry["schema"]
        try:
            schema = AvroSchema.from_text(path.read_text())
        except (OSError, ValueError) as error:
            raise CatalogError(f"{path}: {error}") from error
        events[event_type] = EventSchema(event_type, entry["topic"], path, schema)
    envelope = json.loads((directory / ENVELOPE_FILE).read_text())
    return Catalog(events, tuple(field["name"] for field in envelope["fields"]))


@cache
def default_catalog() -> Catalog:
    return load_catalog()
