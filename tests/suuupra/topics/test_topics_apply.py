from __future__ import annotations

import uuid

from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from suuupra.platform.base import wait_until
from suuupra.settings import Settings, isolated_settings
from suuupra.topics.apply import apply_topics
from suuupra.topics.spec import load_topic_specs


def _retention(admin: AdminClient, topic: str) -> str:
    [future] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    return str(future.result(timeout=10)["retention.ms"].value)


def test_apply_creates_then_reports_drift_and_never_deletes(settings: Settings, platform: object) -> None:
    own = isolated_settings(settings, f"apply-{uuid.uuid4().hex[:8]}")
    admin = AdminClient(own.kafka.client_config())
    specs = load_topic_specs(own)

    assert apply_topics(admin, specs, dry_run=True).created == [s.name for s in specs]
    assert own.topics.user not in admin.list_topics(timeout=10).topics, "dry run creates nothing"

    first = apply_topics(admin, specs)
    assert sorted(first.created) == sorted(s.name for s in specs)
    topics = admin.list_topics(timeout=10).topics
    user_spec = next(s for s in specs if s.logical == "user")
    assert len(topics[own.topics.user].partitions) == user_spec.partitions
    assert user_spec.retention_ms == 7 * 86_400_000

    second = apply_topics(admin, specs)
    assert second.created == [] and not second.has_drift

    retention = ConfigEntry("retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ConfigResource.Type.TOPIC, own.topics.user, incremental_configs=[retention])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    # The broker applies an acknowledged config change from the metadata log a moment later.
    assert wait_until(lambda: _retention(admin, own.topics.user) == "3600000", timeout=10)
    stray = f"{own.topics.user}.stray"
    admin.create_topics([NewTopic(stray, 1, 1)])[stray].result(timeout=30)

    third = apply_topics(admin, specs)
    assert third.drift == {own.topics.user: ["retention.ms is 3600000, declared 604800000"]}
    assert stray in third.unmanaged
    assert stray in admin.list_topics(timeout=10).topics, "apply never deletes"
