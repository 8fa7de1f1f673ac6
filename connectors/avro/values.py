"""fastavro reads logical types as Python objects; jobs, JSON and comparisons want their wire forms."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_wire(value: Any) -> Any:
    """timestamp-millis -> epoch ms, uuid -> str, recursively through records, arrays and maps."""
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
