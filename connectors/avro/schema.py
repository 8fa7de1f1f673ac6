"""An Avro schema as the registry sees it (text) and as fastavro uses it (parsed)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import fastavro


@dataclass(frozen=True)
class AvroSchema:
    text: str
    parsed: Any = field(repr=False, compare=False)

    @classmethod
    def from_text(cls, text: str) -> AvroSchema:
        document = json.loads(text)
        # Canonical spacing keeps the registry's content hash stable across reformatted files.
        canonical = json.dumps(document, separators=(",", ":"), sort_keys=False)
        return cls(canonical, fastavro.parse_schema(document, named_schemas={}))

    @property
    def fullname(self) -> str:
        return str(self.parsed["name"]) if isinstance(self.parsed, dict) else str(self.parsed)
