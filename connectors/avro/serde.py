"""Avro in the Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the Avro binary body.

Built on fastavro; schema ids and parsed writer schemas are cached per process, so the registry is asked once
per schema, not once per record.
"""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.read import SchemaResolutionError
from fastavro.schema import SchemaParseException

from connectors.avro.errors import (
    DeserializationError,
    IncompatibleSchemaError,
    MalformedRecordError,
    RegistryUnavailableError,
    SerializationError,
    UnknownSchemaError,
)
from connectors.avro.schema import AvroSchema
from connectors.avro.subject import SubjectNameStrategy, topic_record_name

MAGIC_BYTE = 0
# Confluent error codes the registry answers with; any other failure (a bare 404 from a wrong URL or a proxy)
# means the registry is unreachable, not that the record is bad.
SUBJECT_NOT_FOUND = 40401
SCHEMA_NOT_FOUND = 40403
HEADER = struct.Struct(">bI")
# An id the registry said it does not have is not asked again for this long: a producer writing ids that do not exist
# would otherwise cost a registry round trip per record (milliseconds each, thousands of records).
UNKNOWN_SCHEMA_RECHECK_S = 5.0
# Random ids must not grow the memory of refused ids without end: each memory (unknown ids, unreadable schemas) keeps
# at most this many.
MAX_REMEMBERED_SCHEMA_IDS = 10_000
_Remembered = TypeVar("_Remembered")


def _registry_failure(error: Exception, what: str) -> RegistryUnavailableError:
    return RegistryUnavailableError(f"schema registry failed while {what}: {error}")


class AvroSerializer:
    def __init__(
        self,
        registry: SchemaRegistryClient,
        subject_name_strategy: SubjectNameStrategy = topic_record_name,
        auto_register: bool = False,
    ) -> None:
        self._registry = registry
        self._subject = subject_name_strategy
        self._auto_register = auto_register
        self._ids: dict[tuple[str, str], int] = {}

    def schema_id(self, topic: str, schema: AvroSchema) -> int:
        subject = self._subject(topic, schema.fullname)
        key = (subject, schema.text)
        if (cached := self._ids.get(key)) is not None:
            return cached
        registry_schema = Schema(schema.text, "AVRO")
        schema_id: int | None
        try:
            if self._auto_register:
                schema_id = self._registry.register_schema(subject, registry_schema)
            else:
                schema_id = self._registry.lookup_schema(subject, registry_schema).schema_id
        except SchemaRegistryError as error:
            if error.error_code in (SUBJECT_NOT_FOUND, SCHEMA_NOT_FOUND):
                raise SerializationError(
                    f"schema {schema.fullname} is not registered under subject '{subject}': "
                    "run `suuupra schemas register`"
                ) from error
            raise _registry_failure(error, f"looking up subject '{subject}'") from error
        except Exception as error:  # connection errors surface as requests/httpx exceptions
            raise _registry_failure(error, f"looking up subject '{subject}'") from error
        if schema_id is None:
            raise SerializationError(f"the registry returned no id for subject '{subject}'")
        self._ids[key] = int(schema_id)
        return int(schema_id)

    def serialize(self, topic: str, schema: AvroSchema, value: Mapping[str, Any]) -> bytes:
        schema_id = self.schema_id(topic, schema)
        buffer = io.BytesIO()
        buffer.write(HEADER.pack(MAGIC_BYTE, schema_id))
        try:
            fastavro.schemaless_writer(buffer, schema.parsed, value, strict_allow_default=True)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise SerializationError(f"value does not match schema {schema.fullname}: {error}") from error
        return buffer.getvalue()


@dataclass(frozen=True)
class DecodedRecord:
    schema_id: int
    record_name: str
    value: dict[str, Any]


def _without_uuid_type(document: Any) -> Any:
    """A schema document (JSON, before parsing: a parsed schema keeps copies of its named types) with every uuid
    logical type dropped, its fields plain strings, which fastavro then reads as the text that was written."""
    if isinstance(document, list):
        return [_without_uuid_type(item) for item in document]
    if not isinstance(document, dict):
        return document
    return {key: _without_uuid_type(value) for key, value in document.items()
            if not (key == "logicalType" and value == "uuid")}  # fmt: skip


def _parsed_keeping_uuid_text(schema: AvroSchema) -> Any:
    """The schema parsed with its uuid fields as plain strings."""
    return fastavro.parse_schema(_without_uuid_type(json.loads(schema.text)), named_schemas={})


def _readable_writer(schema_id: int, schema_type: str | None, text: str) -> AvroSchema:
    """A registered schema as an Avro record schema a record can be read with, or why it is not one."""
    if schema_type not in (None, "AVRO"):
        raise UnknownSchemaError(f"schema id {schema_id} is {schema_type}, not Avro")
    try:
        writer = AvroSchema.from_text(text)
    except (ValueError, TypeError, KeyError, SchemaParseException) as error:
        raise IncompatibleSchemaError(f"schema id {schema_id} does not parse as Avro: {error}") from error
    if not isinstance(writer.parsed, dict) or writer.parsed.get("type") != "record":
        raise IncompatibleSchemaError(f"schema id {schema_id} is not an Avro record schema")
    return writer


