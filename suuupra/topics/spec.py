"""The declarative topic file (`infra/topics.yaml`) read into typed specs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from suuupra.settings import Settings

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_KNOWN_KEYS = {"description", "partitions", "replication_factor", "cleanup_policy", "retention", "min_insync_replicas"}


class TopicSpecError(ValueError):
    pass


def duration_ms(text: str | int) -> int:
    if isinstance(text, int) or text == "-1":
        return int(text)
    match = _DURATION.match(str(text).strip())
    if not match:
        raise TopicSpecError(f"retention '{text}' is not a duration like 7d, 12h, 30m or -1 (forever)")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True)
class TopicSpec:
    logical: str
    name: str
    partitions: int
    replication_factor: int
    cleanup_policy: str
    retention_ms: int
    min_insync_replicas: int
    description: str

    def configs(self) -> dict[str, str]:
        return {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "min.insync.replicas": str(self.min_insync_replicas),
        }


def load_topic_specs(settings: Settings, path: Path | None = None) -> list[TopicSpec]:
    path = path or settings.paths.topics_file
    document = yaml.safe_load(path.read_text())
    defaults = document.get("defaults", {})
    specs = []
    for logical, entry in (document.get("topics") or {}).items():
        merged = {**defaults, **(entry or {})}
        if unknown := set(merged) - _KNOWN_KEYS:
            raise TopicSpecError(f"{path}: topic '{logical}' has unknown keys {sorted(unknown)}")
        if merged.get("cleanup_policy", "delete") not in ("delete", "compact", "compact,delete"):
            raise TopicSpecError(f"{path}: topic '{logical}': cleanup_policy must be delete, compact or compact,delete")
        specs.append(
            TopicSpec(
                logical=logical,
                name=settings.topics.resolve(logical),
                partitions=int(merged.get("partitions", 1)),
                replication_factor=int(merged.get("replication_factor", settings.kafka.replication_factor)),
                cleanup_policy=str(merged.get("cleanup_policy", "delete")),
                retention_ms=duration_ms(merged.get("retention", "7d")),
                min_insync_replicas=int(merged.get("min_insync_replicas", settings.kafka.min_insync_replicas)),
                description=str(merged.get("description", "")),
            )
        )
    return specs
