"""fastavro reads logical types as Python objects; jobs, JSON and comparisons want their wire forms."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# Values that are their own wire form: most of a record's fields, handed on without a call (verifiers convert
# hundreds of thousands of records).
_PLAIN = frozenset({str, int, bool, float, bytes, type(None)})


def to_wire(value: Any) -> Any:
    """timestamp-millis -> epoch ms, uuid -> str, recursively through records, arrays and maps."""
    kind = type(value)
    if kind is dict:
        return {key: item if type(item) in _PLAIN else to_wire(item) for key, item in value.items()}
    if kind is list:
        return [item if type(item) in _PLAIN else to_wire(item) for item in value]
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return (moment - _EPOCH) // dt.timedelta(milliseconds=1)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [to_wire(item) for item in value]
    return value