def _remember(memory: dict[int, _Remembered], schema_id: int, value: _Remembered) -> None:
    if len(memory) >= MAX_REMEMBERED_SCHEMA_IDS:
        memory.clear()
    memory[schema_id] = value


class AvroDeserializer:
    """Reads any record whose writer schema is in the registry.

    `reader_schemas` (record fullname -> schema) optionally projects old or new writer versions onto the
    schema this consumer was written against, following Avro schema resolution.

    A uuid field is read as a `uuid.UUID`, or with `uuids_as_text` as the text that was written: Python's UUID takes
    forms (`urn:uuid:...`, braces, 32 bare hex digits) that the JVM jobs' decoder refuses as not a UUID, so a tool
    that decides as the jobs do must see the text.
    """

    def __init__(
        self,
        registry: SchemaRegistryClient,
        reader_schemas: Mapping[str, AvroSchema] | None = None,
        *,
        uuids_as_text: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._readers = dict(reader_schemas or {})
        self._uuids_as_text = uuids_as_text
        self._clock = clock
        # schema id -> (writer schema, reader schema or None when they are the same and no resolution is needed)
        self._schemas: dict[int, tuple[Any, Any]] = {}
        self._unknown_since: dict[int, float] = {}  # schema id -> when the registry said it does not have it
        # schema id -> why its schema can never be read: a registered id's schema never changes, so this holds for good
        self._unreadable: dict[int, tuple[type[DeserializationError], str]] = {}

    def _schemas_for(self, schema_id: int) -> tuple[Any, Any]:
        if (cached := self._schemas.get(schema_id)) is not None:
            return cached
        if (unreadable := self._unreadable.get(schema_id)) is not None:
            error_type, reason = unreadable
            raise error_type(reason)
        unknown_since = self._unknown_since.get(schema_id)
        if unknown_since is not None and self._clock() - unknown_since < UNKNOWN_SCHEMA_RECHECK_S:
            raise UnknownSchemaError(f"schema id {schema_id} is not in the registry")
        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as error:
            if error.error_code == SCHEMA_NOT_FOUND:
                _remember(self._unknown_since, schema_id, self._clock())
                raise UnknownSchemaError(f"schema id {schema_id} is not in the registry") from error
            raise _registry_failure(error, f"fetching schema id {schema_id}") from error
        except Exception as error:
            raise _registry_failure(error, f"fetching schema id {schema_id}") from error
        if not registered.schema_str:
            # The registry's answer, not the schema, is wrong (a proxy's, say): not remembered, it may be right later.
            raise UnknownSchemaError(f"schema id {schema_id} has no schema text in the registry")
        try:
            writer = _readable_writer(schema_id, registered.schema_type, registered.schema_str)
        except (UnknownSchemaError, IncompatibleSchemaError) as error:
            _remember(self._unreadable, schema_id, (type(error), str(error)))
            raise
        reader = self._readers.get(writer.fullname)
        # Resolving against an identical reader schema costs about half the decoding time for nothing.
        resolve = reader if reader is not None and reader.text != writer.text else None
        if self._uuids_as_text:
            pair = (_parsed_keeping_uuid_text(writer), None if resolve is None else _parsed_keeping_uuid_text(resolve))
        else:
            pair = (writer.parsed, None if resolve is None else resolve.parsed)
        self._schemas[schema_id] = pair
        return pair

    def deserialize(self, data: bytes | None) -> DecodedRecord:
        if data is None:
            raise MalformedRecordError("record has no value (a tombstone), expected an Avro event")
        if len(data) < HEADER.size:
            raise MalformedRecordError(f"record is {len(data)} bytes, shorter than the 5-byte Confluent Avro header")
        magic, schema_id = HEADER.unpack_from(data)
        if magic != MAGIC_BYTE:
            raise MalformedRecordError(f"first byte is 0x{magic & 0xFF:02x}, not the Confluent Avro magic byte 0x00")
        writer, reader = self._schemas_for(schema_id)
        name = str(writer["name"])
        body = io.BytesIO(data)
        body.seek(HEADER.size)
        try:
            value = fastavro.schemaless_reader(body, writer, reader)
        except SchemaResolutionError as error:
            raise IncompatibleSchemaError(
                f"schema id {schema_id} ({name}) cannot be read with this consumer's schema: {error}"
            ) from error
        except Exception as error:  # fastavro raises EOFError, ValueError, IndexError, UnicodeDecodeError ...
            raise MalformedRecordError(
                f"Avro body does not decode with schema id {schema_id} ({name}): {type(error).__name__}: {error}"
            ) from error
        if body.tell() != len(data):
            raise MalformedRecordError(
                f"{len(data) - body.tell()} bytes left over after decoding with schema id {schema_id} ({name})"
            )
        if not isinstance(value, dict):
            raise MalformedRecordError(f"schema id {schema_id} is not a record schema")
        return DecodedRecord(schema_id, name, value)
