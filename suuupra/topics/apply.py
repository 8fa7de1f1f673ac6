"""Compare the declared topics with the cluster: create what is missing, report drift, never delete."""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic  # type: ignore[attr-defined]

from suuupra.platform.base import wait_until
from suuupra.topics.spec import TopicSpec


@dataclass
class TopicPlan:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # topic -> human lines: "retention.ms is 86400000, declared 604800000"
    drift: dict[str, list[str]] = field(default_factory=dict)
    unmanaged: list[str] = field(default_factory=list)

    @property
    def has_drift(self) -> bool:
        return bool(self.drift)


def _describe_configs(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name) for name in names])
    described: dict[str, dict[str, str]] = {}
    for resource, future in futures.items():
        described[resource.name] = {key: entry.value for key, entry in future.result(timeout=30).items()}
    return described


def _wait_until_visible(admin: AdminClient, partitions: dict[str, int], timeout_s: float = 30.0) -> None:
    """A created topic is in the broker's metadata a moment after the controller acknowledged it: wait for that, so
    whoever applied the topics can use them at once."""

    def pending() -> list[str]:
        topics = admin.list_topics(timeout=10).topics
        return sorted(name for name, count in partitions.items()
                      if name not in topics or len(topics[name].partitions) != count)  # fmt: skip

    if not wait_until(lambda: not pending(), timeout_s):
        raise TimeoutError(
            f"created but not in the broker's metadata after {timeout_s:.0f} s: {', '.join(pending())}; "
            "check the broker's log, then run the command again (it creates only what is missing)"
        )


def apply_topics(admin: AdminClient, specs: list[TopicSpec], dry_run: bool = False) -> TopicPlan:
    plan = TopicPlan()
    metadata = admin.list_topics(timeout=15)
    existing = metadata.topics
    missing = [spec for spec in specs if spec.name not in existing]
    if missing and not dry_run:
        futures = admin.create_topics(
            [NewTopic(spec.name, spec.partitions, spec.replication_factor, config=spec.configs()) for spec in missing],
            operation_timeout=30,
        )
        for future in futures.values():
            future.result(timeout=60)
        _wait_until_visible(admin, {spec.name: spec.partitions for spec in missing})
    plan.created = [spec.name for spec in missing]

    present = [spec for spec in specs if spec.name in existing]
    configs = _describe_configs(admin, [spec.name for spec in present])
    for spec in present:
        partitions = existing[spec.name].partitions
        lines = []
        if len(partitions) != spec.partitions:
            lines.append(f"partitions is {len(partitions)}, declared {spec.partitions}")
        replica_counts = {len(p.replicas) for p in partitions.values()}
        if replica_counts != {spec.replication_factor}:
            lines.append(f"replication factor is {sorted(replica_counts)}, declared {spec.replication_factor}")
        for key, declared in spec.configs().items():
            actual = configs[spec.name].get(key)
            if actual != declared:
                lines.append(f"{key} is {actual}, declared {declared}")
        if lines:
            plan.drift[spec.name] = lines
        else:
            plan.unchanged.append(spec.name)

    managed = {spec.name for spec in specs}
    plan.unmanaged = sorted(name for name in existing if name not in managed and not name.startswith("__"))
    return plan
