"""An isolated environment exists while it is used and leaves nothing behind on the shared platform."""

from __future__ import annotations

import uuid

import psycopg
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from suuupra.events import make_registry
from suuupra.isolation import isolated_environment
from suuupra.platform.manager import Platform
from suuupra.settings import Settings


def _schema_exists(settings: Settings, schema: str) -> bool:
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        found = connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return found is not None


def test_an_isolated_environment_is_created_and_removed(settings: Settings, platform: Platform) -> None:
    admin = AdminClient(settings.kafka.client_config())
    with isolated_environment(settings, f"iso-{uuid.uuid4().hex[:8]}") as own:
        schema = own.postgres.services_schema
        assert schema is not None and _schema_exists(settings, schema)
        topics = set(own.topics.model_dump().values())
        assert topics <= set(admin.list_topics(timeout=30).topics)
        subjects = [s for s in make_registry(own).get_subjects() if s.startswith(own.topics.payment)]
        assert subjects, "the schemas are registered under the environment's own subjects"
        group = f"{own.services.consumer_group_prefix}.saga"
        consumer = Consumer({**own.kafka.client_config(), "group.id": group, "auto.offset.reset": "earliest"})
        consumer.subscribe([own.topics.payment])
        consumer.poll(5)
        consumer.close()
    assert not _schema_exists(settings, schema)
    assert not topics & set(admin.list_topics(timeout=30).topics)
    assert not [s for s in make_registry(settings).get_subjects() if s.startswith(own.topics.payment)]
    groups = {g.group_id for g in admin.list_consumer_groups().result(timeout=30).valid}
    assert group not in groups
