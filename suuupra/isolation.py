"""An environment of its own on the shared platform, for a test or a benchmark: topics, registered schemas, a
services schema in PostgreSQL and a consumer-group prefix, all removed afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import psycopg
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from psycopg import sql

from schemas import default_catalog
from suuupra.events import make_registry
from suuupra.schema_tools.registry_sync import register_all
from suuupra.settings import Settings, isolated_settings
from suuupra.topics.apply import apply_topics
from suuupra.topics.spec import load_topic_specs

# librdkafka's default session.timeout.ms (45 s), with a margin.
GROUP_SESSION_WAIT_S = 60.0


class IsolationError(RuntimeError):
    """Setting up or removing an isolated environment failed; the message says what is left behind."""


@contextmanager
def isolated_environment(settings: Settings, prefix: str) -> Iterator[Settings]:
    """Yields `isolated_settings(settings, prefix)` with its topics created (kept until deleted: runs use fixed past
    event times, which the declared retention would delete mid-run), every schema registered under its subjects and
    its PostgreSQL schema created; afterwards removes all of it and the consumer groups of its prefix."""
    own = isolated_settings(settings, prefix)
    schema = own.postgres.services_schema
    assert schema is not None
    admin = AdminClient(own.kafka.client_config())
    registry = make_registry(own)
    subjects: list[str] = []
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    try:
        plan = apply_topics(admin, [replace(spec, retention_ms=-1) for spec in load_topic_specs(own)])
        if plan.has_drift:
            raise IsolationError(f"topics of prefix {prefix} already exist with another configuration")
        subjects = [registration.subject for registration in register_all(own, default_catalog(), registry)]
        yield own
    finally:
        _remove(settings, own, schema, admin, subjects)


def _remove(settings: Settings, own: Settings, schema: str, admin: AdminClient, subjects: list[str]) -> None:
    left: list[str] = []
    for topic, future in admin.delete_topics(list(own.topics.model_dump().values())).items():
        try:
            future.result(timeout=60)
        except Exception as error:
            left.append(f"topic {topic} ({error})")
    registry = make_registry(own)
    for subject in subjects:
        try:
            registry.delete_subject(subject)
            registry.delete_subject(subject, permanent=True)
        except Exception as error:
            left.append(f"subject {subject} ({error})")
    try:
        _delete_groups(admin, own.services.consumer_group_prefix)
    except Exception as error:
        left.append(f"consumer groups {own.services.consumer_group_prefix}* ({error})")
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    if left:
        raise IsolationError(f"left behind: {'; '.join(left)}")


def _delete_groups(admin: AdminClient, prefix: str) -> None:
    """Deletes the consumer groups named from `prefix`; a member killed without leaving (a process killed -9) keeps its
    group non-empty until its session times out, so those are tried again until then."""
    deadline = time.monotonic() + GROUP_SESSION_WAIT_S
    while True:
        listed = admin.list_consumer_groups().result(timeout=30)
        groups = [group.group_id for group in listed.valid if group.group_id.startswith(prefix)]
        busy: list[KafkaException] = []
        for future in (admin.delete_consumer_groups(groups) if groups else {}).values():
            try:
                future.result(timeout=30)
            except KafkaException as error:
                if error.args[0].code() != KafkaError.NON_EMPTY_GROUP:
                    raise
                busy.append(error)
        if not busy:
            return
        if time.monotonic() > deadline:
            raise busy[0]
        time.sleep(1)
