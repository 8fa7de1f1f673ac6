"""Tests run against the real local platform; `platform up` is idempotent, so a running one is reused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from psycopg import sql

from schemas import default_catalog
from suuupra.events import make_registry
from suuupra.platform.manager import Platform
from suuupra.schema_tools.registry_sync import register_all
from suuupra.settings import Settings, isolated_settings, load_settings
from suuupra.topics.apply import apply_topics
from suuupra.topics.spec import load_topic_specs


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(profile="local")


@pytest.fixture(scope="session")
def platform(settings: Settings) -> Iterator[Platform]:
    platform = Platform(settings)
    # Leave a platform the developer had running as it was; stop one this session brought up from nothing.
    already_running = any(component.pid() is not None for component in platform.components)
    platform.up()
    yield platform
    if not already_running:
        platform.down()


@pytest.fixture
def isolated(settings: Settings, platform: Platform) -> Iterator[Settings]:
    """Settings whose topics and services' PostgreSQL schema are this test's own (topics created, schemas
    registered), so tests never mix: a relay in one test cannot publish another test's outbox."""
    own = isolated_settings(settings, f"test-{uuid.uuid4().hex[:10]}")
    schema = own.postgres.services_schema
    assert schema is not None
    admin = AdminClient(own.kafka.client_config())
    # Kept forever: tests use fixed past event times, which the declared retention would delete mid-test.
    specs = [replace(spec, retention_ms=-1) for spec in load_topic_specs(own)]
    plan = apply_topics(admin, specs)
    assert not plan.has_drift
    registry = make_registry(own)
    registrations = register_all(own, default_catalog(), registry)
    yield own
    for future in admin.delete_topics(list(own.topics.model_dump().values())).values():
        future.result(timeout=60)
    for registration in registrations:
        registry.delete_subject(registration.subject)
        registry.delete_subject(registration.subject, permanent=True)
    with psycopg.connect(settings.postgres.dsn(), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
