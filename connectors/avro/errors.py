"""Why a record could not be serialized or read; the reason travels with the record to the dead-letter topic."""

from __future__ import annotations


class SerdeError(Exception):
    """Base of every serializer and deserializer failure."""

    reason_code = "serde_error"


class SerializationError(SerdeError):
    reason_code = "serialization_failed"


class DeserializationError(SerdeError):
    reason_code = "deserialization_failed"


class MalformedRecordError(DeserializationError):
    """The bytes are not a Confluent-framed Avro record of the schema they name."""

    reason_code = "malformed_record"


class UnknownSchemaError(DeserializationError):
    """The record names a schema id the registry does not know."""

    reason_code = "unknown_schema"


class IncompatibleSchemaError(DeserializationError):
    """The writer's schema cannot be read through this consumer's reader schema (or is not a record)."""

    reason_code = "incompatible_schema"


class RegistryUnavailableError(SerdeError):
    """The registry did not answer: retry later, the record itself may be fine."""

    reason_code = "registry_unavailable"
