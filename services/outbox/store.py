"""Writing events into the outbox, inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

import fastavro
import psycopg
from fastavro.validation import ValidationError

from connectors.avro.values import to_wire
from schemas import Catalog, default_catalog


class InvalidEventError(ValueError):
    """An event that does not match its schema; the message names the field."""


def create_outbox(connection: psycopg.Connection[Any]) -> None:
    connection.execute(resources.files("services.outbox").joinpath("schema.sql").read_text())


def enqueue(connection: psycopg.Connection[Any], event: Mapping[str, Any], catalog: Catalog | None = None) -> None:
    """Adds the event to the outbox in the connection's current transaction: it is published only if that
    transaction commits. The event is checked against its schema here, so a bad event fails the business
    transaction instead of the relay."""
    catalog = catalog or default_catalog()
    schema = catalog.schema_for(str(event["event_type"]))  # unknown event types fail here
    wire = to_wire(dict(event))
    try:
        fastavro.validation.validate(wire, schema.schema.parsed, raise_errors=True)
    except ValidationError as error:
        raise InvalidEventError(f"{event['event_type']} does not match its schema: {error}") from error
    connection.execute(
        "INSERT INTO outbox (event_id, event_type, record_key, payload) VALUES (%s, %s, %s, %s)",
        (wire["event_id"], wire["event_type"], str(wire["user_id"]), json.dumps(wire)),
    )
